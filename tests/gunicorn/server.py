"""A real gunicorn, started the way an operator starts it (``scim-server serve``), for tests
that need several worker processes sharing one database.

Only the standard library talks to it: a test must see exactly what an IdP would see, not what a
test client would smooth over. The server's output (its logs are on stdout) goes to a file, not a
pipe: a pipe nobody reads fills up after 64 KiB of log and then blocks the workers that write to
it.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCIM_CONTENT_TYPE = "application/scim+json"


#: Each pytest-xdist worker (gw0, gw1, ...) walks its own range of ports below the kernel's
#: ephemeral range (32768 and up), so two workers never pick the same one.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_PORTS = itertools.count(20_000 + 400 * (_WORKER % 25))


def free_port() -> int:
    """A port this worker has not used and nothing listens on. Not the kernel's choice (bind
    to port 0): it can hand two workers the same port between its release here and gunicorn's
    bind, and the loser's start-up check would then be answered by the other's server."""
    for port in _PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("unreachable: itertools.count never ends")


@dataclass(frozen=True)
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self, limit: int = 8000) -> str:
        """The end of what gunicorn and the app wrote (tracebacks land here)."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return text[-limit:]


@contextmanager
def serve(
    database_url: str,
    *,
    workers: int,
    log_path: Path,
    startup_timeout: float = 30.0,
    environment: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> Iterator[Server]:
    """Run ``scim-server serve`` on a free port until the block ends; fail with its log if it
    does not answer ``/healthz`` in time. ``environment``: more variables for the server;
    ``cwd``: where it runs (the checkout, whose ``scim_server`` it then imports first)."""
    port = free_port()
    env = {**os.environ, "SCIM_DATABASE_URL": database_url, "SCIM_LOG_LEVEL": "warning"}
    env.update(environment or {})
    command = [sys.executable, "-m", "scim_server.cli", "serve"]
    command += ["--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{server.base_url}/healthz", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start:\n{server.log()}") from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def etag(self) -> str:
        return self.headers["ETag"]


def call(
    method: str,
    url: str,
    token: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Reply:
    """One HTTP request; error statuses are returned, not raised, so callers can count them."""
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = SCIM_CONTENT_TYPE
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, received, raw = int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, received, raw = int(error.code), dict(error.headers), error.read()
    return Reply(status, received, json.loads(raw) if raw.strip() else None)


def run_cli(
    database_url: str, *args: str, environment: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run ``scim-server`` against ``database_url`` as an operator would."""
    env = {**os.environ, "SCIM_DATABASE_URL": database_url, **(environment or {})}
    return subprocess.run(
        [sys.executable, "-m", "scim_server.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli(database_url: str, *args: str) -> str:
    """``run_cli`` that must succeed; its stdout."""
    completed = run_cli(database_url, *args)
    if completed.returncode != 0:
        raise AssertionError(
            f"scim-server {' '.join(args)} exited {completed.returncode}:\n"
            f"{completed.stdout}{completed.stderr}"
        )
    return completed.stdout
