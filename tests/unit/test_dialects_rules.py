"""Each dialect rule of ``scim.dialects`` rewrites exactly the shape it names, and nothing else.

Pure functions: request in, request out. The HTTP tests (``tests/api/test_dialects.py``) prove
the rewritten requests do what the IdP meant; these pin the rewriting itself.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from scim_server.scim.dialects import (
    PATCH_RULES,
    RESOURCE_RULES,
    normalise_patch,
    normalise_resource,
)
from scim_server.scim.errors import InvalidValue
from scim_server.scim.patch import PATCH_OP
from scim_server.scim.schema import Registry
from tests.unit.patch_fixtures import CORE, ENTERPRISE, GROUP, GROUP_URN, REGISTRY, USER

ADSCIM = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
APP_ROLE = json.dumps(
    {"id": "06b07648-ecfe-589f-9d2f-6325724a46ee", "value": "Editor", "displayName": "Ed"}
)


def one(operation: dict[str, Any], rt: Any = USER) -> Any:
    body = {"schemas": [PATCH_OP], "Operations": [operation]}
    return normalise_patch(rt, body)["Operations"][0]


def test_every_rule_is_named_once() -> None:
    for rules in (RESOURCE_RULES, PATCH_RULES):
        names = [rule.name for rule in rules]
        assert len(names) == len(set(names))
        assert all(rule.description for rule in rules)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # capitalised-ops
        (
            {"op": "Replace", "path": "title", "value": "x"},
            {"op": "replace", "path": "title", "value": "x"},
        ),
        (
            {"OP": "ADD", "path": "title", "value": "x"},
            {"OP": "add", "path": "title", "value": "x"},
        ),
        (
            {"op": "Merge", "path": "title", "value": "x"},
            {"op": "merge", "path": "title", "value": "x"},
        ),
        # string-booleans, with a path, inside a value object, inside a multi-valued complex value
        (
            {"op": "replace", "path": "active", "value": "False"},
            {"op": "replace", "path": "active", "value": False},
        ),
        (
            {"op": "replace", "value": {"active": "TRUE"}},
            {"op": "replace", "value": {"active": True}},
        ),
        (
            {"op": "add", "path": "emails", "value": [{"value": "a@b.c", "primary": "true"}]},
            {"op": "add", "path": "emails", "value": [{"value": "a@b.c", "primary": True}]},
        ),
        (
            {"op": "replace", "path": "emails.primary", "value": "False"},
            {"op": "replace", "path": "emails.primary", "value": False},
        ),
        # ... but never where the schema does not say boolean, nor a string that is not a boolean
        (
            {"op": "replace", "path": "title", "value": "True"},
            {"op": "replace", "path": "title", "value": "True"},
        ),
        (
            {"op": "replace", "path": "active", "value": "yes"},
            {"op": "replace", "path": "active", "value": "yes"},
        ),
        # manager-as-id: by URN path, and as a URN-qualified key of a path-less value object
        (
            {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": "boss"},
            {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": "boss"}},
        ),
        (
            {"op": "replace", "value": {f"{ENTERPRISE}:manager": "boss"}},
            {"op": "replace", "value": {f"{ENTERPRISE}:manager": {"value": "boss"}}},
        ),
        (
            {"op": "replace", "value": {ENTERPRISE: {"manager": "boss"}}},
            {"op": "replace", "value": {ENTERPRISE: {"manager": {"value": "boss"}}}},
        ),
        # ... the manager's own sub-attribute is a string, and stays one
        (
            {"op": "replace", "path": f"{ENTERPRISE}:manager.value", "value": "boss"},
            {"op": "replace", "path": f"{ENTERPRISE}:manager.value", "value": "boss"},
        ),
        (
            {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": 42},
            {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": 42},
        ),
        # roles-as-json: path, path-less, and a removal; a plain role name is left alone
        (
            {"op": "Add", "path": "roles", "value": [{"value": APP_ROLE}]},
            {"op": "add", "path": "roles", "value": [{"value": "Editor"}]},
        ),
        (
            {"op": "remove", "path": "roles", "value": [{"value": APP_ROLE}]},
            {"op": "remove", "path": "roles", "value": [{"value": "Editor"}]},
        ),
        (
            {"op": "add", "value": {"roles": [{"value": APP_ROLE, "primary": "False"}]}},
            {"op": "add", "value": {"roles": [{"primary": False, "value": "Editor"}]}},
        ),
        (
            {"op": "add", "path": "roles", "value": [{"value": "Viewer"}]},
            {"op": "add", "path": "roles", "value": [{"value": "Viewer"}]},
        ),
        # roles-display-name: with a path and path-less; beside display it is left to validation
        (
            {"op": "Add", "path": "roles", "value": [{"displayName": "Ed", "value": "Editor"}]},
            {"op": "add", "path": "roles", "value": [{"display": "Ed", "value": "Editor"}]},
        ),
        (
            {"op": "replace", "value": {"roles": {"DisplayName": "Ed", "value": "Editor"}}},
            {"op": "replace", "value": {"roles": {"display": "Ed", "value": "Editor"}}},
        ),
        (
            {"op": "add", "path": "roles", "value": [{"display": "a", "displayName": "b"}]},
            {"op": "add", "path": "roles", "value": [{"display": "a", "displayName": "b"}]},
        ),
        # create-through-value-path: only replace, only a value filter with a sub-attribute
        (
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "w@b.c"},
            {"op": "add", "path": 'emails[type eq "work"].value', "value": "w@b.c"},
        ),
        (
            {"op": "replace", "path": 'emails[type eq "work"]', "value": {"value": "w@b.c"}},
            {"op": "replace", "path": 'emails[type eq "work"]', "value": {"value": "w@b.c"}},
        ),
        (
            {"op": "remove", "path": 'emails[type eq "work"].value'},
            {"op": "remove", "path": 'emails[type eq "work"].value'},
        ),
        (
            {"op": "Replace", "path": 'addresses[type eq "work"].locality', "value": "Oslo"},
            {"op": "add", "path": 'addresses[type eq "work"].locality', "value": "Oslo"},
        ),
        # create-through-value-path: only one `type eq "<string>"` comparison; any other filter
        # that matches nothing stays a replace, which the PATCH engine answers with noTarget
        (
            {"op": "replace", "path": 'roles[value eq "Administrator"].primary', "value": True},
            {"op": "replace", "path": 'roles[value eq "Administrator"].primary', "value": True},
        ),
        (
            {
                "op": "replace",
                "path": 'emails[type eq "work" and value eq "a@b.c"].primary',
                "value": True,
            },
            {
                "op": "replace",
                "path": 'emails[type eq "work" and value eq "a@b.c"].primary',
                "value": True,
            },
        ),
        (
            {"op": "replace", "path": 'emails[type ne "work"].value', "value": "w@b.c"},
            {"op": "replace", "path": 'emails[type ne "work"].value', "value": "w@b.c"},
        ),
        # what no rule understands is passed through for the PATCH engine to refuse
        (
            {"op": "replace", "path": "no.such", "value": "True"},
            {"op": "replace", "path": "no.such", "value": "True"},
        ),
        (
            {"op": "replace", "value": {"name.nope": "True", "schemas": ["x"]}},
            {"op": "replace", "value": {"name.nope": "True", "schemas": ["x"]}},
        ),
        ("not an object", "not an object"),
    ],
)
def test_patch_rules(given: Any, expected: Any) -> None:
    sent = copy.deepcopy(given)
    assert one(given) == expected
    assert given == sent  # the request as received is never changed in place


def test_manager_as_id_applies_to_the_enterprise_manager_only() -> None:
    """A core attribute that happens to be called ``manager`` is not the enterprise one."""
    core = copy.deepcopy(USER.schema.document)
    core["attributes"].append(
        {
            "name": "manager",
            "type": "complex",
            "multiValued": False,
            "subAttributes": [{"name": "value", "type": "string"}],
        }
    )
    schemas = [core if doc["id"] == CORE else doc for doc in REGISTRY.schema_documents]
    rt = Registry(schemas, REGISTRY.resource_type_documents).resource_type("User")
    operation = {"op": "replace", "path": "manager", "value": "boss"}
    assert one(operation, rt) == operation
    assert normalise_resource(rt, {"manager": "boss"}) == {"manager": "boss"}
    enterprise = {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": "boss"}
    assert one(enterprise, rt) == {**enterprise, "value": {"value": "boss"}}


def test_group_members_are_not_touched() -> None:
    members = [{"value": "u1", "$ref": None, "display": "Babs"}]
    assert one({"op": "Remove", "path": "members", "value": members}, GROUP) == {
        "op": "remove",
        "path": "members",
        "value": members,
    }


@pytest.mark.parametrize(
    ("rt", "given", "expected"),
    [
        (USER, {"schemas": [CORE], "active": "False"}, {"schemas": [CORE], "active": False}),
        (
            USER,
            {"schemas": [CORE, ENTERPRISE], ENTERPRISE: {"manager": "boss"}},
            {"schemas": [CORE, ENTERPRISE], ENTERPRISE: {"manager": {"value": "boss"}}},
        ),
        (USER, {"roles": [{"value": APP_ROLE}]}, {"roles": [{"value": "Editor"}]}),
        (
            USER,
            {"roles": [{"displayName": "Ed", "type": "WindowsAzureActiveDirectoryRole"}]},
            {"roles": [{"display": "Ed", "type": "WindowsAzureActiveDirectoryRole"}]},
        ),
        (GROUP, {"roles": [{"displayName": "Ed"}]}, {"roles": [{"displayName": "Ed"}]}),
        (
            GROUP,
            {"schemas": [GROUP_URN, ADSCIM], "displayName": "g"},
            {"schemas": [GROUP_URN], "displayName": "g"},
        ),
        (
            GROUP,
            {"schemas": [GROUP_URN, "urn:example:other"]},
            {"schemas": [GROUP_URN, "urn:example:other"]},
        ),
        (USER, ["not", "an", "object"], ["not", "an", "object"]),
    ],
)
def test_resource_rules(rt: Any, given: Any, expected: Any) -> None:
    assert normalise_resource(rt, given) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('{"id": "1", "value": "Ed', "not valid JSON"),
        (json.dumps({"id": "1", "displayName": "Editor"}), 'no "value" string'),
        (json.dumps({"id": "1", "value": 25}), 'no "value" string'),
        (json.dumps({"id": "1", "value": "  "}), 'no "value" string'),
        ("[1, 2]", None),  # not an object: a (strange) role name, refused later as no such role
    ],
)
def test_roles_the_rule_cannot_read(value: str, words: str | None) -> None:
    operation = {"op": "add", "path": "roles", "value": [{"value": value}]}
    if words is None:
        assert one(operation)["value"] == [{"value": value}]
        return
    with pytest.raises(InvalidValue, match=words):
        one(operation)
    with pytest.raises(InvalidValue, match="roles"):
        normalise_resource(USER, {"roles": [{"value": value}]})
