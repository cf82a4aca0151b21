"""Through a real gunicorn: a chunked /Bulk body (no Content-Length) is held to
``SCIM_BULK_MAX_PAYLOAD_BYTES`` too, so the limit cannot be dodged by leaving the length out; and
that limit, not the smaller general ``SCIM_MAX_BODY_BYTES``, is the one /Bulk answers to."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from scim_server.store.db import Database
from tests.conftest import USER_SCHEMA, make_tenant
from tests.gunicorn.server import call, serve

# What is tested here is gunicorn's and the HTTP layer's, the same whatever the database (the
# database's part of it runs on both in tests/api): one database, for a faster suite.
pytestmark = [
    pytest.mark.gunicorn,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
LIMIT = 4000
#: The general body limit, below the bulk one: a bulk body between the two is accepted.
GENERAL_LIMIT = 2000


@pytest.fixture(scope="module")
def server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("gunicorn-bulk") / "stderr.log"
    environment = {
        "SCIM_BULK_MAX_PAYLOAD_BYTES": str(LIMIT),
        "SCIM_BULK_MAX_OPERATIONS": "5",
        "SCIM_MAX_BODY_BYTES": str(GENERAL_LIMIT),
    }
    with serve(database.url, workers=1, log_path=log_path, environment=environment) as running:
        yield running.base_url


def _chunked_post(
    base_url: str, token: str, body: Any, path: str = "/scim/v2/Bulk"
) -> tuple[int, Any]:
    """POST with ``Transfer-Encoding: chunked`` and no Content-Length."""
    raw = json.dumps(body).encode()
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(
            "POST",
            path,
            body=iter([raw[i : i + 1000] for i in range(0, len(raw), 1000)]),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _user(display_name: str, user_name: str = "chunked@example.com") -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, "displayName": display_name}


def _bulk(display_name: str, user_name: str = "chunked@example.com") -> dict[str, Any]:
    data = _user(display_name, user_name)
    operation = {"method": "POST", "path": "/Users", "bulkId": "c", "data": data}
    return {"schemas": [BULK_REQUEST], "Operations": [operation]}


def test_chunked_bulk_bodies_are_held_to_max_payload_size(server: str, database: Database) -> None:
    tenant = make_tenant(database, "chunked")
    advertised = call("GET", f"{server}/scim/v2/ServiceProviderConfig", tenant.token).body
    assert advertised["bulk"] == {"supported": True, "maxOperations": 5, "maxPayloadSize": LIMIT}

    status, body = _chunked_post(server, tenant.token, _bulk("x" * 2 * LIMIT))
    assert status == 413, body
    assert f"maxPayloadSize ({LIMIT} bytes)" in body["detail"]
    users = call("GET", f"{server}/scim/v2/Users", tenant.token).body
    assert users["totalResults"] == 0

    status, body = _chunked_post(server, tenant.token, _bulk("small"))
    assert status == 200, body
    assert body["Operations"][0]["status"] == "201"
    users = call("GET", f"{server}/scim/v2/Users", tenant.token).body
    assert [user["userName"] for user in users["Resources"]] == ["chunked@example.com"]


def test_a_chunked_bulk_body_over_the_general_limit_but_within_the_bulk_limit_is_accepted(
    server: str, database: Database
) -> None:
    tenant = make_tenant(database, "chunked-between")
    display_name = "y" * ((GENERAL_LIMIT + LIMIT) // 2)
    size = len(json.dumps(_bulk(display_name, "between@example.com")))
    assert GENERAL_LIMIT < size < LIMIT
    # the general limit is in force: the same user alone, chunked, is too large
    status, body = _chunked_post(
        server, tenant.token, _user(display_name, "between@example.com"), "/scim/v2/Users"
    )
    assert status == 413, body
    assert f"the limit is {GENERAL_LIMIT} bytes" in body["detail"]

    status, body = _chunked_post(server, tenant.token, _bulk(display_name, "between@example.com"))
    assert status == 200, body
    assert body["Operations"][0]["status"] == "201"
    users = call("GET", f"{server}/scim/v2/Users", tenant.token).body
    assert [user["displayName"] for user in users["Resources"]] == [display_name]
