"""Through a real gunicorn process: concurrent creates of one userName never produce a 500."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from scim_server.store.db import Database
from tests.conftest import USER_SCHEMA, Tenant, make_tenant
from tests.gunicorn.server import call, serve

pytestmark = pytest.mark.gunicorn


@pytest.fixture(scope="module")
def server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("gunicorn") / "stderr.log"
    with serve(database.url, workers=2, log_path=log_path) as running:
        yield running.base_url


def test_fifty_concurrent_creates_of_one_user_name(server: str, database: Database) -> None:
    tenant: Tenant = make_tenant(database, "race")
    body = {"schemas": [USER_SCHEMA], "userName": "race@example.com"}
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(
            pool.map(
                lambda _: call("POST", f"{server}/scim/v2/Users", tenant.token, body).status,
                range(50),
            )
        )
    assert Counter(statuses) == Counter({201: 1, 409: 49})

    found = call(
        "GET",
        f"{server}/scim/v2/Users?filter=userName%20eq%20%22RACE@example.com%22",
        tenant.token,
        timeout=10,
    )
    assert found.status == 200
    assert found.body["totalResults"] == 1
