"""Cursor paging of /Users and /Groups (RFC 9865, DESIGN §4.2) through HTTP, on both databases.

A walk returns every row exactly once in the order index paging gives, whatever the filter and
sort (NULL sort keys last, both directions); rows inserted or deleted between pages never make
a row that existed throughout appear twice or not at all. A cursor works only for the query,
resource type and organisation it was issued for, and only for ``cursorTimeout`` seconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from scim_server.app import create_app
from scim_server.config import Settings
from scim_server.store.db import Database
from tests.api.test_groups import create_group
from tests.conftest import Api, make_tenant

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def walk(api: Api, path: str = "/Users", **params: Any) -> list[dict[str, Any]]:
    """Every page of a cursor walk, first to last."""
    pages: list[dict[str, Any]] = []
    cursor = ""
    while True:
        response = api.get(path, query_string={**params, "cursor": cursor})
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        pages.append(page)
        assert len(pages) < 100, "the walk does not end"
        if "nextCursor" not in page:
            return pages
        cursor = page["nextCursor"]


def ids(pages: list[dict[str, Any]]) -> list[str]:
    return [resource["id"] for page in pages for resource in page["Resources"]]


def index_ids(api: Api, path: str = "/Users", **params: Any) -> list[str]:
    """The same query paged by index in one page: the order a cursor walk must reproduce."""
    body = api.get(path, query_string={**params, "count": 200}).get_json()
    assert body["totalResults"] == len(body["Resources"])
    return [resource["id"] for resource in body["Resources"]]


def refused(response: Any, scim_type: str) -> str:
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["schemas"] == [ERROR]
    assert body["scimType"] == scim_type
    detail: str = body["detail"]
    return detail


@pytest.fixture
def people(api: Api) -> list[dict[str, Any]]:
    """13 users: titles with ties, in mixed case, and missing (NULL sort keys); some emails."""
    titles = ["b", None, "A", "c", "b", None, "a", "D", "b", None, "c", "e", None]
    made = []
    for number, title in enumerate(titles):
        attributes: dict[str, Any] = {}
        if title is not None:
            attributes["title"] = title
        if number % 3:
            attributes["emails"] = [{"value": f"m{(number * 7) % 5}@example.com", "type": "work"}]
        prefix = "keep" if number % 4 else "drop"
        made.append(api.create_user(f"{prefix}-{number:02d}@example.com", **attributes))
    return made


def test_a_walk_returns_every_user_once_in_order_and_ends(
    api: Api, people: list[dict[str, Any]]
) -> None:
    pages = walk(api, count=4)
    assert ids(pages) == [person["id"] for person in people]
    assert [page["itemsPerPage"] for page in pages] == [4, 4, 4, 1]
    # RFC 9865: totalResults on the first page of the walk only; no startIndex under a cursor
    assert pages[0]["totalResults"] == 13
    assert all("totalResults" not in page for page in pages[1:])
    assert all("startIndex" not in page for page in pages)
    assert all("nextCursor" in page for page in pages[:-1])
    # cursors use only RFC 3986 unreserved characters
    assert all(
        set(page["nextCursor"])
        <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        for page in pages[:-1]
    )


def test_a_full_last_page_has_no_next_cursor(api: Api) -> None:
    made = [api.create_user(f"exact-{n}@example.com")["id"] for n in range(6)]
    pages = walk(api, count=3)
    assert len(pages) == 2  # no empty page after an exact multiple
    assert ids(pages) == made
    assert "nextCursor" not in pages[1]


def test_an_empty_result_is_one_page_without_cursor(api: Api) -> None:
    pages = walk(api, filter='userName eq "nobody"')
    assert len(pages) == 1
    assert pages[0]["Resources"] == []
    assert pages[0]["totalResults"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"sortBy": "title"},
        {"sortBy": "title", "sortOrder": "descending"},
        {"sortBy": "title", "filter": 'userName sw "keep"'},
        {"sortBy": "title", "sortOrder": "descending", "filter": 'userName sw "keep"'},
        {"sortBy": "emails.value"},
        {"sortBy": "emails", "sortOrder": "descending"},
        {"sortBy": "meta.lastModified", "sortOrder": "descending"},
        {"sortBy": "userName", "sortOrder": "descending", "filter": "title pr"},
        {"filter": 'not (userName sw "drop")'},
    ],
)
def test_a_walk_follows_filter_and_sort_including_null_keys(
    api: Api, people: list[dict[str, Any]], params: dict[str, str]
) -> None:
    expected = index_ids(api, **params)
    assert len(expected) >= 5
    for count in (1, 2, 5):
        assert ids(walk(api, count=count, **params)) == expected


def test_sorted_walk_puts_null_titles_last_in_both_directions(
    api: Api, people: list[dict[str, Any]]
) -> None:
    titles = [people_title(api, user_id) for user_id in ids(walk(api, count=3, sortBy="title"))]
    # case-insensitive (title is not caseExact); ties in creation order ("A" was made first)
    assert titles[:9] == ["A", "a", "b", "b", "b", "c", "c", "D", "e"]
    assert titles[9:] == [None] * 4
    down = ids(walk(api, count=3, sortBy="title", sortOrder="descending"))
    titles = [people_title(api, user_id) for user_id in down]
    assert titles[:9] == ["e", "D", "c", "c", "b", "b", "b", "a", "A"]
    assert titles[9:] == [None] * 4


def people_title(api: Api, user_id: str) -> str | None:
    title: str | None = api.get(f"/Users/{user_id}").get_json().get("title")
    return title


@pytest.mark.parametrize("params", [{}, {"sortBy": "userName"}, {"sortBy": "title"}])
def test_rows_inserted_or_deleted_between_pages_never_shift_the_walk(
    api: Api, people: list[dict[str, Any]], params: dict[str, str]
) -> None:
    first = api.get("/Users", query_string={**params, "count": 5, "cursor": ""}).get_json()
    served = [resource["id"] for resource in first["Resources"]]
    unserved = [user_id for user_id in index_ids(api, **params) if user_id not in served]
    # delete one served and one not yet served user; insert users sorting before and after
    assert api.delete(f"/Users/{served[1]}").status_code == 204
    assert api.delete(f"/Users/{unserved[2]}").status_code == 204
    early = api.create_user("aaa-new@example.com", title="a")["id"]
    late = api.create_user("zzz-new@example.com", title="zz")["id"]

    rest: list[str] = []
    cursor = first["nextCursor"]
    while cursor:
        query = {**params, "count": 5, "cursor": cursor}
        page = api.get("/Users", query_string=query).get_json()
        rest.extend(resource["id"] for resource in page["Resources"])
        cursor = page.get("nextCursor")
    walked = served + rest
    assert len(walked) == len(set(walked))  # no duplicates
    throughout = [user_id for user_id in unserved if user_id != unserved[2]]
    assert [user_id for user_id in rest if user_id in throughout] == throughout  # no skips
    assert unserved[2] not in walked
    assert late in rest  # sorts after the position: seen once (by pk, by userName, by title)
    if params:
        assert early not in walked  # sorts before the position it was inserted behind


def test_groups_walk_with_get_and_search(api: Api) -> None:
    made = [create_group(api, f"team {name}")["id"] for name in "gfedcba"]
    assert ids(walk(api, "/Groups", count=3)) == made
    assert ids(walk(api, "/Groups", count=2, sortBy="displayName")) == made[::-1]
    # POST /Groups/.search carries the cursor in the SearchRequest body
    walked: list[str] = []
    body: dict[str, Any] = {"schemas": [SEARCH], "cursor": "", "count": 3, "sortBy": "displayName"}
    while True:
        page = api.post("/Groups/.search", body).get_json()
        walked.extend(resource["id"] for resource in page["Resources"])
        if "nextCursor" not in page:
            break
        body["cursor"] = page["nextCursor"]
    assert walked == made[::-1]


def test_users_search_takes_a_cursor(api: Api, people: list[dict[str, Any]]) -> None:
    body: dict[str, Any] = {
        "schemas": [SEARCH],
        "filter": 'userName sw "keep"',
        "cursor": "",
        "count": 4,
        "attributes": ["userName"],
    }
    first = api.post("/Users/.search", body).get_json()
    assert first["totalResults"] == 9
    assert set(first["Resources"][0]) == {"schemas", "id", "userName"}
    body["cursor"] = first["nextCursor"]
    second = api.post("/Users/.search", body).get_json()
    assert len(second["Resources"]) == 4
    # the same cursor on GET with the same filter is the same query
    again = api.get(
        "/Users",
        query_string={"filter": 'userName sw "keep"', "count": 4, "cursor": body["cursor"]},
    ).get_json()
    assert ids([again]) == ids([second])


def test_a_cursor_is_refused_outside_its_query(
    api: Api, app: Flask, database: Database, people: list[dict[str, Any]]
) -> None:
    params = {"filter": 'userName sw "keep"', "sortBy": "title", "count": 3}
    cursor = api.get("/Users", query_string={**params, "cursor": ""}).get_json()["nextCursor"]
    assert api.get("/Users", query_string={**params, "cursor": cursor}).status_code == 200

    def attempt(path: str = "/Users", client: Api = api, **changes: Any) -> Any:
        return client.get(path, query_string={**params, "cursor": cursor, **changes})

    detail = refused(attempt(filter='userName sw "drop"'), "invalidCursor")
    assert '"cursor"' in detail
    assert "filter" in detail
    refused(attempt(sortBy="userName"), "invalidCursor")
    refused(attempt(sortOrder="descending"), "invalidCursor")
    refused(attempt("/Groups", filter=None, sortBy="displayName"), "invalidCursor")
    # another tenant holding the cursor learns nothing and gets nothing of this one
    other = Api(app.test_client(), make_tenant(database))
    other.create_user("keep-other@example.com", title="b")
    assert refused(attempt(client=other), "invalidCursor") == detail
    # forged: the sealed text altered by one character, cut short, junk
    version, sealed = cursor.split(".")
    flipped = sealed[:10] + ("A" if sealed[10] != "A" else "B") + sealed[11:]
    refused(attempt(cursor=f"{version}.{flipped}"), "invalidCursor")
    refused(attempt(cursor=f"{version}.{sealed[:-2]}"), "invalidCursor")
    refused(attempt(cursor="not-a-cursor"), "invalidCursor")
    refused(attempt(cursor="2.a b.c"), "invalidCursor")


def test_paging_parameters_that_do_not_mix_are_refused(
    api: Api, people: list[dict[str, Any]]
) -> None:
    detail = refused(
        api.get("/Users", query_string={"cursor": "", "startIndex": 3}), "invalidValue"
    )
    assert '"cursor"' in detail
    assert '"startIndex"' in detail
    body = {"schemas": [SEARCH], "cursor": "", "startIndex": 1}
    refused(api.post("/Users/.search", body), "invalidValue")
    # under a cursor count must be 1..maxPageSize (RFC 9865 invalidCount)
    assert "between 1 and 200" in refused(
        api.get("/Users", query_string={"cursor": "", "count": 0}), "invalidCount"
    )
    refused(api.get("/Users", query_string={"cursor": "", "count": 201}), "invalidCount")
    refused(api.get("/Users", query_string={"cursor": "", "count": "ten"}), "invalidCount")
    refused(api.post("/Users/.search", {"schemas": [SEARCH], "cursor": 5}), "invalidCursor")
    # the root search concatenates resource types: no cursor there
    detail = refused(api.post("/.search", {"schemas": [SEARCH], "cursor": ""}), "invalidValue")
    assert "/Users/.search" in detail
    # index paging is unchanged: count=0 still answers the total alone
    assert api.list_users(count=0)["totalResults"] == 13


def test_a_cursor_expires_after_cursor_timeout(
    database: Database, app: Flask, tenant: Any, people: list[dict[str, Any]]
) -> None:
    settings = Settings(database_url=database.url, max_page_size=200, cursor_timeout_seconds=1)
    short = create_app(settings, database=database)
    api = Api(short.test_client(), tenant)
    assert api.get("/ServiceProviderConfig").get_json()["pagination"]["cursorTimeout"] == 1
    cursor = api.get("/Users", query_string={"count": 5, "cursor": ""}).get_json()["nextCursor"]
    assert api.get("/Users", query_string={"count": 5, "cursor": cursor}).status_code == 200
    time.sleep(2.1)
    detail = refused(
        api.get("/Users", query_string={"count": 5, "cursor": cursor}), "expiredCursor"
    )
    assert "1 seconds" in detail
    # a cursor signed by another server (another key) is not ours
    refused(
        Api(app.test_client(), tenant).get("/Users", query_string={"cursor": cursor}),
        "invalidCursor",
    )


@pytest.fixture
def statements(database: Database) -> Iterator[list[tuple[str, Any]]]:
    captured: list[tuple[str, Any]] = []

    def _capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        captured.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", _capture)
    yield captured
    event.remove(database.engine, "before_cursor_execute", _capture)


def limit_and_offset(sql: str, params: Any) -> tuple[int, int]:
    """The LIMIT and OFFSET a page query was sent with (SQLite always writes an OFFSET, 0 when
    there is none; PostgreSQL names its parameters)."""
    if isinstance(params, dict):
        limit = re.search(r"LIMIT %\((\w+)\)s", sql)
        offset = re.search(r"OFFSET %\((\w+)\)s", sql)
        assert limit is not None
        return params[limit.group(1)], params[offset.group(1)] if offset else 0
    values = list(params)
    if re.search(r"LIMIT \? OFFSET \?", sql):
        return values[-2], values[-1]
    assert re.search(r"LIMIT \?", sql)
    return values[-1], 0


def page_query(statements: list[tuple[str, Any]]) -> tuple[str, Any]:
    (found,) = [(sql, params) for sql, params in statements if "LIMIT" in sql and "users" in sql]
    return found


def test_a_page_near_the_end_seeks_instead_of_offset(
    api: Api, statements: list[tuple[str, Any]], rows_loaded: list[int]
) -> None:
    for number in range(40):
        api.create_user(f"seek-{number:02d}@example.com")
    cursor = ""
    for _ in range(6):  # pages 1..6 of 8
        page = api.get("/Users", query_string={"count": 5, "cursor": cursor}).get_json()
        cursor = page["nextCursor"]
    statements.clear()
    rows_loaded.clear()
    seventh = api.get("/Users", query_string={"count": 5, "cursor": cursor}).get_json()
    assert seventh["Resources"][0]["userName"] == "seek-30@example.com"
    assert "nextCursor" in seventh
    assert not any("count(" in sql.lower() for sql, _ in statements)  # no COUNT after page one
    # count + 1 rows (the look-ahead row says whether nextCursor is due), no rows skipped over
    assert limit_and_offset(*page_query(statements)) == (6, 0)
    # the page's keys are read first; only the page's users are loaded, not the look-ahead
    # row's, nor the 30 users before
    assert len(rows_loaded) == 5
    # the last page: only what is left
    statements.clear()
    rows_loaded.clear()
    last = api.get("/Users", query_string={"count": 5, "cursor": seventh["nextCursor"]})
    assert "nextCursor" not in last.get_json()
    assert limit_and_offset(*page_query(statements)) == (6, 0)
    assert len(rows_loaded) == 5
    # index paging of the same page skips over the rows before it: the cost cursors avoid
    statements.clear()
    rows_loaded.clear()
    api.get("/Users", query_string={"count": 5, "startIndex": 36})
    assert limit_and_offset(*page_query(statements)) == (5, 35)


def test_sort_order_without_sort_by_walks_the_default_order_as_index_paging_does(
    api: Api, people: list[dict[str, Any]]
) -> None:
    params = {"sortOrder": "descending", "count": 4}
    by_index = [u["id"] for u in api.list_users(**params, startIndex=1)["Resources"]]
    by_cursor = [u["id"] for u in api.list_users(**params, cursor="")["Resources"]]
    assert by_cursor == by_index
