"""Through real gunicorn processes: a cursor issued by one worker or host is honoured by the
others when they share the cursor key (README "Paging": SCIM_CURSOR_SECRET)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from scim_server.store.db import Database
from tests.conftest import USER_SCHEMA, Tenant, make_tenant
from tests.gunicorn.server import call, serve

# What is tested here is gunicorn's and the HTTP layer's, the same whatever the database (the
# database's part of it runs on both in tests/api): one database, for a faster suite.
pytestmark = [
    pytest.mark.gunicorn,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

SHARED = {"SCIM_CURSOR_SECRET": "shared-" + "0123456789abcdef" * 2}


def _walk(bases: list[str], token: str) -> list[str]:
    """Walk /Users with cursor pages of 3, each request on the next base URL in turn (and on a
    new connection, so that gunicorn hands it to any of its workers)."""
    seen: list[str] = []
    cursor = ""
    for turn in range(100):
        query = urllib.parse.urlencode({"count": 3, "cursor": cursor})
        reply = call("GET", f"{bases[turn % len(bases)]}/scim/v2/Users?{query}", token)
        assert reply.status == 200, reply.body
        seen.extend(resource["userName"] for resource in reply.body["Resources"])
        if "nextCursor" not in reply.body:
            return seen
        cursor = reply.body["nextCursor"]
    raise AssertionError("the walk does not end")


@pytest.fixture(scope="module")
def hosts(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two servers ("hosts") sharing SCIM_CURSOR_SECRET, two workers each."""
    folder: Path = tmp_path_factory.mktemp("gunicorn-cursor")
    with (
        serve(database.url, workers=2, log_path=folder / "a.log", environment=SHARED) as a,
        serve(database.url, workers=2, log_path=folder / "b.log", environment=SHARED) as b,
    ):
        yield [a.base_url, b.base_url]


@pytest.fixture(scope="module")
def tenant(database: Database, hosts: list[str]) -> Tenant:
    tenant = make_tenant(database, "hosts")
    for number in range(20):
        body = {"schemas": [USER_SCHEMA], "userName": f"walker{number:02d}@example.com"}
        assert call("POST", f"{hosts[0]}/scim/v2/Users", tenant.token, body).status == 201
    return tenant


def test_hosts_sharing_the_secret_continue_each_others_walks(
    hosts: list[str], tenant: Tenant
) -> None:
    expected = [f"walker{number:02d}@example.com" for number in range(20)]
    assert _walk(hosts, tenant.token) == expected


def test_the_workers_of_one_server_share_its_default_key(
    database: Database, hosts: list[str], tenant: Tenant, tmp_path: Path
) -> None:
    """Without SCIM_CURSOR_SECRET the key is made once, before gunicorn forks its workers; it
    is that server's own, so another host refuses its cursors (and clients start again)."""
    with serve(database.url, workers=2, log_path=tmp_path / "c.log") as server:
        expected = [f"walker{number:02d}@example.com" for number in range(20)]
        assert _walk([server.base_url], tenant.token) == expected
        first = call("GET", f"{server.base_url}/scim/v2/Users?count=3&cursor=", tenant.token)
    assert first.status == 200
    query = urllib.parse.urlencode({"count": 3, "cursor": first.body["nextCursor"]})
    refused = call("GET", f"{hosts[0]}/scim/v2/Users?{query}", tenant.token)
    assert refused.status == 400
    assert refused.body["scimType"] == "invalidCursor"
