"""Bad input answers the right SCIM error and writes nothing (RFC 7644 §3.12)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scim_server.store.db import Database
from tests.api.audit_support import auditor_for, request_id
from tests.conftest import SCIM, USER_SCHEMA, Api, patch_body, store_snapshot

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def assert_error(response: Any, status: int, scim_type: str | None, *detail_words: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/scim+json"
    body = response.get_json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    for word in detail_words:
        assert word in body["detail"], body["detail"]


@pytest.fixture
def seeded(api: Api) -> dict[str, Any]:
    return api.create_user(
        "seed@example.com",
        displayName="Seed",
        emails=[{"value": "seed@example.com", "type": "work"}],
    )


def test_malformed_json_is_invalid_syntax(
    api: Api, database: Database, seeded: dict[str, Any]
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    response = api.request(
        "POST", "/Users", data=b'{"userName": "x",', content_type="application/scim+json"
    )
    assert_error(response, 400, "invalidSyntax", "not valid JSON")
    response = api.request(
        "PATCH", f"/Users/{seeded['id']}", data=b"[1,", content_type="application/scim+json"
    )
    assert_error(response, 400, "invalidSyntax", "not valid JSON")
    assert store_snapshot(database, api.tenant.org_id) == before


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("NaN", "NaN is not a JSON number"),
        ("Infinity", "Infinity is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ("9" * 5000, "a number has more than 4300 digits"),
        ("1e400", "the number 1e400 is too large"),
    ],
    ids=["NaN", "Infinity", "-Infinity", "5000 digits", "1e400"],
)
def test_what_python_reads_but_json_has_not_is_invalid_syntax(
    api: Api, database: Database, value: str, said: str
) -> None:
    """Python's decoder reads NaN and Infinity (RFC 8259 has neither) and words its limit on
    long integers in Python's terms ("use sys.set_int_max_str_digits()")."""
    before = store_snapshot(database, api.tenant.org_id)
    body = '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "n@x.com",'
    body += f' "nickName": {value}}}'
    response = api.request("POST", "/Users", data=body.encode(), content_type=SCIM)
    assert_error(response, 400, "invalidSyntax", said)
    assert "sys." not in response.get_json()["detail"]
    assert store_snapshot(database, api.tenant.org_id) == before


def test_unknown_attribute_is_refused(api: Api, database: Database, seeded: dict[str, Any]) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    response = api.post(
        "/Users", {"schemas": [USER_SCHEMA], "userName": "new", "favouriteColour": "red"}
    )
    assert_error(response, 400, "invalidSyntax", "favouriteColour")
    response = api.put(
        f"/Users/{seeded['id']}",
        {"schemas": [USER_SCHEMA], "userName": "seed@example.com", "name": {"nickname": "x"}},
    )
    assert_error(response, 400, "invalidSyntax", "nickname")
    assert store_snapshot(database, api.tenant.org_id) == before


@pytest.mark.parametrize(
    ("attribute", "value", "words"),
    [
        ("active", "yes", ("active", "boolean")),
        ("userName", 42, ("userName", "string")),
        ("name", "Barbara", ("name",)),
        ("emails", [{"value": 7}], ("emails.value", "string")),
        ("emails", ["a@b.c"], ("emails",)),
    ],
)
def test_wrong_type_is_invalid_value(
    api: Api,
    database: Database,
    seeded: dict[str, Any],
    attribute: str,
    value: Any,
    words: tuple[str, ...],
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    body = {"schemas": [USER_SCHEMA], "userName": "typed", attribute: value}
    assert_error(api.post("/Users", body), 400, "invalidValue", *words)
    patch = patch_body({"op": "replace", "path": attribute, "value": value})
    assert_error(api.patch(f"/Users/{seeded['id']}", patch), 400, "invalidValue", *words)
    assert store_snapshot(database, api.tenant.org_id) == before


def test_missing_user_name_is_invalid_value(api: Api, database: Database) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    assert_error(
        api.post("/Users", {"schemas": [USER_SCHEMA], "displayName": "x"}),
        400,
        "invalidValue",
        "userName",
    )
    assert store_snapshot(database, api.tenant.org_id) == before


def test_duplicate_user_name_is_409_uniqueness_case_insensitively(
    api: Api, database: Database, seeded: dict[str, Any]
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    response = api.post("/Users", {"schemas": [USER_SCHEMA], "userName": "SEED@example.com"})
    assert_error(response, 409, "uniqueness", "userName", "SEED@example.com")
    other = api.create_user("other@example.com")
    before = store_snapshot(database, api.tenant.org_id)
    renamed = api.patch(
        f"/Users/{other['id']}",
        patch_body({"op": "replace", "path": "userName", "value": "Seed@Example.com"}),
    )
    assert_error(renamed, 409, "uniqueness", "userName")
    assert store_snapshot(database, api.tenant.org_id) == before


@pytest.mark.parametrize(
    "bad_filter",
    [
        "userName eq",
        'userName eq "unterminated',
        'userName xx "a"',
        'nosuchattribute eq "a"',
        'name.nosuch eq "a"',
        'emails[type eq "work"',
        '(userName eq "a"',
        "active gt true",
        'userName eq "a" and',
        'meta.lastModified gt "not a date"',
        'name eq "x"',
    ],
)
def test_bad_filter_is_invalid_filter(api: Api, seeded: dict[str, Any], bad_filter: str) -> None:
    response = api.get("/Users", query_string={"filter": bad_filter})
    assert_error(response, 400, "invalidFilter")


@pytest.mark.parametrize(
    ("operation", "status", "scim_type", "word"),
    [
        ({"op": "replace", "path": "nosuch", "value": "x"}, 400, "invalidPath", "nosuch"),
        ({"op": "replace", "path": "emails[type eq", "value": "x"}, 400, "invalidPath", "emails"),
        ({"op": "remove"}, 400, "noTarget", ""),
        (
            # a whole element through a filter that matches nothing: RFC 7644 §3.5.2.3
            {"op": "replace", "path": 'emails[type eq "home"]', "value": {"value": "x@y.z"}},
            400,
            "noTarget",
            "",
        ),
        ({"op": "replace", "path": "id", "value": "x"}, 400, "mutability", "id"),
        (
            {"op": "frobnicate", "path": "displayName", "value": "x"},
            400,
            "invalidSyntax",
            "frobnicate",
        ),
        (
            # RFC 7643 §2.1: one attribute twice in different case is ambiguous, as in a POST
            {"op": "replace", "value": {"title": "a", "TITLE": "b"}},
            400,
            "invalidSyntax",
            "given twice in different case",
        ),
    ],
)
def test_bad_patch_leaves_the_user_unchanged(
    api: Api,
    database: Database,
    seeded: dict[str, Any],
    operation: dict[str, Any],
    status: int,
    scim_type: str,
    word: str,
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    # a valid first operation must not be applied when a later one fails (atomic PATCH)
    body = patch_body({"op": "replace", "path": "displayName", "value": "Changed"}, operation)
    assert_error(api.patch(f"/Users/{seeded['id']}", body), status, scim_type, word)
    assert store_snapshot(database, api.tenant.org_id) == before
    assert api.get(f"/Users/{seeded['id']}").get_json()["displayName"] == "Seed"


def test_patch_body_without_patchop_schema_is_refused(api: Api, seeded: dict[str, Any]) -> None:
    response = api.patch(
        f"/Users/{seeded['id']}",
        {"Operations": [{"op": "replace", "path": "displayName", "value": "x"}]},
    )
    assert_error(response, 400, "invalidSyntax")


def test_malformed_list_parameters_are_refused(api: Api, seeded: dict[str, Any]) -> None:
    assert_error(api.get("/Users", query_string={"count": "ten"}), 400, "invalidValue", "count")
    # digits of other scripts are no integer of the protocol (Python's int() would read them)
    for name, text in (
        ("count", "\u0663"),
        ("startIndex", "\uff12"),
        ("count", "1_000"),
        ("startIndex", "9" * 5000),
    ):
        assert_error(api.get("/Users", query_string={name: text}), 400, "invalidValue", name)
    assert_error(
        api.get("/Users", query_string={"sortOrder": "sideways"}), 400, "invalidValue", "sortOrder"
    )


def test_unsupported_media_type(api: Api) -> None:
    response = api.request("POST", "/Users", data=b"userName=x", content_type="text/plain")
    assert_error(response, 415, None, "text/plain")


def test_scim_json_with_charset_and_plain_json_are_accepted(api: Api) -> None:
    for content_type in ("application/scim+json; charset=utf-8", "application/json"):
        response = api.request(
            "POST",
            "/Users",
            data=b'{"schemas": ["%s"], "userName": "%s"}'
            % (USER_SCHEMA.encode(), content_type.split(";")[0].replace("/", ".").encode()),
            content_type=content_type,
        )
        assert response.status_code == 201, response.get_json()


def test_request_body_over_the_limit_is_413(api: Api, database: Database) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    body = {"schemas": [USER_SCHEMA], "userName": "big", "displayName": "x" * 300_000}
    assert_error(api.post("/Users", body), 413, None, "too large")
    assert store_snapshot(database, api.tenant.org_id) == before


def test_unknown_endpoint_and_unbuilt_features(api: Api) -> None:
    assert_error(api.get("/Nope"), 404, None)
    # /Bulk is built (tests/api/test_bulk.py): a BulkRequest without its URN is a 400
    assert_error(api.post("/Bulk", {"schemas": []}), 400, "invalidSyntax", "BulkRequest")
    assert_error(api.get("/Me"), 501, None, "/Me")
    assert_error(api.request("POST", "/Users/some-id"), 405, None)


def test_bad_projection_on_a_write_refuses_before_writing(
    api: Api, database: Database, seeded: dict[str, Any]
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    both = {"attributes": "userName", "excludedAttributes": "emails"}
    created = api.post(
        "/Users", {"schemas": [USER_SCHEMA], "userName": "p@x.com"}, query_string=both
    )
    assert_error(created, 400, "invalidValue", "excludedAttributes")
    patched = api.patch(
        f"/Users/{seeded['id']}",
        patch_body({"op": "replace", "path": "displayName", "value": "Changed"}),
        query_string=both,
    )
    assert_error(patched, 400, "invalidValue")
    assert store_snapshot(database, api.tenant.org_id) == before


@pytest.mark.parametrize(
    ("attributes", "word"),
    [
        ({"userName": "u" * 600}, "userName"),
        ({"externalId": "e" * 600}, "externalId"),
        ({"emails": [{"value": "x" * 600 + "@example.com"}]}, "emails.value"),
        ({"emails": [{"value": "a@example.com", "type": "t" * 300}]}, "emails.type"),
    ],
)
def test_values_too_long_to_index_are_invalid_value_on_both_databases(
    api: Api, database: Database, attributes: dict[str, Any], word: str
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    body = {"schemas": [USER_SCHEMA], "userName": "long@example.com", **attributes}
    assert_error(api.post("/Users", body), 400, "invalidValue", word, "at most")
    assert store_snapshot(database, api.tenant.org_id) == before


@pytest.mark.parametrize(
    "attributes",
    [
        {"userName": "nul\u0000@example.com"},
        {"userName": "ok@example.com", "displayName": "a\u0000b"},
        {"userName": "ok@example.com", "emails": [{"value": "a\u0000b@example.com"}]},
    ],
)
def test_nul_characters_are_refused(
    api: Api, database: Database, attributes: dict[str, Any]
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    assert_error(
        api.post("/Users", {"schemas": [USER_SCHEMA], **attributes}), 400, "invalidValue", "NUL"
    )
    assert store_snapshot(database, api.tenant.org_id) == before


def test_nul_in_a_filter_or_an_id_is_a_clean_4xx(api: Api) -> None:
    assert_error(
        api.get("/Users", query_string={"filter": 'userName eq "a\u0000"'}), 400, "invalidFilter"
    )
    assert_error(api.get("/Users/%00"), 404, None)
    assert_error(api.get("/Users/not-a-uuid"), 404, None, "not-a-uuid")


# A JSON escape of half a UTF-16 surrogate pair ("\ud800") is valid JSON syntax that encodes no
# character (RFC 8259 §8.2); neither database can store it. It used to be a 500.
@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('{"schemas": ["%s"], "userName": "a\\ud800@example.com"}', "userName"),
        (
            '{"schemas": ["%s"], "userName": "b@example.com", "name": {"givenName": "\\udfff"}}',
            "name.givenName",
        ),
        (
            '{"schemas": ["%s"], "userName": "c@example.com", "emails": [{"value": "x@y.z"}, '
            '{"value": "c@example.com", "display": "\\ud83d"}]}',
            "emails[1].display",
        ),
    ],
)
def test_a_lone_surrogate_in_a_body_is_invalid_value_and_writes_nothing(
    api: Api, database: Database, seeded: dict[str, Any], body: str, where: str
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    response = api.request(
        "POST", "/Users", data=(body % USER_SCHEMA).encode(), content_type="application/scim+json"
    )
    assert_error(response, 400, "invalidValue", where, "surrogate")
    patch = (
        '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": '
        '[{"op": "replace", "path": "displayName", "value": "Seed \\ud800"}]}'
    )
    response = api.request(
        "PATCH", f"/Users/{seeded['id']}", data=patch.encode(), content_type="application/scim+json"
    )
    assert_error(response, 400, "invalidValue", "Operations[0].value", "surrogate")
    assert store_snapshot(database, api.tenant.org_id) == before


def test_a_whole_surrogate_pair_is_one_character(api: Api) -> None:
    body = '{"schemas": ["%s"], "userName": "pair@example.com", "displayName": "\\ud83d\\ude00"}'
    response = api.request(
        "POST", "/Users", data=(body % USER_SCHEMA).encode(), content_type="application/scim+json"
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["displayName"] == "\U0001f600"
    found = api.list_users(filter='displayName eq "\\ud83d\\ude00"')
    assert [r["userName"] for r in found["Resources"]] == ["pair@example.com"]


@pytest.mark.parametrize("literal", ['"\\ud800"', '"a\\udfffb"', '"\\ud83d"'])
def test_a_lone_surrogate_in_a_filter_or_a_path_is_refused(
    api: Api, database: Database, seeded: dict[str, Any], literal: str
) -> None:
    for text in (f"userName eq {literal}", f"emails[value sw {literal}]"):
        response = api.get("/Users", query_string={"filter": text})
        assert_error(response, 400, "invalidFilter", literal, "surrogate")
    before = store_snapshot(database, api.tenant.org_id)
    patch = patch_body({"op": "remove", "path": f"emails[value eq {literal}]"})
    response = api.patch(f"/Users/{seeded['id']}", patch)
    assert_error(response, 400, "invalidPath", literal, "surrogate")
    assert store_snapshot(database, api.tenant.org_id) == before


# --- inputs a fuzzer found answered 500: each is the client's mistake, or no mistake at all ------


@pytest.mark.parametrize(
    "text",
    [
        'meta.lastModified gt "0001-01-01T00:00:00+00:01"',  # before year 1 once in UTC
        'meta.created lt "9999-12-31T23:59:59-00:01"',  # after year 9999 once in UTC
    ],
)
def test_a_date_time_outside_the_years_1_to_9999_in_utc_is_invalid_filter(
    api: Api, seeded: dict[str, Any], text: str
) -> None:
    for path in ("/Users", "/Groups"):
        response = api.get(path, query_string={"filter": text})
        assert_error(response, 400, "invalidFilter", "out of range", "0001 to 9999")
    # the same instant inside the range is a comparison like any other
    assert api.list_users(filter='meta.lastModified gt "0001-01-01T01:00:00+01:00"')["Resources"]


def test_a_date_time_outside_the_years_1_to_9999_in_a_body_is_invalid_value(
    api: Api, database: Database, seeded: dict[str, Any]
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    expires = "urn:ietf:params:scim:schemas:extension:access:2.0:User:accessExpiresAt"
    body = patch_body({"op": "replace", "path": expires, "value": "9999-12-31T23:00:00-05:00"})
    assert_error(api.patch(f"/Users/{seeded['id']}", body), 400, "invalidValue", "out of range")
    assert store_snapshot(database, api.tenant.org_id) == before


def test_integers_beyond_bigint_are_refused_and_those_within_compare(
    api: Api, seeded: dict[str, Any]
) -> None:
    too_large = str(2**63)
    assert_error(api.get("/Users", query_string={"startIndex": too_large}), 400, "invalidValue")
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    response = api.post("/Users/.search", {**search, "startIndex": 2**74})
    assert_error(response, 400, "invalidValue", "startIndex")
    # a start beyond the last user is an empty page, however far
    far = api.list_users(startIndex=str(2**63 - 1))
    assert (far["Resources"], far["totalResults"]) == ([], 1)


@pytest.mark.parametrize("literal", ['"\\u0000"', '"a\\u0000b"'])
def test_an_escaped_nul_in_a_filter_or_a_member_value_is_refused(
    api: Api, database: Database, seeded: dict[str, Any], literal: str
) -> None:
    """PostgreSQL's text cannot hold NUL: the escape used to reach it and answer 500."""
    for text in (
        f"userName eq {literal}",
        f"externalId co {literal}",
        f"emails[type eq {literal}]",
    ):
        response = api.get("/Users", query_string={"filter": text})
        assert_error(response, 400, "invalidFilter", "NUL")
    group = api.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "G"}).get_json()
    before = store_snapshot(database, api.tenant.org_id)
    value = json.loads(literal)
    for operation in (
        {"op": "add", "path": "members", "value": [{"value": value}]},
        {"op": "remove", "path": "members", "value": [{"value": value}]},
        {"op": "add", "value": {"members": [{"value": value}]}},
    ):
        response = api.patch(f"/Groups/{group['id']}", patch_body(operation))
        assert_error(response, 400, "invalidValue", "NUL", "Operations[0]")
    assert store_snapshot(database, api.tenant.org_id) == before


@pytest.mark.parametrize("sort_by", ["meta.version", "meta.location", "groups", "password"])
def test_an_attribute_that_cannot_sort_is_refused_naming_sort_by(
    api: Api, seeded: dict[str, Any], sort_by: str
) -> None:
    """The refusal reused the filter's wording ("cannot be used in a filter") for a sortBy."""
    response = api.get("/Users", query_string={"sortBy": sort_by})
    assert_error(response, 400, "invalidFilter", f'"{sort_by}" cannot be used in sortBy')
    assert "filter" not in response.get_json()["detail"]


@pytest.mark.parametrize("broken", ["\u0000", "\ud800"])
def test_an_unstorable_character_in_a_password_never_quotes_the_password(
    app: Any, database: Database, api: Api, broken: str
) -> None:
    """The refusal of NUL or a lone surrogate runs on the body before any schema is looked at,
    so it cannot know which strings are secrets: it names where the character is, never the
    text around it (it used to quote the whole string into the answer and the log)."""
    auditor = auditor_for(app, database, api.tenant.slug)
    user = api.create_user("pw@example.com")
    secret = f"Tr0ub4dor-{broken}-horse"
    sent = [
        ("POST", "/Users", {"schemas": [USER_SCHEMA], "userName": "x@e.com", "password": secret}),
        (
            "PATCH",
            f"/Users/{user['id']}",
            patch_body({"op": "replace", "value": {"password": secret}}),
        ),
        (
            "PATCH",
            f"/Users/{user['id']}",
            patch_body({"op": "replace", "path": "password", "value": secret}),
        ),
    ]
    for method, path, body in sent:
        rid = request_id("secret")
        response = api.request(method, path, body, headers={"X-Request-Id": rid})
        assert_error(response, 400, "invalidValue", "request body's")
        detail = response.get_json()["detail"]
        assert "Tr0ub4dor" not in detail, detail
        assert "horse" not in detail, detail
        assert "Tr0ub4dor" not in json.dumps(auditor.one(rid))
    response = api.post(
        "/Users", {"schemas": [USER_SCHEMA], "userName": "y@e.com", "password": secret}
    )
    assert "password" in response.get_json()["detail"]  # where it is, by name


@pytest.mark.parametrize(
    "broken",
    [
        'password eq "Tr0ub4dor-horse" and',
        '(PASSWORD eq "Tr0ub4dor-horse"',
        'userName eq "a" or urn:ietf:params:scim:schemas:core:2.0:User:password eq "Tr0ub4dor',
        'emails[value eq "a"] and password eq "Tr0ub4dor-horse" )',
    ],
)
def test_a_broken_filter_on_the_password_never_quotes_its_value(
    app: Any, database: Database, api: Api, broken: str
) -> None:
    """A filter that does not parse was quoted whole into the answer and the provisioning log,
    so a password compared in it reached both (a filter on the password is refused anyway,
    but only once it parses). Naming a never-returned attribute, it is not quoted."""
    auditor = auditor_for(app, database, api.tenant.slug)
    rid = request_id("filter-secret")
    response = api.get("/Users", query_string={"filter": broken}, headers={"X-Request-Id": rid})
    assert_error(response, 400, "invalidFilter", "never returned")
    assert "Tr0ub4dor" not in response.get_json()["detail"]
    assert "Tr0ub4dor" not in json.dumps(auditor.one(rid))
    search = api.post("/Users/.search", {"schemas": [SEARCH], "filter": broken})
    assert_error(search, 400, "invalidFilter")
    assert "Tr0ub4dor" not in search.get_json()["detail"]
    # other broken filters are still quoted, which is what an admin needs to fix them
    quoted = api.get("/Users", query_string={"filter": 'userName eq "bob@acme.com" and'})
    assert "bob@acme.com" in quoted.get_json()["detail"]


def test_a_patch_path_or_sort_naming_the_password_is_never_quoted(
    app: Any, database: Database, api: Api
) -> None:
    """The same for the other places a client's path text is shown: a PATCH path (its value
    filter, or a later refusal of it), a path-less value's key, and sortBy."""
    auditor = auditor_for(app, database, api.tenant.slug)
    user = api.create_user("pw-path@example.com")
    sent = [
        (
            "PATCH",
            {
                "op": "replace",
                "path": 'emails[type eq "work" and password eq "Tr0ub4dor" and]',
                "value": "x",
            },
        ),
        (
            "PATCH",
            {
                "op": "replace",
                "path": 'emails[type eq "work" and password eq "Tr0ub4dor"].value',
                "value": "x",
            },
        ),
        ("PATCH", {"op": "replace", "value": {'password[value eq "Tr0ub4dor"': "x"}}),
    ]
    for _, operation in sent:
        rid = request_id("path-secret")
        response = api.patch(
            f"/Users/{user['id']}", patch_body(operation), headers={"X-Request-Id": rid}
        )
        assert response.status_code == 400, response.get_json()
        assert "Tr0ub4dor" not in response.get_json()["detail"], response.get_json()
        assert "Tr0ub4dor" not in json.dumps(auditor.one(rid))
    sort = api.get("/Users", query_string={"sortBy": 'password eq "Tr0ub4dor"'})
    assert sort.status_code == 400
    assert "Tr0ub4dor" not in sort.get_json()["detail"]
    # a value that only mentions the word is no password: still quoted for the admin
    quoted = api.get("/Users", query_string={"filter": 'displayName eq "my password" and'})
    assert "my password" in quoted.get_json()["detail"]
