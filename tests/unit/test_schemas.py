"""The shipped schema documents (RFC 7643 §6, §7, §8.7) are complete and consistent.

They are served as-is by ``/Schemas`` and ``/ResourceTypes`` and drive validation, so a missing
characteristic is a protocol bug an IdP would see.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scim_server.scim.schema import (
    ACCESS_USER,
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE_USER,
    Attribute,
    Registry,
    default_registry,
)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_URN = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"

TYPES = {"string", "boolean", "decimal", "integer", "dateTime", "binary", "reference", "complex"}
MUTABILITY = {"readOnly", "readWrite", "immutable", "writeOnly"}
RETURNED = {"always", "never", "default", "request"}
UNIQUENESS = {"none", "server", "global"}
CHARACTERISTICS = (
    "name",
    "type",
    "multiValued",
    "description",
    "required",
    "caseExact",
    "mutability",
    "returned",
    "uniqueness",
)


def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return doc


def _documents(kind: str) -> list[str]:
    names = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if kind in doc.get("schemas", ()):
            names.append(path.name)
    return names


SCHEMA_FILES = _documents(SCHEMA_URN)
RESOURCE_TYPE_FILES = _documents(RESOURCE_TYPE_URN)


def _walk(attributes: list[dict[str, Any]], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    for attr in attributes:
        path = prefix + attr["name"]
        found.append((path, attr))
        found.extend(_walk(attr.get("subAttributes", []), path + "."))
    return found


def _attr(urn: str, path: str) -> Attribute:
    schema = default_registry().schema(urn)
    assert schema is not None
    name, _, sub = path.partition(".")
    attr = schema.attribute(name)
    assert attr is not None, path
    if sub:
        sub_attr = attr.sub(sub)
        assert sub_attr is not None, path
        return sub_attr
    return attr


def test_every_json_file_is_a_schema_or_a_resource_type() -> None:
    files = sorted(p.name for p in SCHEMA_DIR.glob("*.json"))
    assert sorted(SCHEMA_FILES + RESOURCE_TYPE_FILES) == files
    assert set(SCHEMA_FILES) == {
        "user.json",
        "enterprise_user.json",
        "group.json",
        "access_user.json",
        "audit_event.json",
    }
    assert set(RESOURCE_TYPE_FILES) == {
        "resource_type_user.json",
        "resource_type_group.json",
        "resource_type_audit_event.json",
    }


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schema_document_has_resource_form(name: str) -> None:
    doc = _load(name)
    assert doc["schemas"] == [SCHEMA_URN]
    # SCIM's own and the product's user extension; the audit event is the product's own resource
    assert doc["id"].startswith(("urn:ietf:params:scim:schemas:", "urn:scim-server:params:"))
    assert doc["name"]
    assert doc["description"]
    assert doc["attributes"]
    assert doc["meta"] == {"resourceType": "Schema", "location": f"/Schemas/{doc['id']}"}


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_every_attribute_spells_out_every_characteristic(name: str) -> None:
    for path, attr in _walk(_load(name)["attributes"]):
        missing = [c for c in CHARACTERISTICS if c not in attr]
        assert not missing, f"{name}: {path} lacks {missing}"
        assert attr["type"] in TYPES, path
        assert attr["mutability"] in MUTABILITY, path
        assert attr["returned"] in RETURNED, path
        assert attr["uniqueness"] in UNIQUENESS, path
        for flag in ("multiValued", "required", "caseExact"):
            assert isinstance(attr[flag], bool), f"{path}.{flag}"
        assert isinstance(attr["description"], str), path
        assert attr["description"], path
        if attr["type"] == "complex":
            assert attr.get("subAttributes"), f"{path}: complex without subAttributes"
        else:
            assert "subAttributes" not in attr, path
        if attr["type"] == "reference":
            assert attr.get("referenceTypes"), f"{path}: reference without referenceTypes"
        if "canonicalValues" in attr:
            assert all(isinstance(v, str) for v in attr["canonicalValues"]), path


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_sub_attributes_are_not_complex_and_names_are_unique(name: str) -> None:
    doc = _load(name)
    for path, attr in _walk(doc["attributes"]):
        subs = attr.get("subAttributes", [])
        assert all(s["type"] != "complex" for s in subs), path  # RFC 7643 §2.3.8
        lowered = [s["name"].lower() for s in subs]
        assert len(lowered) == len(set(lowered)), path
    top = [a["name"].lower() for a in doc["attributes"]]
    assert len(top) == len(set(top))


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_common_attributes_are_not_listed(name: str) -> None:
    top = {a["name"] for a in _load(name)["attributes"]}
    assert not top & {"id", "externalId", "meta", "schemas"}


def test_user_schema_has_every_rfc7643_attribute() -> None:
    names = [a["name"] for a in _load("user.json")["attributes"]]
    assert names == [
        "userName",
        "name",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "password",
        "emails",
        "phoneNumbers",
        "ims",
        "photos",
        "addresses",
        "groups",
        "entitlements",
        "roles",
        "x509Certificates",
    ]


@pytest.mark.parametrize(
    ("urn", "path", "expected"),
    [
        (CORE_USER, "userName", {"required": True, "uniqueness": "server", "case_exact": False}),
        (CORE_USER, "password", {"mutability": "writeOnly", "returned": "never"}),
        (CORE_USER, "active", {"type": "boolean"}),
        (CORE_USER, "profileUrl", {"type": "reference", "reference_types": ("external",)}),
        (CORE_USER, "emails", {"multi_valued": True, "type": "complex"}),
        (CORE_USER, "emails.type", {"canonical_values": ("work", "home", "other")}),
        (CORE_USER, "emails.primary", {"type": "boolean"}),
        (CORE_USER, "x509Certificates.value", {"type": "binary", "case_exact": True}),
        (CORE_USER, "groups", {"mutability": "readOnly", "multi_valued": True}),
        (CORE_USER, "groups.value", {"mutability": "readOnly"}),
        (CORE_USER, "groups.$ref", {"mutability": "readOnly", "type": "reference"}),
        (CORE_USER, "groups.display", {"mutability": "readOnly"}),
        (CORE_USER, "groups.type", {"mutability": "readOnly"}),
        (CORE_USER, "name.givenName", {"type": "string", "mutability": "readWrite"}),
        (
            CORE_GROUP,
            "displayName",
            {"required": True, "uniqueness": "server", "case_exact": False},
        ),
        (CORE_GROUP, "members", {"multi_valued": True, "mutability": "readWrite"}),
        (CORE_GROUP, "members.value", {"mutability": "immutable", "type": "string"}),
        (
            CORE_GROUP,
            "members.$ref",
            {"mutability": "immutable", "reference_types": ("User", "Group")},
        ),
        (
            CORE_GROUP,
            "members.type",
            {"mutability": "immutable", "canonical_values": ("User", "Group")},
        ),
        (CORE_GROUP, "members.display", {"mutability": "readOnly", "type": "string"}),
        (ENTERPRISE_USER, "employeeNumber", {"type": "string"}),
        (ENTERPRISE_USER, "manager.value", {"mutability": "readWrite"}),
        (ENTERPRISE_USER, "manager.$ref", {"reference_types": ("User",)}),
        (ENTERPRISE_USER, "manager.displayName", {"mutability": "readOnly"}),
        (ACCESS_USER, "role", {"type": "string", "mutability": "readOnly"}),
        (ACCESS_USER, "accessGroups", {"multi_valued": True, "mutability": "readOnly"}),
        (ACCESS_USER, "accessGroups.value", {"mutability": "readOnly"}),
        (
            ACCESS_USER,
            "status",
            {
                "mutability": "readOnly",
                "canonical_values": ("invited", "active", "deactivated", "locked", "expired"),
            },
        ),
        (ACCESS_USER, "lastSignInAt", {"type": "dateTime", "mutability": "readOnly"}),
        (ACCESS_USER, "lastActivityAt", {"type": "dateTime", "mutability": "readOnly"}),
    ],
)
def test_attribute_characteristics(urn: str, path: str, expected: dict[str, Any]) -> None:
    attr = _attr(urn, path)
    actual = {key: getattr(attr, key) for key in expected}
    assert actual == expected


def test_enterprise_schema_attributes() -> None:
    names = [a["name"] for a in _load("enterprise_user.json")["attributes"]]
    assert names == [
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
        "manager",
    ]


def test_access_schema_identity() -> None:
    doc = _load("access_user.json")
    assert doc["id"] == ACCESS_USER
    assert doc["name"] == "AccessUser"


@pytest.mark.parametrize("name", RESOURCE_TYPE_FILES)
def test_resource_type_document_form(name: str) -> None:
    doc = _load(name)
    assert doc["schemas"] == [RESOURCE_TYPE_URN]
    for key in ("id", "name", "endpoint", "description", "schema"):
        assert isinstance(doc[key], str), key
        assert doc[key], key
    assert doc["meta"] == {
        "resourceType": "ResourceType",
        "location": f"/ResourceTypes/{doc['id']}",
    }
    for ext in doc.get("schemaExtensions", []):
        assert set(ext) == {"schema", "required"}
        assert isinstance(ext["required"], bool)


def test_every_resource_type_schema_and_extension_exists() -> None:
    registry = Registry.load(SCHEMA_DIR)
    schema_ids = {doc["id"] for doc in registry.schema_documents}
    assert registry.resource_type_documents
    for doc in registry.resource_type_documents:
        assert doc["schema"] in schema_ids, doc["name"]
        for ext in doc.get("schemaExtensions", []):
            assert ext["schema"] in schema_ids, (doc["name"], ext["schema"])


@pytest.mark.parametrize(
    ("name", "endpoint", "core", "extensions"),
    [
        ("User", "/Users", CORE_USER, ((ENTERPRISE_USER, False), (ACCESS_USER, False))),
        ("Group", "/Groups", CORE_GROUP, ()),
    ],
)
def test_resource_types(
    name: str, endpoint: str, core: str, extensions: tuple[tuple[str, bool], ...]
) -> None:
    rt = default_registry().resource_type(name)
    assert rt.endpoint == endpoint
    assert rt.schema.id == core
    assert tuple((e.schema.id, e.required) for e in rt.extensions) == extensions
