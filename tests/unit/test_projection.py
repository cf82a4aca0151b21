"""attributes / excludedAttributes (RFC 7644 §3.4.2.5, §3.9) and returned (RFC 7643 §2.4).

What an IdP asks for is what it gets: the minimum set (``id``, ``schemas``) always, ``never`` never,
sub-attribute selection on every element, extension objects and ``schemas`` kept consistent.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from scim_server.scim.errors import InvalidValue
from scim_server.scim.projection import Projection, apply_projection, parse_projection
from scim_server.scim.schema import (
    ACCESS_USER,
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE_USER,
    Registry,
    ResourceType,
)
from tests.unit.registries import product_registry


@pytest.fixture(scope="module")
def user() -> ResourceType:
    return product_registry().resource_type("User")


@pytest.fixture(scope="module")
def group() -> ResourceType:
    return product_registry().resource_type("Group")


USER_DOC: dict[str, Any] = {
    "schemas": [CORE_USER, ENTERPRISE_USER, ACCESS_USER],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "externalId": "00u1",
    "userName": "ada@acme.com",
    "name": {"givenName": "Ada", "familyName": "Lovelace"},
    "displayName": "Ada Lovelace",
    "active": True,
    "emails": [
        {"value": "ada@acme.com", "type": "work", "primary": True},
        {"value": "ada@home.example", "type": "home"},
    ],
    "groups": [{"value": "g1", "display": "Engineers"}],
    "meta": {
        "resourceType": "User",
        "created": "2026-01-01T00:00:00Z",
        "lastModified": "2026-01-02T00:00:00Z",
        "location": "https://scim.example/scim/v2/Users/2819c223-7f76-453a-919d-413861904646",
        "version": 'W/"3"',
    },
    ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "m1", "displayName": "Boss"}},
    ACCESS_USER: {"role": "Editor", "status": "active"},
}

GROUP_DOC: dict[str, Any] = {
    "schemas": [CORE_GROUP],
    "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
    "displayName": "Engineers",
    "members": [{"value": "u1", "display": "Ada"}, {"value": "u2", "display": "Bob"}],
    "meta": {"resourceType": "Group", "version": 'W/"1"'},
}

MINIMUM = {"schemas": [CORE_USER], "id": USER_DOC["id"]}


def _project(rt: ResourceType, attributes: str | None = None, excluded: str | None = None) -> Any:
    doc = USER_DOC if rt.name == "User" else GROUP_DOC
    return apply_projection(rt, doc, parse_projection(rt, attributes, excluded))


# --- default set ---------------------------------------------------------------------------------


def test_no_parameters_returns_the_default_set(user: ResourceType) -> None:
    assert _project(user) == USER_DOC


def test_key_order_is_kept(user: ResourceType) -> None:
    assert list(_project(user, excluded="name")) == [k for k in USER_DOC if k != "name"]


def test_input_document_is_not_modified(user: ResourceType) -> None:
    before = copy.deepcopy(USER_DOC)
    _project(user, attributes="emails.value,urn:ietf:params:scim:schemas:extension:access:2.0:User")
    _project(user, excluded="name.givenName")
    assert before == USER_DOC


@pytest.mark.parametrize(("attributes", "excluded"), [("", None), (None, " , "), ("", "")])
def test_empty_parameters_count_as_absent(
    user: ResourceType, attributes: str | None, excluded: str | None
) -> None:
    assert _project(user, attributes, excluded) == USER_DOC


def test_password_is_never_returned(user: ResourceType) -> None:
    doc = {**USER_DOC, "password": "leak"}
    for projection in (
        parse_projection(user, None, None),
        parse_projection(user, "password,userName", None),
        parse_projection(user, None, "userName"),
    ):
        assert "password" not in apply_projection(user, doc, projection)


# --- attributes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["userName", "USERNAME", "username", f"{CORE_USER}:userName"])
def test_attributes_replaces_the_default_set(user: ResourceType, name: str) -> None:
    assert _project(user, attributes=name) == {**MINIMUM, "userName": "ada@acme.com"}


def test_attributes_list_with_spaces(user: ResourceType) -> None:
    assert _project(user, attributes=" userName , active ") == {
        **MINIMUM,
        "userName": "ada@acme.com",
        "active": True,
    }


@pytest.mark.parametrize(
    "name", ["name.givenName", "NAME.GIVENNAME", f"{CORE_USER}:name.givenName"]
)
def test_attributes_sub_attribute_of_complex(user: ResourceType, name: str) -> None:
    assert _project(user, attributes=name) == {**MINIMUM, "name": {"givenName": "Ada"}}


def test_attributes_sub_attribute_applies_to_every_element(user: ResourceType) -> None:
    assert _project(user, attributes="emails.value") == {
        **MINIMUM,
        "emails": [{"value": "ada@acme.com"}, {"value": "ada@home.example"}],
    }


def test_attributes_two_sub_attributes(user: ResourceType) -> None:
    assert _project(user, attributes="emails.type,emails.primary")["emails"] == [
        {"type": "work", "primary": True},
        {"type": "home"},
    ]


def test_attributes_elements_without_the_sub_attribute_are_dropped(user: ResourceType) -> None:
    assert _project(user, attributes="emails.primary")["emails"] == [{"primary": True}]


def test_attributes_parent_and_sub_gives_whole_parent(user: ResourceType) -> None:
    assert _project(user, attributes="name.givenName,name")["name"] == USER_DOC["name"]


@pytest.mark.parametrize("urn", [ENTERPRISE_USER, ENTERPRISE_USER.upper()])
def test_attributes_extension_attribute(user: ResourceType, urn: str) -> None:
    assert _project(user, attributes=f"{urn}:department") == {
        "schemas": [CORE_USER, ENTERPRISE_USER],
        "id": USER_DOC["id"],
        ENTERPRISE_USER: {"department": "R&D"},
    }


def test_attributes_extension_sub_attribute(user: ResourceType) -> None:
    projected = _project(user, attributes=f"{ENTERPRISE_USER}:manager.value")
    assert projected[ENTERPRISE_USER] == {"manager": {"value": "m1"}}


@pytest.mark.parametrize("urn", [ACCESS_USER, ACCESS_USER.lower().replace("user", "USER")])
def test_attributes_whole_extension(user: ResourceType, urn: str) -> None:
    assert _project(user, attributes=urn) == {
        "schemas": [CORE_USER, ACCESS_USER],
        "id": USER_DOC["id"],
        ACCESS_USER: USER_DOC[ACCESS_USER],
    }


@pytest.mark.parametrize(
    ("name", "meta"),
    [
        ("meta", USER_DOC["meta"]),
        ("meta.lastModified", {"lastModified": "2026-01-02T00:00:00Z"}),
        ("META.VERSION", {"version": 'W/"3"'}),
    ],
)
def test_attributes_meta(user: ResourceType, name: str, meta: dict[str, Any]) -> None:
    assert _project(user, attributes=name) == {**MINIMUM, "meta": meta}


def test_attributes_external_id(user: ResourceType) -> None:
    assert _project(user, attributes="externalId") == {**MINIMUM, "externalId": "00u1"}


@pytest.mark.parametrize(
    "names",
    [
        "nosuchattribute",
        "name.nosuchsub",
        "userName.sub",
        "name.givenName.deeper",
        'emails[type eq "work"]',
        "urn:example:unknown:2.0:User:department",
        "urn:ietf:params:scim:schemas:core:2.0:Users",
        f"{ENTERPRISE_USER}:nosuch",
        ".",
    ],
)
def test_attributes_unknown_names_are_ignored(user: ResourceType, names: str) -> None:
    assert _project(user, attributes=names) == MINIMUM
    assert _project(user, attributes=f"{names},userName") == {**MINIMUM, "userName": "ada@acme.com"}


# --- excludedAttributes --------------------------------------------------------------------------


def test_excluded_attribute(user: ResourceType) -> None:
    projected = _project(user, excluded="emails,displayName")
    assert projected == {k: v for k, v in USER_DOC.items() if k not in ("emails", "displayName")}


def test_excluded_sub_attribute_applies_to_every_element(user: ResourceType) -> None:
    assert _project(user, excluded="EMAILS.VALUE")["emails"] == [
        {"type": "work", "primary": True},
        {"type": "home"},
    ]


def test_excluded_sub_attribute_of_single_complex(user: ResourceType) -> None:
    assert _project(user, excluded="name.familyName")["name"] == {"givenName": "Ada"}


def test_excluded_whole_extension_fixes_schemas(user: ResourceType) -> None:
    projected = _project(user, excluded=ENTERPRISE_USER.upper())
    assert ENTERPRISE_USER not in projected
    assert projected["schemas"] == [CORE_USER, ACCESS_USER]


def test_extension_left_empty_is_dropped(user: ResourceType) -> None:
    projected = _project(user, excluded=f"{ACCESS_USER}:role,{ACCESS_USER}:status")
    assert ACCESS_USER not in projected
    assert projected["schemas"] == [CORE_USER, ENTERPRISE_USER]


def test_excluded_extension_attribute_keeps_the_rest(user: ResourceType) -> None:
    projected = _project(user, excluded=f"{ACCESS_USER}:role")
    assert projected[ACCESS_USER] == {"status": "active"}
    assert projected["schemas"] == USER_DOC["schemas"]


@pytest.mark.parametrize("names", ["id", "schemas", "ID,Schemas", f"{CORE_USER}:id"])
def test_always_attributes_cannot_be_excluded(user: ResourceType, names: str) -> None:
    assert _project(user, excluded=names) == USER_DOC


@pytest.mark.parametrize(
    ("names", "meta"),
    [
        ("meta", None),
        (
            "meta.version,META.location",
            {
                "resourceType": "User",
                "created": "2026-01-01T00:00:00Z",
                "lastModified": "2026-01-02T00:00:00Z",
            },
        ),
    ],
)
def test_excluded_meta(user: ResourceType, names: str, meta: dict[str, Any] | None) -> None:
    assert _project(user, excluded=names).get("meta") == meta


def test_excluded_unknown_names_are_ignored(user: ResourceType) -> None:
    assert _project(user, excluded="nosuch,name.nosuch,urn:x:y") == USER_DOC


def test_group_without_members(group: ResourceType) -> None:
    projected = _project(group, excluded="members")
    assert projected == {k: v for k, v in GROUP_DOC.items() if k != "members"}


def test_group_member_ids_only(group: ResourceType) -> None:
    assert _project(group, attributes="members.value") == {
        "schemas": [CORE_GROUP],
        "id": GROUP_DOC["id"],
        "members": [{"value": "u1"}, {"value": "u2"}],
    }


def test_both_parameters_are_refused(user: ResourceType) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_projection(user, "userName", "emails")
    assert info.value.status == 400
    assert info.value.scim_type == "invalidValue"
    assert "attributes" in info.value.detail
    assert "excludedAttributes" in info.value.detail


# --- includes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "excluded", "name", "urn", "expected"),
    [
        (None, None, "members", None, True),
        (None, "members", "members", None, False),
        (None, "MEMBERS", "Members", None, False),
        (None, "members.display", "members", None, True),
        ("displayName", None, "members", None, False),
        ("members.value", None, "members", None, True),
        ("displayName", None, "id", None, True),
        ("displayName", None, "meta", None, False),
        (None, None, "meta", None, True),
        (None, "meta", "meta", None, False),
        (None, "id", "id", None, True),
        (None, None, "displayName", CORE_GROUP, True),
        (None, "displayName", "displayName", CORE_GROUP.upper(), False),
    ],
)
def test_includes_for_groups(
    group: ResourceType,
    attributes: str | None,
    excluded: str | None,
    name: str,
    urn: str | None,
    expected: bool,
) -> None:
    assert parse_projection(group, attributes, excluded).includes(name, urn) is expected


@pytest.mark.parametrize(
    ("attributes", "excluded", "name", "urn", "expected"),
    [
        (None, None, "password", None, False),
        ("password", None, "password", None, False),
        (None, None, "department", ENTERPRISE_USER, True),
        (None, ENTERPRISE_USER, "department", ENTERPRISE_USER, False),
        (f"{ENTERPRISE_USER}:manager.value", None, "manager", ENTERPRISE_USER, True),
        (f"{ENTERPRISE_USER}:manager.value", None, "department", ENTERPRISE_USER, False),
        (None, None, ENTERPRISE_USER, None, True),
        (None, ENTERPRISE_USER, ENTERPRISE_USER, None, False),
        ("userName", None, ACCESS_USER, None, False),
        (f"{ACCESS_USER}:role", None, ACCESS_USER.upper(), None, True),
        (None, None, "nosuch", None, True),
        ("userName", None, "nosuch", None, False),
        (None, None, "role", "urn:example:unknown", True),
    ],
)
def test_includes_for_users(
    user: ResourceType,
    attributes: str | None,
    excluded: str | None,
    name: str,
    urn: str | None,
    expected: bool,
) -> None:
    assert parse_projection(user, attributes, excluded).includes(name, urn) is expected


def test_projection_is_a_value(user: ResourceType) -> None:
    first = parse_projection(user, "userName,emails.value", None)
    second = parse_projection(user, "EMAILS.VALUE, username", None)
    assert isinstance(first, Projection)
    assert first == second
    assert hash(first) == hash(second)


SHAPES: list[dict[str, Any]] = [
    USER_DOC,
    {**USER_DOC, "emails": {"value": "one@acme.com", "x-unknown": 1}, ENTERPRISE_USER: "text"},
    {**USER_DOC, "emails": [], "name": None, "x-stray": [1], ACCESS_USER: {}},
    {**USER_DOC, "emails": [{"x-unknown": 1}, None, "plain"], "meta": {"version": 'W/"9"'}},
    {"id": "1", "schemas": [CORE_USER, ENTERPRISE_USER], ENTERPRISE_USER: {"costCenter": "7"}},
]


@pytest.mark.parametrize(
    ("attributes", "excluded"),
    [(None, None), ("emails.value,name", None), (None, f"emails.type,{ENTERPRISE_USER}")],
)
def test_one_projection_answers_every_document_as_a_fresh_one(
    user: ResourceType, attributes: str | None, excluded: str | None
) -> None:
    """A page applies one projection to every resource, and it remembers what it decided per
    key: documents of other shapes seen before must not change what a later one gets."""
    shared = parse_projection(user, attributes, excluded)
    for _ in range(2):
        for doc in SHAPES:
            fresh = parse_projection(user, attributes, excluded)
            if attributes is None and excluded is None:
                fresh = Projection(user)  # the default projection is shared between requests
            assert apply_projection(user, doc, shared) == apply_projection(user, doc, fresh)


def test_stray_keys_in_any_case_and_any_number(user: ResourceType) -> None:
    """Names are case-insensitive and keys the schemas do not define follow one rule, however
    many there are (the shared default projection must not depend on what it has seen)."""
    doc = {**USER_DOC, **{f"x-stray-{n}": n for n in range(300)}, "USERNAME": "upper", "Emails": []}
    for attributes, excluded in [(None, None), ("userName,emails", None), (None, "USERNAME")]:
        shared = parse_projection(user, attributes, excluded)
        fresh = Projection(user, shared.attributes, shared.excluded)
        for _ in range(2):
            assert apply_projection(user, doc, shared) == apply_projection(user, doc, fresh)
    default = apply_projection(user, doc, parse_projection(user, None, None))
    assert default["x-stray-299"] == 299
    assert default["USERNAME"] == "upper"
    assert "x-stray-0" not in apply_projection(user, doc, parse_projection(user, "userName", None))


def test_default_projections_of_two_resource_types_stay_apart(
    user: ResourceType, group: ResourceType
) -> None:
    # members.display is returned on request only (schemas/group.json)
    members = [{"value": m["value"]} for m in GROUP_DOC["members"]]
    for _ in range(2):
        assert _project(user) == USER_DOC
        assert _project(group) == {**GROUP_DOC, "members": members}
        assert _project(group, excluded="members") == {
            k: v for k, v in GROUP_DOC.items() if k != "members"
        }


def test_response_does_not_share_complex_values_with_the_document(user: ResourceType) -> None:
    doc = copy.deepcopy(USER_DOC)
    projected = apply_projection(user, doc, parse_projection(user, None, None))
    projected["emails"][0]["value"] = "changed@acme.com"
    projected["name"]["givenName"] = "Changed"
    assert doc == USER_DOC


# --- returned: request / always / never on sub-attributes ----------------------------------------

WIDGET = "urn:example:params:scim:schemas:core:2.0:Widget"


def _a(name: str, returned: str, **extra: Any) -> dict[str, Any]:
    doc = {
        "name": name,
        "type": "string",
        "multiValued": False,
        "description": name,
        "required": False,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": returned,
        "uniqueness": "none",
    }
    doc.update(extra)
    return doc


@pytest.fixture(scope="module")
def widget(tmp_path_factory: pytest.TempPathFactory) -> ResourceType:
    folder: Path = tmp_path_factory.mktemp("widget_schemas")
    schema = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": WIDGET,
        "name": "Widget",
        "attributes": [
            _a("label", "default"),
            _a("code", "always"),
            _a("token", "request"),
            _a("secret", "never"),
            _a(
                "parts",
                "default",
                type="complex",
                multiValued=True,
                subAttributes=[
                    _a("plain", "default"),
                    _a("key", "always"),
                    _a("extra", "request"),
                    _a("hidden", "never"),
                ],
            ),
        ],
    }
    rt = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "Widget",
        "name": "Widget",
        "endpoint": "/Widgets",
        "schema": WIDGET,
    }
    (folder / "widget.json").write_text(json.dumps(schema), encoding="utf-8")
    (folder / "rt.json").write_text(json.dumps(rt), encoding="utf-8")
    return Registry.load(folder).resource_type("Widget")


WIDGET_DOC: dict[str, Any] = {
    "schemas": [WIDGET],
    "id": "w1",
    "label": "L",
    "code": "C",
    "token": "T",
    "secret": "S",
    "parts": [{"plain": "p", "key": "k", "extra": "e", "hidden": "h"}],
}


def _widget(rt: ResourceType, attributes: str | None = None, excluded: str | None = None) -> Any:
    return apply_projection(rt, WIDGET_DOC, parse_projection(rt, attributes, excluded))


def test_default_set_leaves_out_request_and_never(widget: ResourceType) -> None:
    assert _widget(widget) == {
        "schemas": [WIDGET],
        "id": "w1",
        "label": "L",
        "code": "C",
        "parts": [{"plain": "p", "key": "k"}],
    }


def test_request_attribute_only_when_named(widget: ResourceType) -> None:
    assert _widget(widget, attributes="token") == {
        "schemas": [WIDGET],
        "id": "w1",
        "code": "C",
        "token": "T",
    }
    assert "token" not in _widget(widget, excluded="label")


def test_request_sub_attribute_only_when_named(widget: ResourceType) -> None:
    assert _widget(widget, attributes="parts")["parts"] == [{"plain": "p", "key": "k"}]
    assert _widget(widget, attributes="parts.extra")["parts"] == [{"key": "k", "extra": "e"}]
    assert _widget(widget, attributes="parts,parts.extra")["parts"] == [
        {"plain": "p", "key": "k", "extra": "e"}
    ]


def test_always_attribute_survives_exclusion(widget: ResourceType) -> None:
    assert _widget(widget, excluded="code,parts.key")["code"] == "C"
    assert _widget(widget, excluded="code,parts.key")["parts"] == [{"plain": "p", "key": "k"}]


def test_never_attribute_even_when_named(widget: ResourceType) -> None:
    projected = _widget(widget, attributes="secret,parts.hidden")
    assert "secret" not in projected
    assert projected["parts"] == [{"key": "k"}]


def test_bare_core_urn_names_the_default_set(widget: ResourceType) -> None:
    assert _widget(widget, attributes=WIDGET) == {
        "schemas": [WIDGET],
        "id": "w1",
        "label": "L",
        "code": "C",
        "parts": [{"plain": "p", "key": "k"}],
    }
