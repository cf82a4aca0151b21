"""gunicorn settings of the ceiling app: exactly ``deploy/gunicorn.conf.py``, except ``post_fork``.

The production file's ``post_fork`` disposes scim-server's pool; here the ceiling's engine is
disposed instead, so the two servers run with the same workers, threads, keep-alive and preload.
"""

import runpy
from pathlib import Path
from typing import Any

_production = runpy.run_path(str(Path(__file__).resolve().parents[1] / "deploy/gunicorn.conf.py"))
globals().update({name: value for name, value in _production.items() if not name.startswith("_")})


def post_fork(server: Any, worker: Any) -> None:
    from ceiling_app import engine

    engine.dispose(close=False)
