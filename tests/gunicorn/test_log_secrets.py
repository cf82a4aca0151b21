"""Through a real gunicorn process at debug level: what gunicorn itself logs of a request it
could not finish reading never carries the request's bytes (DESIGN §7: no secret in a log).

A client that sends its headers, token included, and goes away before the blank line made
gunicorn log "Ignored premature client disconnection. No more data after: b'...Authorization:
Bearer scim_...'" at debug level."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.gunicorn.server import run_cli, serve

pytestmark = pytest.mark.gunicorn


def test_a_client_gone_mid_headers_leaves_no_token_in_the_debug_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scim.db'}"
    assert run_cli(url, "init").returncode == 0
    token = "scim_" + "T0kenThatMustNotBeLogged" * 2
    log_path = tmp_path / "server.log"
    with serve(
        url, workers=1, log_path=log_path, environment={"SCIM_LOG_LEVEL": "debug"}
    ) as server:
        host, port = server.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            head = f"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            sock.sendall(head.encode())
            sock.shutdown(socket.SHUT_WR)  # gone before the blank line
            sock.recv(1024)
        deadline = time.monotonic() + 10
        while "NoMoreData" not in server.log(limit=500_000) and time.monotonic() < deadline:
            time.sleep(0.1)
        log = server.log(limit=500_000)
    assert "NoMoreData" in log  # the disconnection is logged, by its kind
    assert "T0kenThatMustNotBeLogged" not in log
