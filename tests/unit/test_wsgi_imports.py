"""What the WSGI app loads (issue #7, memory): every module imported by ``scim_server.wsgi`` sits in
the gunicorn master and each worker, so optional machinery must load only when configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_LIST_MODULES = "import json, sys, scim_server.wsgi; print(json.dumps(sorted(sys.modules)))"


def _modules_of_wsgi_app(tmp_path: Path, **settings: str) -> set[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SCIM_") and name not in {"PYTHONPATH"}
    }
    env["SCIM_DATABASE_URL"] = f"sqlite:///{tmp_path / 'scim.db'}"
    env.update(settings)
    done = subprocess.run(
        [sys.executable, "-c", _LIST_MODULES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    listed = done.stdout.splitlines()[-1]  # after the app's own log lines
    return {name.split(".")[0] for name in json.loads(listed)}


def test_without_a_rate_limit_the_app_does_not_load_the_limiter_or_cli_tools(
    tmp_path: Path,
) -> None:
    loaded = _modules_of_wsgi_app(tmp_path)
    # `limits` pulls in its async storage layer and the Redis client: about 3 MiB per process
    assert not loaded & {"limits", "redis", "deprecated", "wrapt"}
    # the command line's own machinery has no place in a server process
    assert not loaded & {"alembic", "mako", "hypothesis", "pytest"}
    # AES-GCM for RFC 9865 cursors loads on the first cursor (7.5 MiB: Rust extension, OpenSSL);
    # Okta and Entra page with startIndex
    assert "cryptography" not in loaded


def test_with_a_rate_limit_the_limiter_is_loaded(tmp_path: Path) -> None:
    loaded = _modules_of_wsgi_app(tmp_path, SCIM_RATE_LIMIT="600/minute")
    assert "limits" in loaded
