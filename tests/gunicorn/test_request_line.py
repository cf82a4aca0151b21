"""Through a real gunicorn process: a GET carrying the longest filter the server accepts reaches
the application, so its answer is SCIM's (gunicorn's default request line of 4094 bytes answered
such a GET with an HTML 414 of its own)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from scim_server.config import Settings
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
