"""PATCH replace (RFC 7644 §3.5.2.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scim_server.scim.errors import NoTarget
from tests.unit.patch_fixtures import ACCESS, CORE, ENTERPRISE, GROUP, USER, group, patch, user

# --- RFC 7644 §3.5.2.3 examples ------------------------------------------------------------------


def test_rfc_replace_all_members() -> None:
    members = [
        {
            "display": "Babs Jensen",
            "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
            "value": "2819c223-7f76-453a-919d-413861904646",
        },
        {
            "display": "James Smith",
            "$ref": "https://example.com/v2/Users/08e1d05d-121c-4561-8b96-473d93df9210",
            "value": "08e1d05d-121c-4561-8b96-473d93df9210",
        },
    ]
    result = patch(
        GROUP, group("a", "b", "c"), {"op": "replace", "path": "members", "value": members}
    )
    assert result["members"] == members


def test_rfc_replace_a_work_address() -> None:
    value = {
        "type": "work",
        "streetAddress": "911 Universal City Plaza",
        "locality": "Hollywood",
        "region": "CA",
        "postalCode": "91608",
        "country": "US",
        "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
        "primary": True,
    }
    result = patch(
        USER, user(), {"op": "replace", "path": 'addresses[type eq "work"]', "value": value}
    )
    assert result["addresses"] == [
        value,
        {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood"},
    ]


def test_rfc_replace_a_sub_attribute_of_the_work_address() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "replace",
            "path": 'addresses[type eq "work"].streetAddress',
            "value": "1010 Broadway Ave",
        },
    )
    assert result["addresses"][0] == {
        "type": "work",
        "streetAddress": "1010 Broadway Ave",
        "locality": "Hollywood",
    }
    assert result["addresses"][1]["streetAddress"] == "456 Hollywood Blvd"


def test_rfc_replace_without_path() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "replace",
            "value": {
                "emails": [
                    {"value": "bjensen@example.com", "type": "work", "primary": True},
                    {"value": "babs@jensen.org", "type": "home"},
                ],
                "nickname": "Babs",
            },
        },
    )
    assert result["emails"] == [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ]
    assert result["nickName"] == "Babs"


# --- Entra (op names arrive lower-cased from the dialect layer) ----------------------------------


def test_entra_replace_email_value_and_family_name() -> None:
    """Entra E07."""
    result = patch(
        USER,
        user(),
        {
            "op": "replace",
            "path": 'emails[type eq "work"].value',
            "value": "updatedEmail@microsoft.com",
        },
        {"op": "replace", "path": "name.familyName", "value": "updatedFamilyName"},
    )
    assert result["emails"][0] == {
        "value": "updatedEmail@microsoft.com",
        "type": "work",
        "primary": True,
    }
    assert result["name"] == {"familyName": "updatedFamilyName", "givenName": "Barbara"}


def test_entra_replace_user_name() -> None:
    """Entra E08."""
    result = patch(
        USER, user(), {"op": "replace", "path": "userName", "value": "5b50642d@testuser.com"}
    )
    assert result["userName"] == "5b50642d@testuser.com"


def test_entra_replace_multiple_attributes_default_shape() -> None:
    """Entra E10: one operation per path, the extension attribute by its full URN path."""
    result = patch(
        USER,
        user(),
        {"op": "replace", "path": "displayName", "value": "Pvlo"},
        {
            "op": "replace",
            "path": 'emails[type eq "work"].value',
            "value": "TestBcwqnm@test.microsoft.com",
        },
        {"op": "replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "replace", "path": "name.familyName", "value": "Pkqf"},
        {"op": "replace", "path": "externalId", "value": "Eqpj"},
        {"op": "replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"},
    )
    assert result["displayName"] == "Pvlo"
    assert result["emails"][0]["value"] == "TestBcwqnm@test.microsoft.com"
    assert result["name"] == {"familyName": "Pkqf", "givenName": "Gtfd"}
    assert result["externalId"] == "Eqpj"
    assert result[ENTERPRISE]["employeeNumber"] == "Eqpj"


def test_entra_replace_aadoptscim062020_shape() -> None:
    """Entra E11: a path-less replace whose value keys are dotted and URN-qualified paths."""
    result = patch(
        USER,
        user(),
        {
            "op": "replace",
            "path": 'emails[type eq "work"].value',
            "value": "TestMhvaes@test.microsoft.com",
        },
        {
            "op": "replace",
            "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                f"{ENTERPRISE}:employeeNumber": "Aklq",
            },
        },
    )
    assert result["emails"][0]["value"] == "TestMhvaes@test.microsoft.com"
    assert result["displayName"] == "Bjfe"
    assert result["name"] == {"familyName": "Unua", "givenName": "Kkom"}
    assert result[ENTERPRISE]["employeeNumber"] == "Aklq"
    assert "name.givenName" not in result


@pytest.mark.parametrize("value", [False, True])
def test_entra_disable_user(value: bool) -> None:
    """Entra E13 (E12's "False" string is normalised by the dialect layer)."""
    result = patch(USER, user(), {"op": "replace", "path": "active", "value": value})
    assert result["active"] is value


def test_entra_replace_group_display_name() -> None:
    """Entra E17."""
    result = patch(
        GROUP, group("a"), {"op": "replace", "path": "displayName", "value": "displayName_updated"}
    )
    assert result["displayName"] == "displayName_updated"
    assert result["members"] == [{"value": "a", "type": "User"}]


# --- Okta ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("active", [False, True])
def test_okta_deactivate_and_reactivate(active: bool) -> None:
    """Okta O08/O09: {"op": "replace", "value": {"active": false}}."""
    result = patch(USER, user(), {"op": "replace", "value": {"active": active}})
    assert result["active"] is active
    assert result["userName"] == "bjensen@example.com"


def test_okta_rename_group_with_id_in_value() -> None:
    """Okta O14: the value carries the (read-only) id, which is ignored, not refused."""
    doc = group("a")
    result = patch(
        GROUP, doc, {"op": "replace", "value": {"id": doc["id"], "displayName": "Renamed"}}
    )
    assert result["displayName"] == "Renamed"
    assert result["id"] == doc["id"]


def test_okta_full_member_push() -> None:
    """Okta O15/O17: replace members with the full list."""
    result = patch(
        GROUP,
        group("a", "b"),
        {
            "op": "replace",
            "path": "members",
            "value": [
                {"value": "uid-1", "display": "test.user@okta.local"},
                {"value": "uid-2", "display": "test.user2@okta.local"},
            ],
        },
    )
    assert result["members"] == [
        {"value": "uid-1", "display": "test.user@okta.local"},
        {"value": "uid-2", "display": "test.user2@okta.local"},
    ]


# --- semantics -----------------------------------------------------------------------------------


def test_replace_a_complex_attribute_merges() -> None:
    """ "Sub-attributes that are not specified in the value parameter are left unchanged." """
    result = patch(USER, user(), {"op": "replace", "path": "name", "value": {"givenName": "B"}})
    assert result["name"] == {"familyName": "Jensen", "givenName": "B"}


def test_replace_a_complex_attribute_with_null_sub_attribute_unassigns_it() -> None:
    result = patch(
        USER,
        user(),
        {"op": "replace", "path": "name", "value": {"givenName": None, "middleName": "J"}},
    )
    assert result["name"] == {"familyName": "Jensen", "middleName": "J"}


def test_replace_manager_by_urn_path() -> None:
    result = patch(
        USER, user(), {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": "m2"}}
    )
    assert result[ENTERPRISE]["manager"] == {"value": "m2", "displayName": "John"}


def test_replace_multi_valued_replaces_the_whole_list() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "replace",
            "path": "emails",
            "value": [{"value": "only@example.com", "type": "work"}],
        },
    )
    assert result["emails"] == [{"value": "only@example.com", "type": "work"}]


def test_replace_multi_valued_with_one_element() -> None:
    result = patch(
        USER, user(), {"op": "replace", "path": "emails", "value": {"value": "only@example.com"}}
    )
    assert result["emails"] == [{"value": "only@example.com"}]


@pytest.mark.parametrize("value", [[], None])
def test_replace_multi_valued_with_nothing_unassigns_it(value: object) -> None:
    result = patch(USER, user(), {"op": "replace", "path": "emails", "value": value})
    assert "emails" not in result


def test_replace_with_null_unassigns() -> None:
    result = patch(USER, user(), {"op": "replace", "path": "displayName", "value": None})
    assert "displayName" not in result


def test_replace_an_absent_attribute_adds_it() -> None:
    result = patch(USER, user(), {"op": "replace", "path": "title", "value": "Guide"})
    assert result["title"] == "Guide"


def test_replace_through_a_value_filter_on_every_match() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "replace",
            "path": 'addresses[locality eq "Hollywood"].locality',
            "value": "Los Angeles",
        },
    )
    assert [a["locality"] for a in result["addresses"]] == ["Los Angeles", "Los Angeles"]


def test_replace_with_a_value_filter_matching_nothing_is_no_target() -> None:
    with pytest.raises(NoTarget) as caught:
        patch(
            USER,
            user(),
            {"op": "replace", "path": 'phoneNumbers[type eq "work"].value', "value": "555"},
        )
    assert "Operations[0]" in caught.value.detail
    assert "phoneNumbers" in caught.value.detail
    assert caught.value.scim_type == "noTarget"


def test_replace_matching_elements_with_null_removes_them() -> None:
    result = patch(USER, user(), {"op": "replace", "path": 'emails[type eq "home"]', "value": None})
    assert [e["type"] for e in result["emails"]] == ["work"]


def test_replace_primary_clears_the_other() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "replace",
            "path": 'emails[type eq "home"]',
            "value": {"value": "babs@jensen.org", "type": "home", "primary": True},
        },
    )
    assert [e.get("primary") for e in result["emails"]] == [False, True]


def test_replace_a_sub_attribute_of_every_element_without_filter() -> None:
    doc = user()
    doc["emails"] = [{"value": "a@example.com", "type": "work"}]
    result = patch(USER, doc, {"op": "replace", "path": "emails.value", "value": "b@example.com"})
    assert result["emails"] == [{"value": "b@example.com", "type": "work"}]


def test_replace_a_sub_attribute_of_an_absent_multi_valued_attribute_adds_one() -> None:
    result = patch(USER, user(), {"op": "replace", "path": "phoneNumbers.value", "value": "555"})
    assert result["phoneNumbers"] == [{"value": "555"}]


def test_replace_whole_extension_by_urn() -> None:
    result = patch(
        USER, user(), {"op": "replace", "path": ENTERPRISE, "value": {"department": "Sales"}}
    )
    assert result[ENTERPRISE] == {
        "employeeNumber": "701984",
        "department": "Sales",
        "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John"},
    }


def test_replace_whole_extension_with_null_keeps_server_owned_values() -> None:
    result = patch(USER, user(), {"op": "replace", "path": ACCESS, "value": None})
    assert result[ACCESS] == {"role": "Viewer"}


def test_replace_without_path_with_extension_object() -> None:
    result = patch(
        USER,
        user(),
        {
            "op": "replace",
            "value": {ENTERPRISE: {"employeeNumber": "1", "manager": {"value": "m3"}}},
        },
    )
    assert result[ENTERPRISE]["employeeNumber"] == "1"
    assert result[ENTERPRISE]["manager"] == {"value": "m3", "displayName": "John"}


def test_replace_without_path_with_null_removes_the_key() -> None:
    result = patch(USER, user(), {"op": "replace", "value": {"displayName": None}})
    assert "displayName" not in result


def test_replace_keys_in_any_case() -> None:
    result = patch(
        USER, user(), {"op": "replace", "value": {"DISPLAYNAME": "X", "Name.GivenName": "Y"}}
    )
    assert result["displayName"] == "X"
    assert result["name"]["givenName"] == "Y"
    assert "DISPLAYNAME" not in result


def test_extension_emptied_by_replace_leaves_schemas() -> None:
    doc = user()
    doc[ENTERPRISE] = {"department": "Tour Operations"}
    result = patch(USER, doc, {"op": "replace", "path": f"{ENTERPRISE}:department", "value": None})
    assert ENTERPRISE not in result
    assert result["schemas"] == [CORE, ACCESS]


@given(st.text(max_size=30))
def test_replace_then_read_back(value: str) -> None:
    result = patch(USER, user(), {"op": "replace", "path": "title", "value": value})
    assert result["title"] == value
