"""What every benchmark needs: the CLI as an operator runs it, and a scratch database.

The benchmarks run as scripts (``python bench/<name>.py``), so this module is imported by its
file name from the benchmark's own folder.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]


def cli(env: dict[str, str], *args: str) -> str:
    """``scim-server ARGS`` in a process of its own, as an operator runs it; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "scim_server.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"scim-server {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def provision(env: dict[str, str], *, org_name: str = "Bench", connection: str = "bench") -> str:
    """``init``, ``org create bench`` and ``connection create``: the new connection's token."""
    cli(env, "init")
    cli(env, "org", "create", "bench", "--name", org_name)
    created = cli(env, "connection", "create", "--org", "bench", "--name", connection, "--json")
    token: str = json.loads(created)["token"]
    return token


@contextmanager
def postgres_database(admin_url: str, prefix: str = "scim_bench") -> Iterator[str]:
    """A throw-away database next to ``admin_url``'s, dropped afterwards."""
    url = make_url(admin_url)
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def scratch_database(postgres: str | None, prefix: str = "scim_bench") -> Iterator[str]:
    """A fresh SQLite file in a temporary folder, or a throw-away PostgreSQL database."""
    if postgres is None:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    with postgres_database(postgres, prefix) as url:
        yield url
