"""PATCH errors (RFC 7644 §3.5.2, §3.12): every refusal names the operation and attribute."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scim_server.scim.errors import (
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
    ScimError,
)
from scim_server.scim.patch import PATCH_OP, apply_patch
from scim_server.scim.schema import ResourceType
from tests.unit.patch_fixtures import ACCESS, CORE, ENTERPRISE, GROUP, USER, group, user


def body(*operations: Any) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def fails(
    error: type[ScimError], rt: ResourceType, doc: dict[str, Any], request: object
) -> ScimError:
    doc_before = copy.deepcopy(doc)
    with pytest.raises(error) as caught:
        apply_patch(rt, doc, request)
    assert doc == doc_before
    return caught.value


# --- the PatchOp envelope (RFC 7644 §3.5.2) ------------------------------------------------------


@pytest.mark.parametrize(
    ("request_body", "in_detail"),
    [
        (None, "JSON object"),
        ([], "JSON object"),
        ("op", "JSON object"),
        ({"Operations": [{"op": "remove", "path": "title"}]}, PATCH_OP),
        ({"schemas": PATCH_OP, "Operations": [{"op": "remove", "path": "x"}]}, PATCH_OP),
        ({"schemas": [CORE], "Operations": [{"op": "remove", "path": "x"}]}, PATCH_OP),
        ({"schemas": [PATCH_OP]}, '"Operations"'),
        ({"schemas": [PATCH_OP], "Operations": []}, "non-empty"),
        ({"schemas": [PATCH_OP], "Operations": {"op": "add"}}, '"Operations"'),
        (body("add"), "Operations[0] must be a JSON object"),
        (body({"path": "title", "value": "x"}), 'Operations[0]: "op" must be one of'),
        (body({"op": "Replace", "path": "title", "value": "x"}), '"Replace"'),
        (body({"op": "ADD", "path": "title", "value": "x"}), '"ADD"'),
        (body({"op": "delete", "path": "title"}), '"delete"'),
        (body({"op": 1, "path": "title"}), "got"),
        (body({"op": "remove", "path": 5}), 'Operations[0]: "path" must be a string'),
        (
            body({"op": "remove", "path": "title"}, {"op": "Remove", "path": "title"}),
            'Operations[1]: "op"',
        ),
    ],
)
def test_malformed_requests_are_invalid_syntax(request_body: object, in_detail: str) -> None:
    error = fails(InvalidSyntax, USER, user(), request_body)
    assert in_detail in error.detail
    assert error.scim_type == "invalidSyntax"


def test_envelope_keys_and_schema_uri_are_case_insensitive() -> None:
    result = apply_patch(
        USER,
        user(),
        {
            "SCHEMAS": [PATCH_OP.upper()],
            "operations": [{"OP": "replace", "Path": "title", "VALUE": "Guide"}],
        },
    )
    assert result["title"] == "Guide"


@pytest.mark.parametrize("op", ["add", "replace"])
def test_add_and_replace_need_a_value(op: str) -> None:
    error = fails(InvalidValue, USER, user(), body({"op": op, "path": "title"}))
    assert f"Operations[0] ({op})" in error.detail
    assert '"value"' in error.detail


@pytest.mark.parametrize(
    "request_body",
    [
        body({"op": "remove"}),
        body({"op": "remove", "path": None}),
        body({"op": "remove", "value": {"title": "x"}}),
    ],
)
def test_remove_needs_a_path(request_body: object) -> None:
    error = fails(NoTarget, USER, user(), request_body)
    assert "Operations[0] (remove)" in error.detail
    assert error.scim_type == "noTarget"


# --- mutability ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "path", "named"),
    [
        ("replace", "id", '"id"'),
        ("remove", "id", '"id"'),
        ("replace", "meta", '"meta"'),
        ("replace", "meta.lastModified", '"meta.lastModified"'),
        ("add", "groups", '"groups"'),
        ("remove", "groups", '"groups"'),
        ("remove", 'groups[value eq "e9e30dba-f08f-4109-8486-d5c6a331660a"]', '"groups"'),
        ("replace", f"{ACCESS}:role", '"role"'),
        ("remove", f"{ACCESS}:role", '"role"'),
        ("replace", f"{ENTERPRISE}:manager.displayName", '"manager.displayName"'),
        ("replace", "schemas", '"schemas"'),
    ],
)
def test_read_only_targets_named_by_path_are_refused(op: str, path: str, named: str) -> None:
    error = fails(Mutability, USER, user(), body({"op": op, "path": path, "value": "x"}))
    assert named in error.detail
    assert "Operations[0]" in error.detail
    assert error.scim_type == "mutability"


def test_read_only_sub_attribute_through_value_filter() -> None:
    doc = group("a")
    error = fails(
        Mutability,
        GROUP,
        doc,
        body({"op": "replace", "path": 'members[value eq "a"].display', "value": "x"}),
    )
    assert '"members.display"' in error.detail


# --- unknown attributes and bad paths ------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "named"),
    [
        ({"op": "replace", "path": "nope", "value": 1}, '"nope"'),
        ({"op": "remove", "path": "nope"}, '"nope"'),
        ({"op": "add", "path": "name.nope", "value": 1}, '"name.nope"'),
        ({"op": "add", "path": "userName.x", "value": 1}, "no sub-attributes"),
        ({"op": "replace", "path": "department", "value": "x"}, '"department"'),
        ({"op": "replace", "path": f"{ENTERPRISE}:nope", "value": 1}, "nope"),
        ({"op": "replace", "path": "urn:example:Unknown:1.0:User:x", "value": 1}, "unknown schema"),
        ({"op": "replace", "path": CORE, "value": {}}, "schema URN, not an attribute"),
        ({"op": "replace", "path": 'emails[nope eq "x"]', "value": {}}, '"emails.nope"'),
        ({"op": "remove", "path": 'emails[nope eq "x"]'}, '"emails.nope"'),
        ({"op": "replace", "path": 'emails[type eq "work"].nope', "value": 1}, '"emails.nope"'),
        ({"op": "replace", "path": "emails[primary gt true]", "value": {}}, "cannot be ordered"),
        ({"op": "replace", "path": 'name[givenName eq "x"]', "value": {}}, "multi-valued complex"),
        ({"op": "replace", "path": 'userName[value eq "x"]', "value": "y"}, "multi-valued"),
        ({"op": "replace", "path": f'{ENTERPRISE}[x eq "y"]', "value": {}}, "schema URN"),
        ({"op": "replace", "path": "emails[", "value": 1}, "never closed"),
        ({"op": "replace", "path": "a b", "value": 1}, "unexpected 'b'"),
        ({"op": "replace", "path": "", "value": 1}, "empty"),
        ({"op": "replace", "value": {"nope": 1}}, '"nope"'),
        ({"op": "add", "value": {"name.nope": 1}}, '"name.nope"'),
        ({"op": "add", "value": {"bad key": 1}}, '"bad key" is not an attribute path'),
        ({"op": "add", "value": {ENTERPRISE: {"nope": 1}}}, "nope"),
        ({"op": "add", "path": "name", "value": {"nope": 1}}, '"name.nope"'),
        ({"op": "add", "path": "emails", "value": [{"value": "a", "nope": 1}]}, '"emails.nope"'),
        ({"op": "remove", "path": "emails", "value": [{"nope": 1}]}, '"emails.nope"'),
    ],
)
def test_unknown_attributes_and_bad_paths_are_invalid_path(
    operation: dict[str, Any], named: str
) -> None:
    error = fails(InvalidPath, USER, user(), body(operation))
    assert named in error.detail
    assert "Operations[0]" in error.detail
    assert error.scim_type == "invalidPath"


# --- values the operation cannot use -------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "in_detail"),
    [
        ({"op": "add", "value": "x"}, "JSON object"),
        ({"op": "replace", "value": [{"title": "x"}]}, "JSON object"),
        ({"op": "replace", "value": None}, "JSON object"),
        ({"op": "replace", "path": "name", "value": "Babs"}, '"name" must be an object'),
        ({"op": "add", "path": f"{ENTERPRISE}:manager", "value": "m1"}, "must be an object"),
        ({"op": "replace", "path": ENTERPRISE, "value": "x"}, "JSON object"),
        ({"op": "add", "value": {ENTERPRISE: ["x"]}}, "JSON object"),
        ({"op": "replace", "path": "title", "value": {"x": 1}}, '"title" takes a single'),
        ({"op": "replace", "path": "title", "value": ["x"]}, "got an array"),
        ({"op": "replace", "path": "name.givenName", "value": {"x": 1}}, '"name.givenName"'),
        ({"op": "add", "path": "emails.value", "value": ["x"]}, '"emails.value"'),
        ({"op": "replace", "path": 'emails[type eq "work"]', "value": "x"}, "must be an object"),
        ({"op": "replace", "path": 'emails[type eq "work"].value', "value": {}}, "takes a single"),
        ({"op": "add", "path": 'emails[type eq "work"]', "value": "x"}, "must be an object"),
        ({"op": "remove", "path": "emails", "value": ["a@x"]}, "must be an object"),
    ],
)
def test_unusable_values_are_invalid_value(operation: dict[str, Any], in_detail: str) -> None:
    error = fails(InvalidValue, USER, user(), body(operation))
    assert in_detail in error.detail
    assert "Operations[0]" in error.detail
    assert error.scim_type == "invalidValue"


def test_same_sub_attribute_twice_in_different_case() -> None:
    error = fails(
        InvalidSyntax,
        USER,
        user(),
        body({"op": "add", "path": "emails", "value": [{"value": "a", "VALUE": "b"}]}),
    )
    assert '"emails.value"' in error.detail


# --- noTarget ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": 'emails[type eq "other"]', "value": {"value": "x"}},
        {"op": "replace", "path": 'emails[type eq "other"].value', "value": "x"},
        {"op": "replace", "path": 'emails[type eq "other"]', "value": None},
        # add can create a missing element only from "eq" clauses joined by "and"
        {"op": "add", "path": 'emails[type co "oth"].value', "value": "x"},
        {"op": "add", "path": 'emails[type eq "a" or type eq "b"].value', "value": "x"},
        {"op": "add", "path": 'emails[type eq "a" and type eq "b"].value', "value": "x"},
        {"op": "add", "path": 'emails[not (type eq "work")].value', "value": "x"},
        {"op": "add", "path": "emails[type eq null].value", "value": "x"},
    ],
)
def test_value_filters_matching_nothing(operation: dict[str, Any]) -> None:
    doc = user()
    doc["emails"] = [e for e in doc["emails"] if e["type"] == "work"]
    doc["emails"][0]["type"] = "work"
    error = fails(NoTarget, USER, doc, body(operation))
    assert '"emails"' in error.detail


# --- atomicity and error location ----------------------------------------------------------------


def test_a_failing_operation_applies_nothing_and_is_named() -> None:
    doc = user()
    error = fails(
        InvalidPath,
        USER,
        doc,
        body(
            {"op": "replace", "path": "title", "value": "Guide"},
            {"op": "remove", "path": 'emails[type eq "home"]'},
            {"op": "replace", "path": "nope", "value": 1},
        ),
    )
    assert error.detail.startswith("Operations[2] (replace nope): ")


def test_detail_names_the_path_of_the_failing_operation() -> None:
    error = fails(
        NoTarget,
        USER,
        user(),
        body({"op": "replace", "path": 'phoneNumbers[type eq "work"].value', "value": "555"}),
    )
    assert 'phoneNumbers[type eq "work"].value' in error.detail


def test_long_paths_are_cut_in_details() -> None:
    long_path = "x" * 500
    error = fails(InvalidPath, USER, user(), body({"op": "remove", "path": long_path}))
    assert len(error.detail) < 400


# --- properties ----------------------------------------------------------------------------------

OPERATIONS = st.sampled_from(
    [
        {"op": "add", "path": "emails", "value": [{"value": "n@example.com", "primary": True}]},
        {"op": "add", "path": 'phoneNumbers[type eq "work"].value', "value": "555"},
        {"op": "add", "value": {"nickName": "Babs", ENTERPRISE: {"division": "D"}}},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "w@example.com"},
        {"op": "replace", "path": "name", "value": {"givenName": "B"}},
        {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": "m9"}},
        {"op": "replace", "value": {"active": False, "id": "ignored"}},
        {"op": "remove", "path": 'emails[type eq "home"]'},
        {"op": "remove", "path": ENTERPRISE},
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "emails"},
        {"op": "replace", "path": "id", "value": "x"},  # Mutability
        {"op": "remove", "path": "nope"},  # InvalidPath
        {"op": "replace", "path": 'addresses[type eq "billing"]', "value": {}},  # NoTarget
    ]
)


@given(st.lists(OPERATIONS, min_size=1, max_size=6))
def test_any_request_either_fails_cleanly_or_gives_a_consistent_document(
    operations: list[dict[str, Any]],
) -> None:
    doc = user()
    doc_before = copy.deepcopy(doc)
    failure: ScimError | None = None
    try:
        result = apply_patch(USER, doc, body(*operations))
    except ScimError as error:
        failure = error
    if failure is not None:
        assert failure.detail.startswith("Operations[")
    else:
        # schemas lists exactly the extensions that have values
        extensions = [urn for urn in (ENTERPRISE, ACCESS) if result.get(urn)]
        assert result["schemas"] == [CORE, *extensions]
        assert all(result[urn] for urn in extensions)
        # at most one primary email
        assert sum(1 for e in result.get("emails", []) if e.get("primary") is True) <= 1
        # server-owned values untouched
        assert result["id"] == doc["id"]
        assert result["meta"] == doc["meta"]
        assert result[ACCESS]["role"] == "Viewer"
    assert doc == doc_before


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"userName": "p@x.com", "Username": "q@x.com"}, "userName"),
        ({"displayName": "A", "DISPLAYNAME": "B"}, "displayName"),
        ({"name.givenName": "A", "NAME.GIVENNAME": "B"}, "name.givenName"),
        ({"name": {"givenName": "A", "GivenName": "B"}}, "name.givenName"),
        ({f"{ENTERPRISE}:department": "A", f"{ENTERPRISE}:Department": "B"}, "department"),
        ({ENTERPRISE: {"department": "A", "DEPARTMENT": "B"}}, "department"),
    ],
)
def test_an_attribute_given_twice_in_different_case_is_refused(
    value: dict[str, Any], named: str
) -> None:
    """As in a POST or PUT body (RFC 7643 §2.1): the result must not depend on key order."""
    for op in ("add", "replace"):
        error = fails(InvalidSyntax, USER, user(), body({"op": op, "value": value}))
        assert "given twice in different case" in error.detail
        assert named in error.detail
