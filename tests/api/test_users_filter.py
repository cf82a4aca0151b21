"""Filters run as SQL (RFC 7644 §3.4.2.2), on both databases.

Each filter's result through HTTP is checked against the in-memory evaluator (the plain statement
of the RFC semantics), and the number of user rows loaded from the database is asserted to equal
the number of matches: the filtering happened in SQL, not by loading rows into Python.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from scim_server.scim.filter import parse_filter
from scim_server.scim.filter_eval import matches
from scim_server.scim.schema import default_registry
from scim_server.store import filters
from scim_server.store.db import Database
from tests.conftest import USER_SCHEMA, Api, StatementCounter, make_tenant

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

PEOPLE: list[dict[str, Any]] = [
    {
        "userName": "bjensen@acme.com",
        "externalId": "ext-1",
        "displayName": "Barbara Jensen",
        "title": "Tour Guide",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [
            {"value": "bjensen@acme.com", "type": "work", "primary": True},
            {"value": "babs@home.example", "type": "home"},
        ],
        "phoneNumbers": [{"value": "+1 555 0101", "type": "work", "primary": True}],
        ENTERPRISE: {"department": "Tours", "employeeNumber": "100"},
    },
    {
        "userName": "jsmith@acme.com",
        "externalId": "ext-2",
        "displayName": "John Smith",
        "name": {"givenName": "John", "familyName": "Smith"},
        "emails": [{"value": "jsmith@other.example", "type": "work"}],
        "active": False,
        ENTERPRISE: {"department": "Sales"},
    },
    {
        "userName": "ALICE_100%@acme.com",
        "displayName": "Alice",
        "nickName": "Al",
        "emails": [{"value": "alice@acme.com", "type": "home"}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}],
    },
    {"userName": "nobody", "title": ""},
    {"userName": "ÄNNE@acme.com", "title": "Zoologist", "name": {"familyName": "Öst"}},
]

FILTERS = [
    'userName eq "BJENSEN@acme.com"',
    'userName ne "bjensen@acme.com"',
    'userName co "SMITH"',
    'userName sw "alice"',
    'userName ew "@ACME.com"',
    'userName co "100%"',
    'userName co "_"',
    'userName gt "c"',
    'userName ge "jsmith@acme.com"',
    'userName lt "c"',
    'userName le "bjensen@acme.com"',
    "title pr",
    "nickName pr",
    "not (title pr)",
    'externalId eq "ext-1"',
    'externalId eq "EXT-1"',
    "active eq false",
    "active eq true",
    'name.familyName eq "jensen"',
    'name.givenName sw "J"',
    'emails.value co "@acme.com"',
    'emails co "home.example"',
    'emails[type eq "work" and value co "@acme.com"]',
    'emails[type eq "home" and value co "@acme.com"]',
    'emails[type eq "work"].value ew "other.example"',
    'emails[not (type eq "work")]',
    "emails.primary eq true",
    'phoneNumbers[type eq "mobile"]',
    f'{ENTERPRISE}:department eq "tours"',
    f"{ENTERPRISE}:employeeNumber pr",
    'userName sw "b" or userName sw "j"',
    'userName sw "b" or userName sw "j" and active eq true',
    '(userName sw "b" or userName sw "j") and active eq true',
    'not (userName eq "nobody") and not (emails.value co "acme")',
    'meta.created gt "2000-01-01T00:00:00Z"',
    'meta.lastModified lt "2000-01-01T00:00:00Z"',
    "displayName eq null",
    'USERNAME Eq "nobody"',
    'title ne "Tour Guide"',
    'not (title eq "Tour Guide")',
    'nickName ne "Al"',
    "name pr",
    "name eq null",
    "emails pr",
    "emails eq null",
    # a sub-attribute of a multi-valued attribute: ``eq null`` is ``not pr``, no element has it
    "emails.type eq null",
    "emails.display eq null",
    "phoneNumbers.type eq null",
    "not (emails.type eq null)",
    "emails ne null",
    'userName sw "änne"',
    'name.familyName eq "öst"',
    'userName gt "b"',
    'title lt "a"',
    'emails.value ne "alice@acme.com"',
    # externalId and id are caseExact: co / sw / ew compare case too (SQLite's LIKE would not)
    'externalId co "EXT"',
    'externalId sw "Ext"',
    'externalId ew "T-1"',
    'externalId sw "ext"',
    'externalId ew "-2"',
    'externalId co "t-"',
    'externalId co ""',
    'externalId ew ""',
    'externalId sw "ext-10"',
    'id co "A"',
    'not (externalId sw "EXT")',
    # an absent primary is false (RFC 7643 §2.4), in SQL as in the evaluator
    "emails.primary eq false",
    "emails.primary ne true",
    "emails.primary pr",
    "emails[primary eq false]",
    "emails[primary ne true]",
    "emails[primary pr]",
    "emails[primary eq null]",
    "emails[not (primary eq true)]",
    'emails[primary eq false and type eq "home"]',
    "phoneNumbers[primary eq false]",
    "phoneNumbers[primary ne true]",
    "phoneNumbers.primary pr",
    "not (phoneNumbers[primary eq true])",
]


@pytest.fixture
def people(api: Api) -> list[dict[str, Any]]:
    return [api.create_user(**person) for person in PEOPLE]


@pytest.mark.parametrize("filter_text", FILTERS)
def test_filter_matches_rfc_semantics_and_runs_in_sql(
    api: Api,
    people: list[dict[str, Any]],
    rows_loaded: list[int],
    count_statements: StatementCounter,
    filter_text: str,
) -> None:
    rt = default_registry().resource_type("User")
    expr = parse_filter(filter_text)
    expected = [p["id"] for p in people if matches(rt, expr, p)]

    rows_loaded.clear()
    result = api.list_users(filter=filter_text)

    assert sorted(r["id"] for r in result["Resources"]) == sorted(expected)
    assert result["totalResults"] == len(expected)
    # only the matching rows were read: the filter ran in the database
    assert len(rows_loaded) == len(expected)
    # the page's keys, the users when any matched, and a COUNT only when the page is full
    # (a shorter page tells the total)
    user_queries = [s for s in count_statements.statements if "FROM users" in s]
    assert len(user_queries) == 1 + bool(expected) + (len(expected) >= 100)


def test_filter_on_a_multi_valued_attribute_uses_a_subquery(
    api: Api, people: list[dict[str, Any]], count_statements: StatementCounter
) -> None:
    api.list_users(filter='emails[type eq "work" and value co "@acme.com"]')
    filtered = [s for s in count_statements.statements if "FROM users" in s and "LIKE" in s]
    page_query = filtered[-1].lower()
    assert "exists" in page_query
    assert "user_attribute_values" in page_query
    assert "like" in page_query


def test_value_path_requires_both_conditions_on_the_same_email(
    api: Api, people: list[dict[str, Any]]
) -> None:
    # Barbara has a work email at acme.com and a home email elsewhere; Alice a home one at acme.
    work_at_acme = api.list_users(filter='emails[type eq "work" and value co "@acme.com"]')
    assert [r["userName"] for r in work_at_acme["Resources"]] == ["bjensen@acme.com"]
    home_at_acme = api.list_users(filter='emails[type eq "home" and value co "@acme.com"]')
    assert [r["userName"] for r in home_at_acme["Resources"]] == ["ALICE_100%@acme.com"]


def test_like_wildcards_in_values_are_literal(api: Api, people: list[dict[str, Any]]) -> None:
    assert api.list_users(filter='userName co "%"')["totalResults"] == 1
    assert api.list_users(filter='userName co "_"')["totalResults"] == 1
    assert api.list_users(filter='userName sw "%"')["totalResults"] == 0


def test_lookup_miss_is_an_empty_list(api: Api, people: list[dict[str, Any]]) -> None:
    result = api.list_users(filter='userName eq "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"')
    assert result == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }


def test_sorting_and_paging(api: Api, people: list[dict[str, Any]]) -> None:
    names = sorted(p["userName"].lower() for p in people)
    ascending = api.list_users(sortBy="userName")
    assert [r["userName"].lower() for r in ascending["Resources"]] == names
    descending = api.list_users(sortBy="userName", sortOrder="descending")
    assert [r["userName"].lower() for r in descending["Resources"]] == names[::-1]

    page = api.list_users(sortBy="userName", startIndex=2, count=2)
    assert page["totalResults"] == len(people)
    assert page["startIndex"] == 2
    assert page["itemsPerPage"] == 2
    assert [r["userName"].lower() for r in page["Resources"]] == names[1:3]

    assert api.list_users(count=0) | {"Resources": []} == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(people),
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }
    past_the_end = api.list_users(startIndex=50)
    assert past_the_end["totalResults"] == len(people)
    assert past_the_end["Resources"] == []


def test_sort_by_multi_valued_attribute_uses_the_primary_value(
    api: Api, people: list[dict[str, Any]]
) -> None:
    result = api.list_users(sortBy="emails", filter="emails pr")
    assert [r["userName"] for r in result["Resources"]] == [
        "ALICE_100%@acme.com",  # alice@acme.com
        "bjensen@acme.com",  # primary bjensen@acme.com
        "jsmith@acme.com",  # jsmith@other.example
    ]


def test_list_applies_attributes_projection(api: Api, people: list[dict[str, Any]]) -> None:
    result = api.list_users(attributes="userName", filter='userName eq "nobody"')
    assert result["Resources"] == [
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": people[3]["id"],
            "userName": "nobody",
        }
    ]


def test_search_endpoints_take_a_search_request(api: Api, people: list[dict[str, Any]]) -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'emails.value co "@acme.com"',
        "attributes": ["userName"],
        "sortBy": "userName",
        "startIndex": 1,
        "count": 10,
    }
    for path in ("/Users/.search", "/.search"):
        response = api.post(path, body)
        assert response.status_code == 200, response.get_json()
        result = response.get_json()
        assert [r["userName"] for r in result["Resources"]] == [
            "ALICE_100%@acme.com",
            "bjensen@acme.com",
        ]
        assert set(result["Resources"][0]) == {"schemas", "id", "userName"}


# --- one filter shape, many requests (issue #7): statements are built once per shape ------------


def test_one_filter_shape_serves_every_value_and_every_organisation(
    app: Flask, database: Database
) -> None:
    """Requests of one shape share their statements; each binds its own values and its own
    organisation, so no answer leaks a value or a user of another request."""
    first, second = (Api(app.test_client(), make_tenant(database)) for _ in range(2))
    for api, mine in ((first, "first"), (second, "second")):
        api.create_user("shared@acme.com", emails=[{"value": f"{mine}@acme.com", "type": "work"}])
        api.create_user(f"{mine}_only@acme.com", title=f"{mine} 50%")
    for _ in range(2):  # the second pass runs every shape remembered
        for api, mine, other in ((first, "first", "second"), (second, "second", "first")):
            names = [
                r["userName"]
                for r in api.list_users(filter='userName eq "shared@acme.com"')["Resources"]
            ]
            assert names == ["shared@acme.com"]
            own = api.list_users(filter=f'userName eq "{mine}_only@acme.com"')
            assert [r["userName"] for r in own["Resources"]] == [f"{mine}_only@acme.com"]
            assert (
                api.list_users(filter=f'userName eq "{other}_only@acme.com"')["totalResults"] == 0
            )
            by_email = api.list_users(filter=f'emails[type eq "work" and value sw "{mine}"]')
            assert [r["userName"] for r in by_email["Resources"]] == ["shared@acme.com"]
            assert api.list_users(filter=f'emails.value co "{other}"')["totalResults"] == 0
            titled = api.list_users(filter=f'title co "{mine} 5"', sortBy="userName")
            assert [r["userName"] for r in titled["Resources"]] == [f"{mine}_only@acme.com"]
            assert api.list_users(filter='title co "0%"', count=1)["totalResults"] == 1
            assert api.list_users(filter='title co "_"')["totalResults"] == 0


def test_requests_of_one_filter_shape_run_one_prebuilt_statement(
    api: Api, database: Database, people: list[dict[str, Any]]
) -> None:
    """A ``userName eq`` lookup (what Okta sends before every create) runs the statement built
    for its shape, not one built per request: only its value is bound anew."""
    executed: list[Any] = []

    def remember(conn: Any, clauseelement: Any, *args: Any) -> None:
        executed.append(clauseelement)

    event.listen(database.engine, "before_execute", remember)
    try:
        api.list_users(filter='userName eq "bjensen@acme.com"')
        first = list(executed)
        executed.clear()
        api.list_users(filter='userName eq "jsmith@acme.com"')
        second = list(executed)
    finally:
        event.remove(database.engine, "before_execute", remember)
    assert len(first) == len(second)
    assert all(a is b for a, b in zip(first, second, strict=True)), "a statement was built anew"


def _large_filter(first_attribute: str, comparisons: int) -> str:
    """A filter of ``comparisons`` comparisons whose shape is new for each ``first_attribute``."""
    terms = [f'{first_attribute} co "jensen"']
    terms += [f'userName eq "absent-{n}@acme.com"' for n in range(comparisons - 2)]
    terms.append('emails[type eq "home" and value ew "example"]')
    return " or ".join(terms)


def test_a_large_filter_is_answered_but_its_statements_are_not_kept(
    api: Api, database: Database, people: list[dict[str, Any]]
) -> None:
    """Statements of a filter of many comparisons held megabytes each, so a client sending
    distinct ones could grow a worker without bound: they are compiled for their request alone.
    Small shapes are remembered in a cache of their own, so made-up shapes cannot fill the
    engine's. (Both are SQLAlchemy LRU caches; no public API tells their size.)"""
    engine_cache = database.engine._compiled_cache
    assert engine_cache is not None
    shapes_cache = filters._COMPILED_SHAPES
    rt = default_registry().resource_type("User")

    def answer(filter_text: str) -> list[str]:
        expected = sorted(p["id"] for p in people if matches(rt, parse_filter(filter_text), p))
        result = api.list_users(filter=filter_text)
        assert sorted(r["id"] for r in result["Resources"]) == expected
        return expected

    answer(_large_filter("displayName", 40))  # compiles what every list request runs
    before = len(engine_cache), len(shapes_cache)
    for attribute in ("userName", "name.familyName", "title"):
        assert answer(_large_filter(attribute, 40))  # bjensen, and Alice by her home email
        assert (len(engine_cache), len(shapes_cache)) == before, "a large filter was kept"
    shapes_cache.clear()
    answer('nickName co "x" and title sw "y"')  # a small shape is remembered, in its own cache
    assert len(shapes_cache) == 1
    assert len(engine_cache) == before[0]


# --- caseExact attributes wherever they are stored: co / sw / ew compare case --------------------

CASE_EXACT_PEOPLE: list[dict[str, Any]] = [
    {
        "userName": "u1@acme.com",
        "externalId": "Straße-Ünï",
        ENTERPRISE: {"manager": {"value": "MgrABC"}},
        "profileUrl": "https://Example.com/u1",
        "photos": [{"value": "https://img.example.com/A.PNG", "type": "photo"}],
    },
    {
        "userName": "u2@acme.com",
        "externalId": "strasse-ünï",
        ENTERPRISE: {"manager": {"value": "mgrabc"}},
        "profileUrl": "https://example.com/u2",
        "photos": [{"value": "https://img.example.com/a.png", "type": "photo"}],
    },
    {"userName": "u3@acme.com", "externalId": "emoji-😀x", "profileUrl": ""},
    {"userName": "u4@acme.com"},
]

CASE_EXACT_FILTERS = [
    'externalId sw "Straße"',
    'externalId ew "Ünï"',
    'externalId co "😀"',
    'externalId ew "-😀X"',
    f'{ENTERPRISE}:manager.value co "ABC"',  # in the JSON document
    f'{ENTERPRISE}:manager.value sw "mgr"',
    f'not ({ENTERPRISE}:manager.value ew "abc")',
    'profileUrl sw "https://E"',
    'profileUrl ew ""',
    'photos.value ew ".PNG"',  # in the child table
    'photos[value co "/A."]',
    'photos[not (value co "/A.")]',
]


@pytest.mark.parametrize("filter_text", CASE_EXACT_FILTERS)
def test_co_sw_ew_compare_case_on_case_exact_attributes_wherever_stored(
    api: Api, filter_text: str
) -> None:
    """SQLite's LIKE folds ASCII case: before 4f280e2 these matched both spellings there."""
    people = [api.create_user(**person) for person in CASE_EXACT_PEOPLE]
    rt = default_registry().resource_type("User")
    expected = sorted(p["id"] for p in people if matches(rt, parse_filter(filter_text), p))
    result = api.list_users(filter=filter_text)
    assert sorted(r["id"] for r in result["Resources"]) == expected


def test_group_member_values_compare_case(api: Api) -> None:
    """``members.value`` is caseExact: an id's letters in upper case are another id."""
    user = api.create_user("member@acme.com")
    group = api.post(
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Members",
            "members": [{"value": user["id"]}],
        },
    ).get_json()
    letters = next(i for i, c in enumerate(user["id"]) if c.isalpha())
    part = user["id"][letters : letters + 6]
    for text, found in (
        (f'members.value co "{part}"', True),
        (f'members.value co "{part.upper()}"', False),
        (f'members.value sw "{user["id"][:8].upper()}"', user["id"][:8].upper() == user["id"][:8]),
        (f'members[value ew "{user["id"][-6:]}"]', True),
    ):
        body = api.get("/Groups", query_string={"filter": text}).get_json()
        assert [g["id"] for g in body["Resources"]] == ([group["id"]] if found else []), text


@pytest.mark.parametrize("resource", ["Users", "Groups"])
def test_the_meta_times_a_resource_shows_find_it_again(api: Api, resource: str) -> None:
    """A client syncing changes since the last ``meta.lastModified`` it saw filters with that
    value: ``eq`` must find the resource, ``gt`` must not send it again (times were shown to
    the millisecond but compared to the microsecond)."""
    if resource == "Users":
        shown = api.create_user("delta@example.com")
    else:
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "D"}
        shown = api.post("/Groups", body).get_json()
    for name in ("created", "lastModified"):
        moment = shown["meta"][name]

        def found(operator: str, name: str = name, moment: str = moment) -> list[str]:
            response = api.get(
                f"/{resource}", query_string={"filter": f'meta.{name} {operator} "{moment}"'}
            )
            assert response.status_code == 200, response.get_json()
            return [r["id"] for r in response.get_json()["Resources"]]

        assert found("eq") == [shown["id"]]
        assert found("ge") == [shown["id"]]
        assert found("le") == [shown["id"]]
        assert found("gt") == []
        assert found("lt") == []


def test_sort_by_multi_valued_attribute_without_a_primary_uses_the_first_value(
    api: Api,
) -> None:
    """RFC 7644 §3.4.2.3: the primary value, else the first one as sent, not the smallest."""
    zed = api.create_user("zed", emails=[{"value": "d@x.example"}, {"value": "a@x.example"}])
    amy = api.create_user("amy", emails=[{"value": "c@x.example"}])
    kim = api.create_user(
        "kim", emails=[{"value": "b@x.example"}, {"value": "e@x.example", "primary": True}]
    )
    for query in ({}, {"cursor": ""}):
        result = api.list_users(sortBy="emails", **query)
        assert [r["id"] for r in result["Resources"]] == [amy["id"], zed["id"], kim["id"]]
        result = api.list_users(sortBy="emails.value", sortOrder="descending", **query)
        assert [r["id"] for r in result["Resources"]] == [kim["id"], zed["id"], amy["id"]]


# Letters whose lower case Python and PostgreSQL disagree on: Python lowers "İ" to "i" and a
# combining dot, PostgreSQL to "i"; a final capital sigma becomes U+03C2 in Python, U+03C3 in
# PostgreSQL (``store.text``).
FOLDED_DIFFERENTLY = ("İris@acme.com", "ΟΔΥΣΣΕΥΣ@acme.com")


@pytest.mark.parametrize("user_name", FOLDED_DIFFERENTLY)
def test_a_user_name_is_found_by_its_own_text_in_any_case(api: Api, user_name: str) -> None:
    """An IdP looks a user up by userName before creating it; a name the lookup cannot find
    but the uniqueness rule refuses would leave the user unlinked for good."""
    local = user_name.split("@")[0]
    user = api.create_user(
        user_name, displayName=local, emails=[{"value": user_name, "type": "work"}]
    )
    for text in (
        f'userName eq "{user_name}"',
        f'userName eq "{user_name.upper()}"',
        f'userName co "{local}"',
        f'userName sw "{local.upper()}"',
        f'userName ge "{user_name}" and userName le "{user_name}"',
        f'emails.value eq "{user_name}"',
        f'emails[value ew "{local}@acme.com"]',
        f'displayName eq "{local}"',
    ):
        found = api.list_users(filter=text)
        assert [r["id"] for r in found["Resources"]] == [user["id"]], text
    again = api.post("/Users", {"schemas": [USER_SCHEMA], "userName": user_name})
    assert again.status_code == 409


def test_a_group_name_is_found_by_its_own_text_in_any_case(api: Api) -> None:
    group = api.post(
        "/Groups",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "İT Team"},
    ).get_json()
    for text in ('displayName eq "İT Team"', 'displayName eq "İT TEAM"', 'displayName co "İT"'):
        body = api.get("/Groups", query_string={"filter": text}).get_json()
        assert [g["id"] for g in body["Resources"]] == [group["id"]], text


@pytest.mark.parametrize(
    ("sort_by", "kind"),
    [
        ("emails.primary", "boolean"),
        ("phoneNumbers.primary", "boolean"),
        ("x509Certificates", "binary"),
        ("x509Certificates.value", "binary"),
    ],
)
def test_sorting_by_a_boolean_or_binary_element_value_is_refused(
    api: Api, people: list[dict[str, Any]], sort_by: str, kind: str
) -> None:
    """``emails.primary`` was a 500 on PostgreSQL (lower() and min() of a boolean); base64 has
    no order worth a sort, and binary values are not indexed."""
    response = api.get("/Users", query_string={"sortBy": sort_by})
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["scimType"] == "invalidFilter"
    assert sort_by in body["detail"]
    assert kind in body["detail"]
