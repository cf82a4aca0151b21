"""Through a real gunicorn process behind a (simulated) TLS proxy: the OAuth token endpoint
decides "HTTPS or this machine" by the connection and the trusted proxy's headers, never by the
Host header, and the token it issues works on /scim/v2 in every worker."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scim_server.store.db import Database
from tests.conftest import Tenant, make_tenant
from tests.gunicorn.server import Server, call, cli, serve

# What is tested here is gunicorn's and the HTTP layer's, the same whatever the database (the
# database's part of it runs on both in tests/api): one database, for a faster suite.
pytestmark = [
    pytest.mark.gunicorn,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@pytest.fixture(scope="module")
def server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("gunicorn-oauth")
    with serve(
        database.url,
        workers=2,
        log_path=folder / "server.log",
        environment={"SCIM_TRUSTED_PROXY_HOPS": "1"},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def client(database: Database, server: Server) -> tuple[Tenant, dict[str, Any]]:
    tenant = make_tenant(database, "oauth")
    issued = json.loads(
        cli(database.url, "connection", "oauth", "--org", tenant.slug, tenant.connection_id,
            "--json")
    )  # fmt: skip
    return tenant, issued


def _token_request(server: Server, issued: dict[str, Any], headers: dict[str, str]) -> Any:
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": issued["client_id"],
            "client_secret": issued["client_secret"],
        }
    ).encode()
    request = urllib.request.Request(
        f"{server.base_url}/oauth/token",
        data=form,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


def test_through_the_trusted_proxy_over_https_a_token_is_issued_and_works(
    server: Server, client: tuple[Tenant, dict[str, Any]]
) -> None:
    _, issued = client
    status, body = _token_request(
        server, issued, {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    )
    assert status == 200, (body, server.log())
    for _ in range(6):  # both workers
        assert call("GET", f"{server.base_url}/scim/v2/Users", body["access_token"]).status == 200


def test_through_the_proxy_in_plain_http_secrets_are_refused(
    server: Server, client: tuple[Tenant, dict[str, Any]]
) -> None:
    _, issued = client
    status, body = _token_request(
        server,
        issued,
        {"X-Forwarded-Proto": "http", "X-Forwarded-For": "198.51.100.7", "Host": "localhost"},
    )
    assert (status, body["error"]) == (400, "insecure_transport")


def test_from_this_machine_directly_plain_http_is_accepted(
    server: Server, client: tuple[Tenant, dict[str, Any]]
) -> None:
    _, issued = client
    status, body = _token_request(server, issued, {})
    assert status == 200, body
    assert body["token_type"] == "Bearer"


def test_without_a_trusted_proxy_a_claimed_https_is_not_believed(
    database: Database, tmp_path: Path
) -> None:
    """gunicorn by default believes X-Forwarded-Proto from any local peer; the server's own
    configuration turns that off, so SCIM_TRUSTED_PROXY_HOPS alone decides (a local plain-HTTP
    proxy that passes its client's headers through must not let the client claim HTTPS)."""
    tenant = make_tenant(database, "oauth-untrusted")
    issued = json.loads(
        cli(database.url, "connection", "oauth", "--org", tenant.slug, tenant.connection_id,
            "--json")
    )  # fmt: skip
    with serve(database.url, workers=1, log_path=tmp_path / "server.log") as untrusting:
        for claimed in ({"X-Forwarded-Proto": "https"}, {"X-Forwarded-Ssl": "on"}):
            status, body = _token_request(
                untrusting, issued, {"X-Forwarded-For": "198.51.100.7", **claimed}
            )
            assert (status, body["error"]) == (400, "insecure_transport"), claimed
        status, body = _token_request(untrusting, issued, {})
        assert status == 200, body  # from this machine, directly: the quick start
