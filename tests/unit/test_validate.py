"""Resource body validation (RFC 7643 §2, §3, §7; RFC 7644 §3.3, §3.5.1; DESIGN §5.4 step 1).

Each test states one rule as an IdP or IT admin sees it: the status, the ``scimType`` and the
words of ``detail`` that say what to fix, or the canonical document that gets stored.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scim_server.scim.errors import InvalidSyntax, InvalidValue, Mutability, ScimError
from scim_server.scim.schema import (
    ACCESS_USER,
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE_USER,
    Registry,
    ResourceType,
)
from scim_server.scim.validate import (
    MAX_BINARY_LENGTH,
    MAX_STRING_LENGTH,
    base64_problem,
    parse_datetime,
    parse_resource,
)
from tests.unit.registries import product_registry

MS_GROUP_URN = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


@pytest.fixture(scope="module")
def user() -> ResourceType:
    return product_registry().resource_type("User")


@pytest.fixture(scope="module")
def group() -> ResourceType:
    return product_registry().resource_type("Group")


# A resource type that exercises what the shipped schemas do not: integer, decimal, binary,
# top-level and sub-attribute immutability, required sub-attributes, a required extension.
DEVICE = "urn:example:params:scim:schemas:core:2.0:Device"
OPS = "urn:example:params:scim:schemas:extension:ops:2.0:Device"


def _a(name: str, type_: str, **extra: Any) -> dict[str, Any]:
    doc = {
        "name": name,
        "type": type_,
        "multiValued": False,
        "description": name,
        "required": False,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    }
    doc.update(extra)
    return doc


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> ResourceType:
    folder: Path = tmp_path_factory.mktemp("device_schemas")
    core = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": DEVICE,
        "name": "Device",
        "attributes": [
            _a("serial", "string", required=True, mutability="immutable"),
            _a("tag", "string", caseExact=True, mutability="immutable"),
            _a("count", "integer"),
            _a("weight", "decimal"),
            _a("blob", "binary", caseExact=True),
            _a("seenAt", "dateTime"),
            _a("installedAt", "dateTime", mutability="immutable"),
            _a(
                "owner",
                "complex",
                subAttributes=[
                    _a("id", "string", caseExact=True, mutability="immutable"),
                    _a("note", "string"),
                ],
            ),
            _a(
                "ports",
                "complex",
                multiValued=True,
                subAttributes=[
                    _a("number", "integer", required=True, mutability="immutable"),
                    _a("label", "string"),
                ],
            ),
            _a("codes", "string", multiValued=True, mutability="immutable"),
        ],
    }
    ops = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": OPS,
        "name": "Ops",
        "attributes": [
            _a("level", "string", required=True),
            _a("zone", "string"),
            _a("key", "binary"),
            _a("keys", "binary", multiValued=True),
        ],
    }
    rt = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "Device",
        "name": "Device",
        "endpoint": "/Devices",
        "schema": DEVICE,
        "schemaExtensions": [{"schema": OPS, "required": True}],
    }
    for name, doc in (("device.json", core), ("ops.json", ops), ("rt.json", rt)):
        (folder / name).write_text(json.dumps(doc), encoding="utf-8")
    return Registry.load(folder).resource_type("Device")


def _device(**attrs: Any) -> dict[str, Any]:
    return {"schemas": [DEVICE, OPS], "serial": "S1", OPS: {"level": "high"}, **attrs}


def _raises(exc: type[ScimError], rt: ResourceType, payload: Any, **kw: Any) -> ScimError:
    with pytest.raises(exc) as info:
        parse_resource(rt, payload, **kw)
    return info.value


# --- canonical output ----------------------------------------------------------------------------


def test_okta_full_put_becomes_canonical_document(user: ResourceType) -> None:
    body = {
        "schemas": [CORE_USER],
        "id": "9a7e7c1e-1111-4a4a-9999-000000000001",
        "userName": "test.user@okta.local",
        "name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"},
        "emails": [
            {"primary": True, "value": "test.user@okta.local", "type": "work", "display": "T"}
        ],
        "active": True,
        "groups": [],
        "password": "1mz050nq",
        "meta": {"resourceType": "User"},
    }
    assert parse_resource(user, body) == {
        "schemas": [CORE_USER],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"},
        "emails": [
            {"primary": True, "value": "test.user@okta.local", "type": "work", "display": "T"}
        ],
        "active": True,
    }


def test_output_orders_schemas_externalid_core_then_extensions(user: ResourceType) -> None:
    body = {
        ACCESS_USER: {"accessExpiresAt": "2026-01-02T03:04:05Z"},
        ENTERPRISE_USER: {"department": "Sales"},
        "userName": "a@acme.com",
        "externalId": "00u1",
        "schemas": [ACCESS_USER, CORE_USER, ENTERPRISE_USER],
    }
    doc = parse_resource(user, body)
    assert list(doc) == ["schemas", "externalId", "userName", ENTERPRISE_USER, ACCESS_USER]
    assert doc["schemas"] == [CORE_USER, ENTERPRISE_USER, ACCESS_USER]
    assert doc["externalId"] == "00u1"


def test_keys_follow_schema_order_whatever_the_input_order(user: ResourceType) -> None:
    body = {
        ENTERPRISE_USER: {"manager": {"value": "m"}, "employeeNumber": "7"},
        "emails": [{"primary": True, "type": "work", "value": "a@x"}],
        "name": {"familyName": "L", "givenName": "A"},
        "userName": "a",
    }
    doc = parse_resource(user, body)
    assert list(doc) == ["schemas", "userName", "name", "emails", ENTERPRISE_USER]
    assert list(doc["name"]) == ["familyName", "givenName"]
    assert list(doc["emails"][0]) == ["value", "type", "primary"]
    assert list(doc[ENTERPRISE_USER]) == ["employeeNumber", "manager"]


def test_schemas_lists_only_extensions_with_content(user: ResourceType) -> None:
    # Entra lists the enterprise URN on create with no enterprise attributes.
    body = {"schemas": [CORE_USER, ENTERPRISE_USER], "userName": "a", ENTERPRISE_USER: {}}
    assert parse_resource(user, body) == {"schemas": [CORE_USER], "userName": "a"}


def test_extension_present_without_being_listed_in_schemas_is_kept(user: ResourceType) -> None:
    doc = parse_resource(
        user, {"schemas": [CORE_USER], "userName": "a", ENTERPRISE_USER: {"division": "X"}}
    )
    assert doc["schemas"] == [CORE_USER, ENTERPRISE_USER]
    assert doc[ENTERPRISE_USER] == {"division": "X"}


def test_missing_schemas_is_tolerated(user: ResourceType) -> None:
    assert parse_resource(user, {"userName": "a"}) == {"schemas": [CORE_USER], "userName": "a"}


def test_input_is_not_modified(user: ResourceType) -> None:
    body = {"userName": "a", "id": "x", "name": {"givenName": None}, "groups": [{"value": "g"}]}
    before = copy.deepcopy(body)
    parse_resource(user, body)
    assert body == before


# --- body and schemas ----------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [[], "userName", 3, None, True])
def test_body_must_be_an_object(user: ResourceType, payload: object) -> None:
    err = _raises(InvalidSyntax, user, payload)
    assert err.status == 400
    assert err.scim_type == "invalidSyntax"
    assert "must be a JSON object" in err.detail


@pytest.mark.parametrize("schemas", [CORE_USER, {"a": CORE_USER}, [CORE_USER, 3]])
def test_schemas_must_be_array_of_strings(user: ResourceType, schemas: object) -> None:
    err = _raises(InvalidSyntax, user, {"schemas": schemas, "userName": "a"})
    assert err.scim_type == "invalidSyntax"
    assert '"schemas"' in err.detail


def test_schemas_must_contain_core_schema(user: ResourceType) -> None:
    err = _raises(InvalidValue, user, {"schemas": [ENTERPRISE_USER], "userName": "a"})
    assert err.scim_type == "invalidValue"
    assert CORE_USER in err.detail


@pytest.mark.parametrize(
    ("rt_name", "urn"),
    [("Group", MS_GROUP_URN), ("Group", ENTERPRISE_USER), ("User", CORE_GROUP)],
)
def test_unknown_schema_urn_is_refused_by_name(rt_name: str, urn: str) -> None:
    rt = product_registry().resource_type(rt_name)
    core = rt.schema.id
    err = _raises(InvalidValue, rt, {"schemas": [core, urn], "displayName": "g", "userName": "u"})
    assert err.scim_type == "invalidValue"
    assert f'unknown schema "{urn}" for resource type {rt_name}' == err.detail


def test_schema_urns_are_case_insensitive(user: ResourceType) -> None:
    body = {
        "schemas": [CORE_USER.upper(), ENTERPRISE_USER.lower()],
        "userName": "a",
        ENTERPRISE_USER.upper(): {"department": "D"},
    }
    doc = parse_resource(user, body)
    assert doc["schemas"] == [CORE_USER, ENTERPRISE_USER]
    assert doc[ENTERPRISE_USER] == {"department": "D"}


# --- names ---------------------------------------------------------------------------------------


def test_attribute_names_are_case_insensitive(user: ResourceType) -> None:
    body = {
        "SCHEMAS": [CORE_USER],
        "USERNAME": "a@acme.com",
        "ExternalID": "e1",
        "Name": {"GIVENNAME": "Ada", "familyname": "Lovelace"},
        "emails": [{"VALUE": "a@acme.com", "Primary": True}],
        "ACTIVE": False,
        ENTERPRISE_USER.upper(): {"EMPLOYEENUMBER": "42", "Manager": {"VALUE": "m1"}},
    }
    assert parse_resource(user, body) == {
        "schemas": [CORE_USER, ENTERPRISE_USER],
        "externalId": "e1",
        "userName": "a@acme.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "a@acme.com", "primary": True}],
        "active": False,
        ENTERPRISE_USER: {"employeeNumber": "42", "manager": {"value": "m1"}},
    }


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"userName": "a", "USERNAME": "b"}, '"userName"'),
        ({"userName": "a", "name": {"givenName": "x", "GivenName": "y"}}, '"name.givenName"'),
        ({"userName": "a", "emails": [{"value": "x", "Value": "y"}]}, '"emails.value"'),
        (
            {"userName": "a", ENTERPRISE_USER: {}, ENTERPRISE_USER.upper(): {}},
            f'"{ENTERPRISE_USER}"',
        ),
        (
            {"userName": "a", ENTERPRISE_USER: {"department": "x", "DEPARTMENT": "y"}},
            f'"{ENTERPRISE_USER}:department"',
        ),
        ({"userName": "a", "id": "1", "ID": "2"}, '"id"'),
    ],
)
def test_same_attribute_twice_in_different_case_is_refused(
    user: ResourceType, body: dict[str, Any], name: str
) -> None:
    err = _raises(InvalidSyntax, user, body)
    assert err.scim_type == "invalidSyntax"
    assert err.detail.startswith(f"attribute {name} is given twice in different case")


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ({"userName": "a", "foo": 1}, "foo"),
        ({"userName": "a", "name": {"foo": "x"}}, "name.foo"),
        ({"userName": "a", "emails": [{"value": "x", "kind": "work"}]}, "emails.kind"),
        ({"userName": "a", ENTERPRISE_USER: {"badge": "7"}}, f"{ENTERPRISE_USER}:badge"),
        (
            {"userName": "a", ENTERPRISE_USER: {"manager": {"email": "x"}}},
            f"{ENTERPRISE_USER}:manager.email",
        ),
        ({"userName": "a", CORE_USER: {"userName": "b"}}, CORE_USER),
        ({"userName": "a", "urn:example:unknown:2.0:User": {}}, "urn:example:unknown:2.0:User"),
    ],
)
def test_unknown_attribute_is_refused_by_name(
    user: ResourceType, body: dict[str, Any], shown: str
) -> None:
    err = _raises(InvalidSyntax, user, body)
    assert err.scim_type == "invalidSyntax"
    assert err.detail == f'unknown attribute "{shown}" for resource type User'


def test_unknown_group_attribute_names_group(group: ResourceType) -> None:
    err = _raises(InvalidSyntax, group, {"displayName": "g", "owner": "x"})
    assert err.detail == 'unknown attribute "owner" for resource type Group'


def test_huge_unknown_attribute_name_is_cut_in_detail(user: ResourceType) -> None:
    err = _raises(InvalidSyntax, user, {"userName": "a", "x" * 10_000: 1})
    assert len(err.detail) < 200


@pytest.mark.parametrize("value", ["Sales", ["Sales"], 3, True])
def test_extension_value_must_be_an_object(user: ResourceType, value: object) -> None:
    err = _raises(InvalidSyntax, user, {"userName": "a", ENTERPRISE_USER: value})
    assert err.scim_type == "invalidSyntax"
    assert f"extension {ENTERPRISE_USER} must be a JSON object" in err.detail


def test_null_extension_is_unassigned(user: ResourceType) -> None:
    doc = parse_resource(user, {"userName": "a", ENTERPRISE_USER: None})
    assert doc == {"schemas": [CORE_USER], "userName": "a"}


# --- types ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"active": "true"}, 'attribute "active" must be a boolean, got string'),
        ({"active": "False"}, 'attribute "active" must be a boolean, got string'),
        ({"active": 1}, 'attribute "active" must be a boolean, got integer'),
        ({"active": 0.0}, 'attribute "active" must be a boolean, got decimal number'),
        ({"userName": 5}, 'attribute "userName" must be a string, got integer'),
        ({"userName": True}, 'attribute "userName" must be a string, got boolean'),
        ({"userName": {"value": "a"}}, 'attribute "userName" must be a string, got object'),
        ({"nickName": ["a"]}, 'attribute "nickName" must be a string, got array'),
        (
            {"name": "Ada Lovelace"},
            'attribute "name" must be an object (complex attribute), got string',
        ),
        ({"name": {"givenName": 7}}, 'attribute "name.givenName" must be a string, got integer'),
        ({"profileUrl": 3}, 'attribute "profileUrl" must be a string (reference), got integer'),
        (
            {"emails": {"value": "a@acme.com"}},
            'attribute "emails" must be an array (multi-valued), got object',
        ),
        (
            {"emails": "a@acme.com"},
            'attribute "emails" must be an array (multi-valued), got string',
        ),
        (
            {"emails": ["a@acme.com"]},
            'attribute "emails" must be an object (complex attribute), got string',
        ),
        (
            {"emails": [{"value": "a", "primary": "true"}]},
            'attribute "emails.primary" must be a boolean, got string',
        ),
        (
            {"photos": [{"value": 12}]},
            'attribute "photos.value" must be a string (reference), got integer',
        ),
        (
            {"x509Certificates": [{"value": 12}]},
            'attribute "x509Certificates.value" must be a string (base64 binary), got integer',
        ),
        (
            {ACCESS_USER: {"accessExpiresAt": 1767225600}},
            f'attribute "{ACCESS_USER}:accessExpiresAt" must be a string (xsd:dateTime), '
            "got integer",
        ),
        (
            {ENTERPRISE_USER: {"manager": "m1"}},
            f'attribute "{ENTERPRISE_USER}:manager" must be an object (complex attribute), '
            "got string",
        ),
        ({"externalId": 17}, 'attribute "externalId" must be a string, got integer'),
    ],
)
def test_wrong_type_names_attribute_and_expected_type(
    user: ResourceType, body: dict[str, Any], detail: str
) -> None:
    err = _raises(InvalidValue, user, {"userName": "a", **body})
    assert err.status == 400
    assert err.scim_type == "invalidValue"
    assert err.detail == detail


@pytest.mark.parametrize(
    ("attrs", "detail"),
    [
        ({"count": "3"}, 'attribute "count" must be an integer, got string'),
        ({"count": True}, 'attribute "count" must be an integer, got boolean'),
        ({"count": 1.5}, 'attribute "count" must be an integer, got decimal number'),
        ({"weight": "1.5"}, 'attribute "weight" must be a decimal number, got string'),
        ({"weight": False}, 'attribute "weight" must be a decimal number, got boolean'),
        ({"weight": float("nan")}, 'attribute "weight" must be a finite decimal number'),
        ({"weight": float("inf")}, 'attribute "weight" must be a finite decimal number'),
        ({"blob": 5}, 'attribute "blob" must be a string (base64 binary), got integer'),
        ({"codes": "a"}, 'attribute "codes" must be an array (multi-valued), got string'),
        ({"codes": ["a", 2]}, 'attribute "codes" must be a string, got integer'),
        ({"ports": [{"number": "22"}]}, 'attribute "ports.number" must be an integer, got string'),
    ],
)
def test_wrong_type_for_numeric_binary_and_multivalued_simple(
    device: ResourceType, attrs: dict[str, Any], detail: str
) -> None:
    err = _raises(InvalidValue, device, _device(**attrs))
    assert err.scim_type == "invalidValue"
    assert err.detail == detail


def test_values_of_every_type_are_kept(device: ResourceType) -> None:
    attrs = {
        "count": 3,
        "weight": 2.5,
        "blob": "AAEC",
        "seenAt": "2026-01-02T03:04:05.123+02:00",
        "owner": {"id": "o1", "note": "n"},
        "ports": [{"number": 22, "label": "ssh"}],
        "codes": ["a", "b"],
    }
    doc = parse_resource(device, _device(**attrs))
    assert {key: doc[key] for key in attrs} == attrs


def test_integer_is_a_valid_decimal(device: ResourceType) -> None:
    assert parse_resource(device, _device(weight=2))["weight"] == 2


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05.5Z",
        "2026-01-02T03:04:05.123456789Z",
        "2026-01-02T03:04:05+05:30",
        "2026-01-02T03:04:05-08:00",
    ],
)
def test_datetime_accepts_xsd_datetime_with_time_zone(user: ResourceType, value: str) -> None:
    doc = parse_resource(user, {"userName": "a", ACCESS_USER: {"accessExpiresAt": value}})
    assert doc[ACCESS_USER] == {"accessExpiresAt": value}
    assert doc["schemas"] == [CORE_USER, ACCESS_USER]


@pytest.mark.parametrize(
    "value",
    [
        "tomorrow",
        "2026-01-02",
        "2026-01-02T03:04:05",
        "2026-01-02 03:04:05Z",
        "2026-01-02T03:04Z",
        "2026-02-30T03:04:05Z",
        "2026-01-02T25:00:00Z",
        "2026-01-02t03:04:05z",
        "2026-01-02T03:04:05+0200",
        "",
    ],
)
def test_datetime_refuses_other_strings(user: ResourceType, value: str) -> None:
    err = _raises(InvalidValue, user, {"userName": "a", ACCESS_USER: {"accessExpiresAt": value}})
    assert err.scim_type == "invalidValue"
    assert err.detail.startswith(
        f'attribute "{ACCESS_USER}:accessExpiresAt" must be an xsd:dateTime with time zone'
    )


def test_parse_datetime_returns_aware_instant() -> None:
    assert parse_datetime("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    parsed = parse_datetime("2026-01-02T05:04:05+02:00")
    assert parsed.utcoffset() == timedelta(hours=2)
    assert parsed == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="xsd:dateTime"):
        parse_datetime("2026-01-02")


# --- string length -------------------------------------------------------------------------------


def test_string_at_the_limit_is_accepted(user: ResourceType) -> None:
    value = "x" * MAX_STRING_LENGTH
    assert parse_resource(user, {"userName": "a", "title": value})["title"] == value


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"title": "x" * (MAX_STRING_LENGTH + 1)}, "title"),
        ({"name": {"formatted": "x" * (MAX_STRING_LENGTH + 1)}}, "name.formatted"),
        ({"emails": [{"value": "x" * (MAX_STRING_LENGTH + 1)}]}, "emails.value"),
        ({"externalId": "x" * (MAX_STRING_LENGTH + 1)}, "externalId"),
        ({"profileUrl": "x" * (MAX_STRING_LENGTH + 1)}, "profileUrl"),
    ],
)
def test_string_over_the_limit_is_refused(
    user: ResourceType, body: dict[str, Any], path: str
) -> None:
    err = _raises(InvalidValue, user, {"userName": "a", **body})
    assert err.scim_type == "invalidValue"
    assert err.detail == (
        f'attribute "{path}" is {MAX_STRING_LENGTH + 1} characters long; '
        f"at most {MAX_STRING_LENGTH} allowed"
    )


def test_binary_has_its_own_larger_limit(user: ResourceType) -> None:
    cert = "A" * (MAX_STRING_LENGTH * 2)
    doc = parse_resource(user, {"userName": "a", "x509Certificates": [{"value": cert}]})
    assert doc["x509Certificates"] == [{"value": cert}]
    err = _raises(
        InvalidValue,
        user,
        {"userName": "a", "x509Certificates": [{"value": "A" * (MAX_BINARY_LENGTH + 1)}]},
    )
    assert "x509Certificates.value" in err.detail


# --- binary: base64 (RFC 7643 §2.3.6, RFC 4648 §4) ----------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "QUJD", "QUI=", "QQ==", "QUJD\nQUI=", " QU JD\r\n\tQQ==\v\f", "+/+/", "AAEC" * 1000],
)
def test_base64_is_the_standard_alphabet_padded_with_whitespace_ignored(text: str) -> None:
    assert base64_problem(text) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not base64!!", "character 11 is not in the base64 alphabet"),
        ("QUJD\u00e9", "character 5 is not in the base64 alphabet"),
        ("PDw_Pz8-", "- and _ are base64url"),
        ("QUJD\u00a0", "character 5"),  # a no-break space is not ASCII whitespace
        ("QUJ", "its 3 base64 characters are not a multiple of 4"),
        ("QUJDRA", "its 6 base64 characters are not a multiple of 4"),
        ("QUJDR=", "its 6 base64 characters"),
        ("QU=D", '"=" padding may only end it'),
        ("QQ==QQ==", '"=" padding may only end it'),
        ("QUJD====", '"=" padding may only end it'),
        ("Q===", '"=" padding may only end it'),
        ("====", '"=" padding may only end it'),
        (
            "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n",
            "send only the base64 between its -----BEGIN and -----END lines",
        ),
    ],
)
def test_what_is_not_base64_is_said(text: str, problem: str) -> None:
    found = base64_problem(text)
    assert found is not None
    assert problem in found, found


@pytest.mark.parametrize(
    ("attrs", "path"),
    [
        ({"blob": "not base64"}, "blob"),  # single-valued, in the core schema
        ({OPS: {"level": "high", "key": "QUJ"}}, f"{OPS}:key"),  # in an extension
        ({OPS: {"level": "high", "keys": ["QUJD", "QU=D"]}}, f"{OPS}:keys"),  # multi-valued
    ],
)
def test_every_binary_attribute_of_the_schemas_must_be_base64(
    device: ResourceType, attrs: dict[str, Any], path: str
) -> None:
    err = _raises(InvalidValue, device, _device(**attrs))
    assert err.detail.startswith(f'attribute "{path}" must be base64 (RFC 7643 §2.3.6')


def test_a_binary_value_is_kept_as_sent(device: ResourceType) -> None:
    pem = "QUJD\nQUI=\n"
    doc = parse_resource(device, _device(blob=pem, **{OPS: {"level": "h", "keys": [pem]}}))
    assert (doc["blob"], doc[OPS]["keys"]) == (pem, [pem])


def test_a_binary_value_already_stored_is_not_checked_again(device: ResourceType) -> None:
    stored = {"schemas": [DEVICE, OPS], "serial": "S1", "blob": "legacy!", OPS: {"level": "h"}}
    assert parse_resource(device, _device(blob="legacy!"), existing=stored)["blob"] == "legacy!"
    err = _raises(InvalidValue, device, _device(blob="other!"), existing=stored)
    assert err.detail.startswith('attribute "blob" must be base64')
    # the same text at another attribute is new there
    keyed = _device(**{OPS: {"level": "h", "key": "legacy!"}})
    assert _raises(InvalidValue, device, keyed, existing=stored).detail.startswith(
        f'attribute "{OPS}:key" must be base64'
    )


# --- unassigned ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"displayName": None},
        {"emails": []},
        {"emails": None},
        {"emails": [None]},
        {"emails": [{}]},
        {"emails": [{"value": None, "primary": None}]},
        {"name": {}},
        {"name": {"givenName": None}},
        {ENTERPRISE_USER: {"department": None, "manager": {"value": None}}},
        {ENTERPRISE_USER: {"manager": {"displayName": "Boss"}}},
        {ACCESS_USER: {"role": "Administrator"}},
        {"roles": []},
    ],
)
def test_null_and_empty_are_unassigned(user: ResourceType, body: dict[str, Any]) -> None:
    assert parse_resource(user, {"userName": "a", **body}) == {
        "schemas": [CORE_USER],
        "userName": "a",
    }


def test_empty_elements_are_dropped_from_a_list(user: ResourceType) -> None:
    body = {"userName": "a", "emails": [None, {"value": "a@x"}, {"type": None}, {}]}
    assert parse_resource(user, body)["emails"] == [{"value": "a@x"}]


# --- primary -------------------------------------------------------------------------------------


def test_two_primary_values_are_refused(user: ResourceType) -> None:
    emails = [{"value": "a@x", "primary": True}, {"value": "b@x", "primary": True}]
    err = _raises(InvalidValue, user, {"userName": "a", "emails": emails})
    assert err.scim_type == "invalidValue"
    assert err.detail.startswith('attribute "emails" has 2 values with primary true')


@pytest.mark.parametrize(
    "flags",
    [(True, False), (False, False), (True, None), (None, None)],
)
def test_at_most_one_primary_is_accepted(
    user: ResourceType, flags: tuple[bool | None, ...]
) -> None:
    numbers = [{"value": f"+1{i}", "primary": flag} for i, flag in enumerate(flags)]
    doc = parse_resource(user, {"userName": "a", "phoneNumbers": numbers})
    assert [n.get("primary") for n in doc["phoneNumbers"]] == list(flags)


# --- required ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   ", "MISSING"])
def test_user_name_is_required(user: ResourceType, value: str | None) -> None:
    body: dict[str, Any] = {"schemas": [CORE_USER], "displayName": "Ada"}
    if value != "MISSING":
        body["userName"] = value
    err = _raises(InvalidValue, user, body)
    assert err.status == 400
    assert err.scim_type == "invalidValue"
    assert err.detail == 'attribute "userName" is required'


def test_group_display_name_is_required(group: ResourceType) -> None:
    err = _raises(InvalidValue, group, {"schemas": [CORE_GROUP], "members": []})
    assert err.detail == 'attribute "displayName" is required'


def test_required_sub_attribute_inside_present_value(group: ResourceType) -> None:
    err = _raises(InvalidValue, group, {"displayName": "g", "members": [{"type": "User"}]})
    assert err.scim_type == "invalidValue"
    assert err.detail == 'attribute "members.value" is required'


def test_member_with_only_read_only_display_is_dropped(group: ResourceType) -> None:
    doc = parse_resource(group, {"displayName": "g", "members": [{"display": "Ada"}]})
    assert doc == {"schemas": [CORE_GROUP], "displayName": "g"}


def test_required_extension_must_be_present(device: ResourceType) -> None:
    body = _device()
    del body[OPS]
    err = _raises(InvalidValue, device, body)
    assert err.detail == f"extension {OPS} is required for resource type Device"


def test_required_extension_attribute(device: ResourceType) -> None:
    err = _raises(InvalidValue, device, _device(**{OPS: {"zone": "eu"}}))
    assert err.detail == f'attribute "{OPS}:level" is required'


# --- readOnly and password -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"id": "client-chosen"},
        {"meta": {"resourceType": "User", "created": "garbage"}},
        {"groups": [{"value": "g1", "display": "Admins"}]},
        {"groups": "not even an array"},
        {ACCESS_USER: {"role": "Administrator"}},
        {ACCESS_USER: {"status": "active", "lastSignInAt": "2026-01-01T00:00:00Z"}},
        {ACCESS_USER: {"accessGroups": [{"value": "ag1"}], "lastActivityAt": 3}},
    ],
)
def test_read_only_attributes_are_ignored_not_refused(
    user: ResourceType, body: dict[str, Any]
) -> None:
    assert parse_resource(user, {"userName": "a", **body}) == {
        "schemas": [CORE_USER],
        "userName": "a",
    }


def test_read_only_sub_attributes_are_dropped(user: ResourceType, group: ResourceType) -> None:
    doc = parse_resource(
        user, {"userName": "a", ENTERPRISE_USER: {"manager": {"value": "m1", "displayName": "B"}}}
    )
    assert doc[ENTERPRISE_USER] == {"manager": {"value": "m1"}}
    doc = parse_resource(group, {"displayName": "g", "members": [{"value": "u1", "display": "A"}]})
    assert doc["members"] == [{"value": "u1"}]


def test_read_write_extension_attribute_beside_read_only_ones(user: ResourceType) -> None:
    body = {
        "userName": "a",
        ACCESS_USER: {"role": "Viewer", "accessExpiresAt": "2026-01-02T00:00:00Z"},
    }
    assert parse_resource(user, body)[ACCESS_USER] == {"accessExpiresAt": "2026-01-02T00:00:00Z"}


@pytest.mark.parametrize("password", ["1mz050nq", "", 12345, None, {"x": 1}])
def test_password_is_accepted_and_discarded(user: ResourceType, password: object) -> None:
    doc = parse_resource(user, {"userName": "a", "PassWord": password})
    assert doc == {"schemas": [CORE_USER], "userName": "a"}
    assert "1mz050nq" not in json.dumps(doc)


# --- immutable -----------------------------------------------------------------------------------


def _stored(device: ResourceType, **attrs: Any) -> dict[str, Any]:
    return parse_resource(device, _device(**attrs))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"serial": "S1"}, {"serial": "s1"}),  # caseExact false
        ({"tag": "T"}, {"tag": "T"}),
        ({"installedAt": "2026-01-02T03:04:05Z"}, {"installedAt": "2026-01-02T05:04:05+02:00"}),
        ({"codes": ["a", "b"]}, {"codes": ["B", "a"]}),  # a multiset, caseExact false
        ({"owner": {"id": "o1"}}, {"owner": {"id": "o1", "note": "new"}}),
    ],
)
def test_immutable_unchanged_value_is_accepted(
    device: ResourceType, old: dict[str, Any], new: dict[str, Any]
) -> None:
    existing = _stored(device, **old)
    doc = parse_resource(device, _device(**new), existing=existing)
    for key, value in new.items():
        assert doc[key] == value


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ({"serial": "S1"}, {"serial": "S2"}, "serial"),
        ({"tag": "T"}, {"tag": "t"}, "tag"),  # caseExact true
        (
            {"installedAt": "2026-01-02T03:04:05Z"},
            {"installedAt": "2026-01-02T03:04:06Z"},
            "installedAt",
        ),
        ({"codes": ["a", "b"]}, {"codes": ["a"]}, "codes"),
        ({"owner": {"id": "o1"}}, {"owner": {"id": "o2"}}, "owner.id"),
    ],
)
def test_immutable_changed_value_is_refused(
    device: ResourceType, old: dict[str, Any], new: dict[str, Any], path: str
) -> None:
    existing = _stored(device, **old)
    err = _raises(Mutability, device, _device(**new), existing=existing)
    assert err.status == 400
    assert err.scim_type == "mutability"
    assert err.detail == f'attribute "{path}" is immutable and cannot be changed once set'


def test_immutable_value_omitted_is_carried_over(device: ResourceType) -> None:
    existing = _stored(device, tag="T", owner={"id": "o1", "note": "n"})
    body = _device()
    doc = parse_resource(device, body, existing=existing)
    assert doc["tag"] == "T"
    assert doc["owner"] == {"id": "o1"}  # the readWrite note is not asserted by the client


def test_carried_over_value_is_a_copy(device: ResourceType) -> None:
    existing = _stored(device, codes=["a"])
    doc = parse_resource(device, _device(), existing=existing)
    doc["codes"].append("b")
    assert existing["codes"] == ["a"]


def test_immutable_may_be_set_when_it_had_no_value(device: ResourceType) -> None:
    existing = _stored(device)
    doc = parse_resource(device, _device(tag="T", owner={"id": "o1"}), existing=existing)
    assert doc["tag"] == "T"
    assert doc["owner"] == {"id": "o1"}


def test_immutable_is_not_checked_without_existing(device: ResourceType) -> None:
    assert parse_resource(device, _device(serial="anything"))["serial"] == "anything"


def test_replacing_group_members_is_not_an_immutable_change(group: ResourceType) -> None:
    existing = parse_resource(group, {"displayName": "g", "members": [{"value": "u1"}]})
    doc = parse_resource(
        group, {"displayName": "g", "members": [{"value": "u2", "type": "User"}]}, existing=existing
    )
    assert doc["members"] == [{"value": "u2", "type": "User"}]


def test_immutable_sub_attributes_of_multi_valued_elements_are_not_compared(
    device: ResourceType,
) -> None:
    existing = _stored(device, ports=[{"number": 22}])
    assert parse_resource(device, _device(ports=[{"number": 443}]), existing=existing)["ports"] == [
        {"number": 443}
    ]


# --- properties ----------------------------------------------------------------------------------


def _recase(text: str, flips: list[bool]) -> str:
    return "".join(c.swapcase() if flips[i % len(flips)] else c for i, c in enumerate(text))


@given(flips=st.lists(st.booleans(), min_size=1, max_size=12))
def test_any_casing_of_names_gives_the_same_document(flips: list[bool]) -> None:
    user = product_registry().resource_type("User")
    canonical = {
        "userName": "a@acme.com",
        "displayName": "Ada",
        "title": "Eng",
        "locale": "en-GB",
        "active": True,
        "name": {"givenName": "Ada"},
        "emails": [{"value": "a@acme.com", "primary": True}],
        ENTERPRISE_USER: {"department": "R&D"},
    }

    def recased(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {_recase(k, flips): recased(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [recased(v) for v in obj]
        return obj

    expected = parse_resource(user, canonical)
    assert parse_resource(user, recased(canonical)) == expected
    assert list(expected) == [
        "schemas",
        "userName",
        "name",
        "displayName",
        "title",
        "locale",
        "active",
        "emails",
        ENTERPRISE_USER,
    ]
