"""Through a real gunicorn process: a GET carrying the longest filter the server accepts reaches
the application, so its answer is SCIM's (gunicorn's default request line of 4094 bytes answered
such a GET with an HTML 414 of its own)."""

from __future__ import annotations

import json
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scim_server.config import Settings
from scim_server.scim.errors import ERROR_SCHEMA
from scim_server.store.db import Database
from tests.conftest import USER_SCHEMA, Tenant, make_tenant
from tests.gunicorn.server import Server, call, serve

pytestmark = pytest.mark.gunicorn

LONGEST = Settings().max_filter_length


def _or_chain(length: int) -> str:
    """``userName eq "lookupNNNNN@example.com" or ...`` padded to exactly ``length`` characters;
    about a seventh of it is spaces and quotes, each 3 bytes once percent-encoded."""
    terms: list[str] = []
    while len(" or ".join(terms)) < length - 80:
        terms.append(f'userName eq "lookup{len(terms):05d}@example.com"')
    chain = " or ".join(terms) + ' or userName eq ""'
    return chain[:-1] + "z" * (length - len(chain)) + '"'


@pytest.fixture(scope="module")
def server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("gunicorn-request-line")
    with serve(database.url, workers=1, log_path=folder / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def tenant(database: Database, server: Server) -> Tenant:
    tenant = make_tenant(database, "line")
    body = {"schemas": [USER_SCHEMA], "userName": "lookup00007@example.com"}
    assert call("POST", f"{server.base_url}/scim/v2/Users", tenant.token, body).status == 201
    return tenant


def test_a_get_with_the_longest_filter_is_answered_by_scim(server: Server, tenant: Tenant) -> None:
    chain = _or_chain(LONGEST)
    assert len(chain) == LONGEST
    query = urllib.parse.urlencode({"filter": chain}, quote_via=urllib.parse.quote)
    assert len(query) > 4094  # past gunicorn's default request line
    reply = call("GET", f"{server.base_url}/scim/v2/Users?{query}", tenant.token)
    assert reply.status == 200, reply.body
    assert [user["userName"] for user in reply.body["Resources"]] == ["lookup00007@example.com"]


def test_a_get_with_a_filter_over_the_limit_is_a_scim_error(server: Server, tenant: Tenant) -> None:
    query = urllib.parse.urlencode({"filter": _or_chain(LONGEST + 1)}, quote_via=urllib.parse.quote)
    reply = call("GET", f"{server.base_url}/scim/v2/Users?{query}", tenant.token)
    assert reply.status == 400
    assert reply.body["scimType"] == "invalidFilter"
    assert str(LONGEST) in reply.body["detail"]


def _raw(server: Server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (gunicorn refuses them before the app sees them); the answer's
    status, headers and body."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def _scim_error(headers: dict[str, str], body: bytes, status: int) -> dict[str, Any]:
    assert headers["content-type"] == "application/scim+json", body
    assert int(headers["content-length"]) == len(body)
    error: dict[str, Any] = json.loads(body)
    assert error["schemas"] == [ERROR_SCHEMA]
    assert error["status"] == str(status)
    return error


def test_a_request_line_over_gunicorn_s_limit_is_a_scim_414(server: Server, tenant: Tenant) -> None:
    path = "/scim/v2/Users?filter=" + urllib.parse.quote('userName eq "' + "a" * 9000 + '"')
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.token}\r\n\r\n"
    status, headers, body = _raw(server, request.encode())
    assert status == 414
    error = _scim_error(headers, body, 414)
    assert "8190" in error["detail"]
    assert "POST /.search" in error["detail"]


def test_a_header_over_gunicorn_s_limit_is_a_scim_431(server: Server, tenant: Tenant) -> None:
    request = (
        f"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.token}\r\n"
        f"X-Padding: {'p' * 9000}\r\n\r\n"
    )
    status, headers, body = _raw(server, request.encode())
    assert status == 431
    error = _scim_error(headers, body, 431)
    assert "8190" in error["detail"]


def test_a_request_that_is_not_http_is_a_scim_400(server: Server) -> None:
    status, headers, body = _raw(server, b"HELLO THERE\r\n\r\n")
    assert status == 400
    error = _scim_error(headers, body, 400)
    assert "HTTP" in error["detail"]


def test_a_malformed_authorization_header_is_refused_without_logging_its_token(
    server: Server, tenant: Tenant
) -> None:
    """A header without its colon is refused by gunicorn; gunicorn's own message quoted the
    whole line, token included, into the server's log (DESIGN §7: no secret in a log)."""
    request = (
        f"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {tenant.token}\r\n\r\n"
    )
    status, headers, body = _raw(server, request.encode())
    assert status == 400
    error = _scim_error(headers, body, 400)
    assert tenant.token not in error["detail"]
    log = server.log(limit=200_000)
    assert "InvalidHeader" in log  # the refusal is logged, by its kind
    assert tenant.token not in log
    assert tenant.token[:16] not in log


def test_a_malformed_chunked_body_is_a_scim_400(server: Server, tenant: Tenant) -> None:
    """gunicorn finds a bad chunk while the app reads the body, so the app must answer it: a
    client's mistake, not a 500 with a traceback."""
    request = (
        f"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.token}\r\n"
        "Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n"
        "zz\r\n{}\r\n0\r\n\r\n"
    )
    status, headers, body = _raw(server, request.encode())
    assert status == 400
    error = _scim_error(headers, body, 400)
    assert "chunks" in error["detail"]
    assert "Traceback" not in server.log(limit=200_000)
