"""What every benchmark needs: the CLI as an operator runs it, and a scratch database.

The benchmarks run as scripts (``python bench/<name>.py``), so this module is imported by its
file name from the benchmark's own folder.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
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
    """``init``, ``org create bench`` and ``connection create``: the new connection's token.

    The mass-deprovisioning guard is off: the scenarios deactivate and delete thousands of users
    in minutes, which it exists to hold (its cost is in docs/PERFORMANCE.md).
    """
    cli(env, "init")
    cli(env, "org", "create", "bench", "--name", org_name, "--deprovision-limit", "off")
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


SCIM = "application/scim+json"


def gather_statistics(database_url: str) -> None:
    """``ANALYZE`` on PostgreSQL, as autovacuum does within a minute of a bulk load.

    Without statistics the planner knows nothing of the 10,000 users just created and may
    read every user of the organisation for a lookup by id: measured in-process at 10,000
    users, 6.1 ms of PostgreSQL CPU per GET before ``ANALYZE`` and 1.8 ms after. A production
    database has autovacuum on (README); this machine's PostgreSQL has it off, so the benchmarks
    gather them themselves after each load. SQLite needs none here.
    """
    if make_url(database_url).get_backend_name() != "postgresql":
        return
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
    finally:
        engine.dispose()


def cpu_ticks(pid: int, *, with_reaped: bool) -> int:
    """A process's CPU time in clock ticks (0 if it has ended); ``with_reaped``: with that of
    the children it has waited for (a gunicorn master's recycled workers, the postmaster's
    ended backends)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # after the ")": state is fields[0], so utime (14) is fields[11], cutime (16) fields[13]
    ticks = int(fields[11]) + int(fields[12])
    return ticks + (int(fields[13]) + int(fields[14]) if with_reaped else 0)


def database_cpu_seconds() -> float:
    """CPU time of this machine's PostgreSQL processes so far (0 when none runs here).

    A benchmark's PostgreSQL is local, so its backends share the cores with the server and the
    client; their time per operation says how much of a request's cost is the database's.
    A backend that ends (a recycled gunicorn worker's pooled connections, an autovacuum
    worker) takes its CPU time out of the live processes' sum and into the postmaster's
    ``cutime``/``cstime`` (its reaped children), so those count too: without them one scenario
    measured negative.
    """
    ticks = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().startswith("postgres"):
                ticks += cpu_ticks(int(entry.name), with_reaped=True)
        except OSError:  # it ended while we looked
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(env: dict[str, str], workers: int, log: Path | None = None) -> Iterator[str]:
    """``scim-server serve`` (gunicorn, production settings) on a free port until the block
    ends; its base URL. ``log``: a file for its log (warnings and errors), else discarded."""
    port = free_port()
    with open(log or os.devnull, "wb") as sink:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scim_server.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env={**env, "SCIM_LOG_LEVEL": "warning"},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit("the server did not start") from None
            time.sleep(0.1)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def send(method: str, url: str, token: str, body: object | None = None) -> tuple[int, bytes]:
    """One request; error statuses are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()
