"""PATCH add (RFC 7644 §3.5.2.1)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scim_server.scim.patch import PATCH_OP, apply_patch
from tests.unit.patch_fixtures import ACCESS, CORE, ENTERPRISE, GROUP, USER, group, patch, user

# --- RFC 7644 §3.5.2.1 examples ------------------------------------------------------------------


def test_rfc_add_member() -> None:
    before = group("902c246b-6245-4190-8e05-00816be7344a")
    result = patch(
        GROUP,
        before,
        {
            "op": "add",
            "path": "members",
            "value": [
                {
                    "display": "Babs Jensen",
                    "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
                    "value": "2819c223-7f76-453a-919d-413861904646",
                }
            ],
        },
    )
    assert result["members"] == [
        {"value": "902c246b-6245-4190-8e05-00816be7344a", "type": "User"},
        {
            "display": "Babs Jensen",
            "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
            "value": "2819c223-7f76-453a-919d-413861904646",
        },
    ]
    assert result["displayName"] == "Tour Guides"


def test_rfc_add_without_path() -> None:
    doc = user()
    del doc["emails"][1]
    result = patch(
        USER,
        doc,
        {
            "op": "add",
            "value": {
                "emails": [{"value": "babs@jensen.org", "type": "home"}],
                "nickname": "Babs",
            },
        },
    )
    assert result["emails"] == [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ]
    assert result["nickName"] == "Babs"  # canonical spelling
    assert "nickname" not in result


# --- multi-valued attributes ---------------------------------------------------------------------


def test_add_a_single_element_without_array() -> None:
    result = patch(
        USER,
        user(),
        {"op": "add", "path": "phoneNumbers", "value": {"value": "555-0100", "type": "work"}},
    )
    assert result["phoneNumbers"] == [{"value": "555-0100", "type": "work"}]


def test_add_an_element_that_is_already_there_changes_nothing() -> None:
    doc = user()
    result = patch(
        USER,
        doc,
        {"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "type": "home"}]},
    )
    assert result["emails"] == doc["emails"]


def test_add_an_element_equal_but_for_case_of_a_case_insensitive_value() -> None:
    doc = user()
    result = patch(
        USER,
        doc,
        {"op": "add", "path": "emails", "value": [{"value": "BABS@JENSEN.ORG", "type": "Home"}]},
    )
    assert len(result["emails"]) == 2


def test_add_same_address_of_another_type_is_a_new_element() -> None:
    result = patch(
        USER,
        user(),
        {"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "type": "other"}]},
    )
    assert [e["type"] for e in result["emails"]] == ["work", "home", "other"]


def test_re_adding_an_element_merges_new_sub_attributes() -> None:
    result = patch(
        USER,
        user(),
        {"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "primary": True}]},
    )
    assert result["emails"] == [
        {"value": "bjensen@example.com", "type": "work", "primary": False},
        {"value": "babs@jensen.org", "type": "home", "primary": True},
    ]


def test_add_duplicates_within_one_value_are_added_once() -> None:
    result = patch(
        GROUP, group(), {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "a"}]}
    )
    assert result["members"] == [{"value": "a"}]


@pytest.mark.parametrize(
    ("existing", "added", "count"),
    [
        ({"value": "abc", "type": "User"}, {"value": "abc"}, 1),  # Okta adds without type
        ({"value": "abc", "type": "User"}, {"value": "abc", "type": "User"}, 1),
        ({"value": "abc", "type": "User"}, {"value": "abc", "type": "Group"}, 2),
        ({"value": "abc", "type": "User"}, {"value": "ABC"}, 2),  # members.value is caseExact
        ({"value": "abc"}, {"value": "abc", "display": "Babs"}, 1),
    ],
)
def test_member_identity(existing: dict[str, Any], added: dict[str, Any], count: int) -> None:
    doc = group()
    doc["members"] = [existing]
    result = patch(GROUP, doc, {"op": "add", "path": "members", "value": [added]})
    assert len(result["members"]) == count


def test_add_to_an_absent_multi_valued_attribute() -> None:
    doc = group()
    del doc["members"]
    result = patch(GROUP, doc, {"op": "add", "path": "members", "value": [{"value": "a"}]})
    assert result["members"] == [{"value": "a"}]


@pytest.mark.parametrize("value", [[], None, [None]])
def test_add_nothing_to_a_multi_valued_attribute(value: object) -> None:
    doc = user()
    result = patch(USER, doc, {"op": "add", "path": "emails", "value": value})
    assert result["emails"] == doc["emails"]


def test_added_primary_clears_the_other_primary() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "add",
            "path": "emails",
            "value": [{"value": "new@example.com", "type": "other", "primary": True}],
        },
    )
    assert [e.get("primary") for e in result["emails"]] == [False, None, True]


def test_added_non_primary_leaves_primary_alone() -> None:
    result = patch(
        USER,
        user(),
        {"op": "add", "path": "emails", "value": [{"value": "new@example.com", "primary": False}]},
    )
    assert [e.get("primary") for e in result["emails"]] == [True, None, False]


def test_element_keys_are_written_in_canonical_spelling() -> None:
    result = patch(
        USER,
        user(),
        {"op": "add", "path": "EMAILS", "value": [{"VALUE": "x@y.z", "Type": "other"}]},
    )
    assert result["emails"][-1] == {"value": "x@y.z", "type": "other"}


# --- single-valued attributes --------------------------------------------------------------------


def test_entra_add_single_value_string() -> None:
    """Entra E09: {"op": "Add", "path": "nickName", "value": "Babs"} (op normalised)."""
    result = patch(USER, user(), {"op": "add", "path": "nickName", "value": "Babs"})
    assert result["nickName"] == "Babs"


def test_add_replaces_a_single_value() -> None:
    result = patch(USER, user(), {"op": "add", "path": "displayName", "value": "B. Jensen"})
    assert result["displayName"] == "B. Jensen"


def test_add_null_to_a_single_value_unassigns_it() -> None:
    result = patch(USER, user(), {"op": "add", "path": "displayName", "value": None})
    assert "displayName" not in result


def test_add_to_a_complex_attribute_merges() -> None:
    result = patch(
        USER,
        user(),
        {"op": "add", "path": "name", "value": {"middleName": "Jane", "GIVENNAME": "Babs"}},
    )
    assert result["name"] == {"familyName": "Jensen", "givenName": "Babs", "middleName": "Jane"}


def test_add_a_sub_attribute() -> None:
    result = patch(USER, user(), {"op": "add", "path": "name.middleName", "value": "Jane"})
    assert result["name"] == {"familyName": "Jensen", "givenName": "Barbara", "middleName": "Jane"}


def test_add_a_sub_attribute_of_an_absent_complex_attribute() -> None:
    doc = user()
    del doc["name"]
    result = patch(USER, doc, {"op": "add", "path": "name.givenName", "value": "Babs"})
    assert result["name"] == {"givenName": "Babs"}


def test_add_is_case_insensitive_and_writes_canonical_names() -> None:
    result = patch(USER, user(), {"op": "add", "path": "NAME.FAMILYNAME", "value": "J"})
    assert result["name"]["familyName"] == "J"
    assert set(result["name"]) == {"familyName", "givenName"}


def test_add_external_id() -> None:
    result = patch(USER, user(), {"op": "add", "path": "externalid", "value": "new"})
    assert result["externalId"] == "new"


# --- extensions ----------------------------------------------------------------------------------


def test_add_urn_qualified_attribute() -> None:
    result = patch(USER, user(), {"op": "add", "path": f"{ENTERPRISE}:costCenter", "value": "4130"})
    assert result[ENTERPRISE]["costCenter"] == "4130"


def test_add_urn_qualified_sub_attribute() -> None:
    result = patch(
        USER, user(), {"op": "add", "path": f"{ENTERPRISE}:manager.value", "value": "m2"}
    )
    assert result[ENTERPRISE]["manager"] == {"value": "m2", "displayName": "John"}


def test_add_the_extension_to_a_user_without_it() -> None:
    doc = user()
    del doc[ENTERPRISE]
    doc["schemas"] = [CORE, ACCESS]
    result = patch(USER, doc, {"op": "add", "path": f"{ENTERPRISE}:department", "value": "Sales"})
    assert result[ENTERPRISE] == {"department": "Sales"}
    assert result["schemas"] == [CORE, ENTERPRISE, ACCESS]


def test_add_whole_extension_by_its_urn() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "add",
            "path": ENTERPRISE,
            "value": {"division": "Theme Park", "manager": {"value": "m2"}},
        },
    )
    assert result[ENTERPRISE] == {
        "employeeNumber": "701984",
        "department": "Tour Operations",
        "division": "Theme Park",
        "manager": {"value": "m2", "displayName": "John"},
    }


def test_add_without_path_with_extension_key() -> None:
    result = patch(
        USER,
        user(),
        {"op": "add", "value": {ENTERPRISE.upper(): {"costCenter": "4130"}, "title": "Guide"}},
    )
    assert result[ENTERPRISE]["costCenter"] == "4130"
    assert result["title"] == "Guide"
    assert ENTERPRISE.upper() not in result


def test_add_without_path_with_dotted_and_urn_keys() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "add",
            "value": {
                "name.middleName": "Jane",
                f"{ENTERPRISE}:organization": "Universal Studios",
                f"{CORE}:title": "Guide",
            },
        },
    )
    assert result["name"]["middleName"] == "Jane"
    assert result[ENTERPRISE]["organization"] == "Universal Studios"
    assert result["title"] == "Guide"


def test_add_without_path_ignores_read_only_keys() -> None:
    """Okta echoes id, meta, groups; readOnly keys in a value object are ignored (DESIGN §5.4)."""
    doc = user()
    result = patch(
        USER,
        doc,
        {
            "op": "add",
            "value": {
                "id": "other",
                "meta": {"version": "x"},
                "groups": [{"value": "g2"}],
                "schemas": [CORE],
                f"{ACCESS}:role": "Administrator",
                ACCESS: {"role": "Editor"},
                "title": "Guide",
            },
        },
    )
    assert result["id"] == doc["id"]
    assert result["meta"] == doc["meta"]
    assert result["groups"] == doc["groups"]
    assert result[ACCESS] == {"role": "Viewer"}
    assert result["title"] == "Guide"


def test_read_only_sub_attribute_in_a_merged_value_is_ignored() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "add",
            "path": f"{ENTERPRISE}:manager",
            "value": {"value": "m2", "displayName": "Someone else"},
        },
    )
    assert result[ENTERPRISE]["manager"] == {"value": "m2", "displayName": "John"}


# --- value filters -------------------------------------------------------------------------------


def test_add_through_a_matching_value_filter_sets_the_sub_attribute() -> None:
    result = patch(
        USER,
        user(),
        {"op": "add", "path": 'emails[type eq "work"].value', "value": "babs@example.com"},
    )
    assert result["emails"][0] == {"value": "babs@example.com", "type": "work", "primary": True}
    assert result["emails"][1] == {"value": "babs@jensen.org", "type": "home"}


def test_add_through_a_value_filter_that_matches_nothing_creates_the_element() -> None:
    """RFC 7644 §3.5.2.1: the target does not exist, so it is added (Entra relies on it)."""
    result = patch(
        USER,
        user(),
        {"op": "add", "path": 'phoneNumbers[type eq "work"].value', "value": "555-0100"},
    )
    assert result["phoneNumbers"] == [{"type": "work", "value": "555-0100"}]


def test_created_element_takes_every_eq_clause() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "add",
            "path": 'ims[type eq "xmpp" and display eq "Babs"].value',
            "value": "babs@jabber.org",
        },
    )
    assert result["ims"] == [{"type": "xmpp", "display": "Babs", "value": "babs@jabber.org"}]


def test_add_an_object_through_a_value_filter_merges_into_matches() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "add",
            "path": 'addresses[type eq "work"]',
            "value": {"postalCode": "91608", "country": "US"},
        },
    )
    assert result["addresses"][0] == {
        "type": "work",
        "streetAddress": "100 Universal City Plaza",
        "locality": "Hollywood",
        "postalCode": "91608",
        "country": "US",
    }
    assert "postalCode" not in result["addresses"][1]


def test_add_primary_through_a_value_filter_clears_the_other() -> None:
    result = patch(
        USER, user(), {"op": "add", "path": 'emails[type eq "home"].primary', "value": True}
    )
    assert [e.get("primary") for e in result["emails"]] == [False, True]


def test_add_through_a_value_filter_on_every_match() -> None:
    result = patch(
        USER,
        user(),
        {"op": "add", "path": 'addresses[locality eq "hollywood"].region', "value": "CA"},
    )
    assert [a["region"] for a in result["addresses"]] == ["CA", "CA"]


def test_add_null_through_an_unmatched_value_filter_adds_nothing() -> None:
    doc = user()
    result = patch(
        USER, doc, {"op": "add", "path": 'phoneNumbers[type eq "work"].value', "value": None}
    )
    assert "phoneNumbers" not in result


# --- IdP request shapes ------------------------------------------------------------------------


def test_entra_add_member_with_null_ref() -> None:
    """Entra E18: {"op": "Add", "path": "members", "value": [{"$ref": null, "value": id}]}."""
    result = patch(
        GROUP,
        group(),
        {"op": "add", "path": "members", "value": [{"$ref": None, "value": "uid-1"}]},
    )
    assert result["members"] == [{"$ref": None, "value": "uid-1"}]


def test_entra_re_add_of_an_existing_member_is_a_no_op() -> None:
    doc = group("uid-1")
    result = patch(
        GROUP, doc, {"op": "add", "path": "members", "value": [{"$ref": None, "value": "uid-1"}]}
    )
    assert result["members"] == doc["members"]


def test_okta_remove_then_add_member_in_one_request() -> None:
    """Okta O16: remove by value filter, then add with display."""
    result = patch(
        GROUP,
        group("uid-2"),
        {"op": "remove", "path": 'members[value eq "uid-2"]'},
        {
            "op": "add",
            "path": "members",
            "value": [{"value": "uid-1", "display": "test.user@okta.local"}],
        },
    )
    assert result["members"] == [{"value": "uid-1", "display": "test.user@okta.local"}]


def test_result_does_not_share_objects_with_the_body() -> None:
    value = [{"value": "uid-1"}]
    body = {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": value}]}
    result = apply_patch(GROUP, group(), body)
    value[0]["value"] = "changed"
    assert result["members"] == [{"value": "uid-1"}]


def test_operations_apply_in_order() -> None:
    result = patch(
        USER,
        user(),
        {"op": "add", "path": "title", "value": "first"},
        {"op": "add", "path": "title", "value": "second"},
        {"op": "add", "path": "nickName", "value": "Babs"},
    )
    assert result["title"] == "second"
    assert result["nickName"] == "Babs"


@given(
    st.lists(st.sampled_from(["a", "b", "c", "A"]), max_size=6),
    st.lists(st.sampled_from(["a", "b", "c", "d", "A"]), max_size=6),
)
def test_add_members_is_a_set_union(existing: list[str], added: list[str]) -> None:
    doc = group(*dict.fromkeys(existing))
    result = patch(
        GROUP, doc, {"op": "add", "path": "members", "value": [{"value": v} for v in added]}
    )
    values = [m["value"] for m in result.get("members", [])]
    assert values == list(dict.fromkeys([*dict.fromkeys(existing), *added]))


def test_schemas_key_inside_an_extension_object_is_ignored() -> None:
    doc = {"schemas": [CORE], "userName": "ada"}
    body = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "add",
                "path": ENTERPRISE,
                "value": {"schemas": [ENTERPRISE], "department": "R&D"},
            }
        ],
    }
    patched = apply_patch(USER, doc, body)
    assert patched[ENTERPRISE] == {"department": "R&D"}
    assert patched["schemas"] == [CORE, ENTERPRISE]
