"""PATCH remove (RFC 7644 §3.5.2.2)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.patch_fixtures import ACCESS, CORE, ENTERPRISE, GROUP, USER, group, patch, user

# --- RFC 7644 §3.5.2.2 examples ------------------------------------------------------------------


def test_rfc_remove_one_member() -> None:
    doc = group("2819c223-7f76-453a-919d-413861904646", "902c246b-6245-4190-8e05-00816be7344a")
    result = patch(
        GROUP,
        doc,
        {
            "op": "remove",
            "path": 'members[value eq "2819c223-7f76-453a-919d-413861904646"]',
        },
    )
    assert result["members"] == [{"value": "902c246b-6245-4190-8e05-00816be7344a", "type": "User"}]


def test_rfc_remove_all_members() -> None:
    result = patch(GROUP, group("a", "b"), {"op": "remove", "path": "members"})
    assert "members" not in result
    assert result["displayName"] == "Tour Guides"


def test_rfc_remove_and_add_member() -> None:
    result = patch(
        GROUP,
        group("2819c223-7f76-453a-919d-413861904646"),
        {"op": "remove", "path": 'members[value eq "2819c223-7f76-453a-919d-413861904646"]'},
        {
            "op": "add",
            "path": "members",
            "value": [
                {
                    "display": "James Smith",
                    "$ref": "https://example.com/v2/Users/08e1d05d-121c-4561-8b96-473d93df9210",
                    "value": "08e1d05d-121c-4561-8b96-473d93df9210",
                }
            ],
        },
    )
    assert [m["value"] for m in result["members"]] == ["08e1d05d-121c-4561-8b96-473d93df9210"]


def test_rfc_remove_work_emails_at_example_com() -> None:
    doc = user()
    doc["emails"].append({"value": "other@example.org", "type": "work"})
    result = patch(
        USER, doc, {"op": "remove", "path": 'emails[type eq "work" and value ew "example.com"]'}
    )
    assert result["emails"] == [
        {"value": "babs@jensen.org", "type": "home"},
        {"value": "other@example.org", "type": "work"},
    ]


# --- IdP request shapes --------------------------------------------------------------------------


def test_entra_remove_member_by_value_array() -> None:
    """Entra E19: {"op": "Remove", "path": "members", "value": [{"$ref": null, "value": id}]}."""
    result = patch(
        GROUP,
        group("uid-1", "uid-2"),
        {"op": "remove", "path": "members", "value": [{"$ref": None, "value": "uid-1"}]},
    )
    assert result["members"] == [{"value": "uid-2", "type": "User"}]


def test_entra_remove_member_by_value_filter() -> None:
    """Entra E21 (aadOptscim062020): {"op": "remove", "path": "members[value eq \\"id\\"]"}."""
    result = patch(
        GROUP, group("uid-1", "uid-2"), {"op": "remove", "path": 'members[value eq "uid-1"]'}
    )
    assert result["members"] == [{"value": "uid-2", "type": "User"}]


def test_okta_remove_member_by_filter_with_no_value() -> None:
    """Okta O16 (first operation)."""
    result = patch(GROUP, group("uid-2"), {"op": "remove", "path": 'members[value eq "uid-2"]'})
    assert "members" not in result


def test_remove_several_members_by_value_array() -> None:
    result = patch(
        GROUP,
        group("a", "b", "c"),
        {"op": "remove", "path": "members", "value": [{"value": "a"}, {"value": "c"}]},
    )
    assert [m["value"] for m in result["members"]] == ["b"]


def test_remove_member_by_single_value_object() -> None:
    result = patch(
        GROUP, group("a", "b"), {"op": "remove", "path": "members", "value": {"value": "a"}}
    )
    assert [m["value"] for m in result["members"]] == ["b"]


@pytest.mark.parametrize(
    "item",
    [
        {"value": "A"},  # members.value is caseExact
        {"value": "a", "type": "Group"},  # every given sub-attribute must match
        {},  # describes nothing
        {"value": None},
        {"value": "zzz"},
    ],
)
def test_remove_by_value_that_describes_no_member_is_a_no_op(item: dict[str, Any]) -> None:
    doc = group("a", "b")
    result = patch(GROUP, doc, {"op": "remove", "path": "members", "value": [item]})
    assert result["members"] == doc["members"]


def test_remove_email_by_value_is_case_insensitive_where_the_schema_says() -> None:
    result = patch(
        USER, user(), {"op": "remove", "path": "emails", "value": [{"value": "BABS@JENSEN.ORG"}]}
    )
    assert [e["value"] for e in result["emails"]] == ["bjensen@example.com"]


# --- semantics -----------------------------------------------------------------------------------


def test_remove_a_single_valued_attribute() -> None:
    result = patch(USER, user(), {"op": "remove", "path": "displayName"})
    assert "displayName" not in result


def test_remove_ignores_a_value_on_a_single_valued_attribute() -> None:
    result = patch(USER, user(), {"op": "remove", "path": "displayName", "value": "whatever"})
    assert "displayName" not in result


def test_remove_an_absent_attribute_is_a_no_op() -> None:
    doc = user()
    result = patch(USER, doc, {"op": "remove", "path": "title"})
    assert {k: v for k, v in result.items() if k != "schemas"} == {
        k: v for k, v in doc.items() if k != "schemas"
    }


def test_remove_a_sub_attribute() -> None:
    result = patch(USER, user(), {"op": "remove", "path": "name.givenName"})
    assert result["name"] == {"familyName": "Jensen"}


def test_remove_the_last_sub_attribute_unassigns_the_complex_attribute() -> None:
    result = patch(
        USER,
        user(),
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "name.familyName"},
    )
    assert "name" not in result


def test_remove_a_whole_complex_attribute() -> None:
    result = patch(USER, user(), {"op": "remove", "path": "NAME"})
    assert "name" not in result


def test_remove_with_an_empty_value_array_removes_nothing() -> None:
    doc = group("a")
    result = patch(GROUP, doc, {"op": "remove", "path": "members", "value": []})
    assert result["members"] == doc["members"]


def test_remove_a_multi_valued_attribute() -> None:
    result = patch(USER, user(), {"op": "remove", "path": "emails"})
    assert "emails" not in result


def test_remove_with_a_value_filter_matching_nothing_is_a_no_op() -> None:
    doc = user()
    result = patch(USER, doc, {"op": "remove", "path": 'emails[type eq "other"]'})
    assert result["emails"] == doc["emails"]


def test_remove_the_last_matching_element_unassigns_the_attribute() -> None:
    result = patch(USER, user(), {"op": "remove", "path": 'emails[value co "@"]'})
    assert "emails" not in result


def test_remove_a_sub_attribute_of_matching_elements() -> None:
    result = patch(USER, user(), {"op": "remove", "path": 'emails[type eq "work"].primary'})
    assert result["emails"] == [
        {"value": "bjensen@example.com", "type": "work"},
        {"value": "babs@jensen.org", "type": "home"},
    ]


def test_remove_a_sub_attribute_of_every_element() -> None:
    result = patch(USER, user(), {"op": "remove", "path": "addresses.locality"})
    assert [set(a) for a in result["addresses"]] == [{"type", "streetAddress"}] * 2


def test_elements_left_empty_are_dropped() -> None:
    doc = user()
    doc["phoneNumbers"] = [{"value": "555"}, {"value": "556", "type": "work"}]
    result = patch(USER, doc, {"op": "remove", "path": "phoneNumbers.value"})
    assert result["phoneNumbers"] == [{"type": "work"}]


def test_remove_with_a_complex_value_filter() -> None:
    result = patch(
        USER, user(), {"op": "remove", "path": 'emails[not (type eq "work") or primary eq true]'}
    )
    assert "emails" not in result


def test_remove_extension_attribute_by_urn_path() -> None:
    result = patch(USER, user(), {"op": "remove", "path": f"{ENTERPRISE}:department"})
    assert "department" not in result[ENTERPRISE]
    assert result["schemas"] == [CORE, ENTERPRISE, ACCESS]


def test_remove_manager_value_by_urn_path() -> None:
    doc = user()
    doc[ENTERPRISE]["manager"] = {"value": "m1"}
    result = patch(USER, doc, {"op": "remove", "path": f"{ENTERPRISE}:manager.value"})
    assert "manager" not in result[ENTERPRISE]


def test_removing_the_last_extension_attribute_drops_the_extension() -> None:
    doc = user()
    doc[ENTERPRISE] = {"employeeNumber": "1"}
    result = patch(USER, doc, {"op": "remove", "path": f"{ENTERPRISE}:employeeNumber"})
    assert ENTERPRISE not in result
    assert result["schemas"] == [CORE, ACCESS]


def test_remove_whole_extension_by_urn() -> None:
    result = patch(USER, user(), {"op": "remove", "path": ENTERPRISE})
    assert ENTERPRISE not in result
    assert result["schemas"] == [CORE, ACCESS]


def test_remove_whole_extension_keeps_server_owned_attributes() -> None:
    doc = user()
    doc[ACCESS]["accessExpiresAt"] = "2026-01-31T23:59:59Z"
    result = patch(USER, doc, {"op": "remove", "path": ACCESS.upper()})
    assert result[ACCESS] == {"role": "Viewer"}


def test_remove_from_an_extension_the_user_does_not_have() -> None:
    doc = user()
    del doc[ENTERPRISE]
    result = patch(USER, doc, {"op": "remove", "path": f"{ENTERPRISE}:department"})
    assert ENTERPRISE not in result


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True),
    st.lists(st.sampled_from(["a", "b", "c", "d", "e"])),
)
def test_remove_members_is_a_set_difference(existing: list[str], removed: list[str]) -> None:
    doc = group(*existing)
    operations: list[dict[str, Any]] = [
        {"op": "remove", "path": f'members[value eq "{m}"]'} for m in removed
    ]
    if not operations:
        operations = [{"op": "remove", "path": "members", "value": []}]
    result = patch(GROUP, doc, *operations)
    assert [m["value"] for m in result.get("members", [])] == [
        m for m in existing if m not in removed
    ]


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True),
    st.lists(st.sampled_from(["a", "b", "c", "d", "e"])),
)
def test_both_removal_shapes_agree(existing: list[str], removed: list[str]) -> None:
    doc = group(*existing)
    by_value = patch(
        GROUP, doc, {"op": "remove", "path": "members", "value": [{"value": m} for m in removed]}
    )
    by_filter = (
        doc
        if not removed
        else patch(
            GROUP, doc, *[{"op": "remove", "path": f'members[value eq "{m}"]'} for m in removed]
        )
    )
    assert (by_value.get("members") or []) == (by_filter.get("members") or [])
