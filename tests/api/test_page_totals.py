"""``totalResults`` of every page position (RFC 7644 §3.4.2.4): a page counts only when it cannot
tell the total itself, and the answer must not depend on which of the two ways it was found."""

from __future__ import annotations

import pytest

from scim_server.app import create_app
from scim_server.config import Settings
from scim_server.store.db import Database
from tests.conftest import Api

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
POPULATION = 5


@pytest.fixture
def populated(api: Api) -> Api:
    for n in range(POPULATION):
        api.create_user(f"page{n}@example.com")
        created = api.post("/Groups", {"schemas": [GROUP], "displayName": f"Team {n}"})
        assert created.status_code == 201
        assert created.get_json()["displayName"] == f"Team {n}"  # reading ends the stream
    return api


@pytest.mark.parametrize("path", ["/Users", "/Groups"])
def test_every_start_index_and_count_reports_the_whole_total(populated: Api, path: str) -> None:
    for start in range(1, POPULATION + 3):
        for count in range(POPULATION + 2):
            response = populated.get(path, query_string={"startIndex": start, "count": count})
            assert response.status_code == 200, response.get_json()
            body = response.get_json()
            expected = max(0, min(count, POPULATION - start + 1))
            where = f"startIndex={start} count={count}"
            assert body["totalResults"] == POPULATION, where
            assert body["itemsPerPage"] == expected, where
            assert len(body.get("Resources", [])) == expected, where


@pytest.mark.parametrize("matches", [0, 1, 3])
def test_a_filtered_page_reports_its_matches(populated: Api, matches: int) -> None:
    names = " or ".join(f'userName eq "page{n}@example.com"' for n in range(matches))
    body = populated.list_users(filter=names or 'userName eq "nobody@example.com"', count=2)
    assert body["totalResults"] == matches
    assert len(body.get("Resources", [])) == min(matches, 2)


@pytest.mark.parametrize("count", [1, POPULATION - 1, POPULATION, POPULATION + 1])
def test_the_first_cursor_page_reports_the_total(populated: Api, count: int) -> None:
    body = populated.list_users(cursor="", count=count)
    assert body["totalResults"] == POPULATION
    assert len(body["Resources"]) == min(count, POPULATION)
    assert ("nextCursor" in body) is (count < POPULATION)


@pytest.mark.parametrize("path", ["/Users", "/Groups"])
def test_a_count_over_the_maximum_is_capped_to_it(
    populated: Api, database: Database, path: str
) -> None:
    """DESIGN §4: ``count`` is capped (RFC 7644 §3.4.2.4 lets a page hold fewer than asked;
    ``itemsPerPage`` says how many it holds). A client asking for more pages on at the maximum."""
    small = create_app(Settings(database_url=database.url, max_page_size=2), database=database)
    api = Api(small.test_client(), populated.tenant)
    assert api.get("/ServiceProviderConfig").get_json()["filter"]["maxResults"] == 2
    seen: list[str] = []
    for start in (1, 3, 5):
        response = api.get(path, query_string={"startIndex": start, "count": 100000})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["totalResults"] == POPULATION
        assert body["itemsPerPage"] == len(body["Resources"]) == min(2, POPULATION - start + 1)
        seen += [resource["id"] for resource in body["Resources"]]
    assert len(set(seen)) == POPULATION
    for huge in ("99999999999999999999", "9" * 5000):  # past 64 bits, past Python's int()
        response = api.get(path, query_string={"count": huge})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["itemsPerPage"] == 2
    for small, expected in (("0" * 30 + "1", 1), ("-" + "9" * 30, 0)):  # not sizes: values
        response = api.get(path, query_string={"count": small})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["itemsPerPage"] == expected
    search = api.post(f"{path}/.search", {"schemas": [SEARCH], "count": 100000})
    assert search.status_code == 200, search.get_json()
    assert search.get_json()["itemsPerPage"] == 2
