"""Through a real gunicorn process: concurrent creates of one userName never produce a 500."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scim_server.store.db import Database
from tests.conftest import USER_SCHEMA, Tenant, make_tenant

pytestmark = pytest.mark.gunicorn
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(database: Database) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "SCIM_DATABASE_URL": database.url, "SCIM_LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        [sys.executable, "-m", "scim_server.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
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
                errors = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"gunicorn did not start: {errors}") from None
            time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=30)


def _post(url: str, token: str, body: dict[str, object]) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_fifty_concurrent_creates_of_one_user_name(server: str, database: Database) -> None:
    tenant: Tenant = make_tenant(database, "race")
    body = {"schemas": [USER_SCHEMA], "userName": "race@example.com"}
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(
            pool.map(lambda _: _post(f"{server}/scim/v2/Users", tenant.token, body), range(50))
        )
    assert Counter(statuses) == Counter({201: 1, 409: 49})

    request = urllib.request.Request(
        f"{server}/scim/v2/Users?filter=userName%20eq%20%22RACE@example.com%22",
        headers={"Authorization": f"Bearer {tenant.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["totalResults"] == 1
