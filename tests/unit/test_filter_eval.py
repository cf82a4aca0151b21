"""scim.filter_eval: what a filter means on one canonical document (RFC 7644 §3.4.2.2).

This is the oracle the SQL compiler is tested against, so every rule is pinned here.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scim_server.scim.errors import InvalidFilter
from scim_server.scim.filter import parse_filter
from scim_server.scim.filter_ast import AttrPath, Compare, Not, ValuePath
from scim_server.scim.filter_eval import (
    compile_filter,
    element_matches,
    is_present,
    matches,
    resolve_attr_path,
)
from scim_server.scim.schema import Registry, ResourceType
from tests.unit.registries import product_registry

# --- a self-contained registry (RFC 7643 §4, §8.7): the shipped schemas/ evolve on their own ---

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"


REGISTRY = product_registry()
USER = REGISTRY.resource_type("User")
GROUP = REGISTRY.resource_type("Group")


BJENSEN: dict[str, Any] = {
    "schemas": [CORE, ENTERPRISE],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "externalId": "bjensen-ext",
    "meta": {
        "resourceType": "User",
        "created": "2010-01-23T04:56:22Z",
        "lastModified": "2011-05-13T04:42:34Z",
        "version": 'W/"3694e05e9dff591"',
    },
    "userName": "bjensen@example.com",
    "name": {"familyName": "O'Malley", "givenName": "Barbara"},
    "displayName": "Babs Jensen",
    "title": "Tour Guide",
    "userType": "Employee",
    "active": True,
    "emails": [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ],
    "ims": [{"value": "someaimhandle", "type": "aim"}],
    "addresses": [{"type": "work", "locality": "Hollywood", "region": "CA"}],
    "x509Certificates": [{"value": "TUlJRGJEQ0NBdFdnQXdJQkFnSUJBREFO"}],
    ENTERPRISE: {
        "employeeNumber": "701984",
        "department": "Tour Operations",
        "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"},
    },
}


def check(text: str, doc: dict[str, Any] = BJENSEN, rt: ResourceType = USER) -> bool:
    return matches(rt, parse_filter(text), doc)


# --- RFC 7644 §3.4.2.2 Figure 2 on a known document ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "bjensen@example.com"', True),
        ('name.familyName co "O\'Malley"', True),
        ('userName sw "J"', False),
        ('userName sw "B"', True),
        (f'{CORE}:userName sw "b"', True),
        ("title pr", True),
        ("nickName pr", False),
        ('meta.lastModified gt "2011-05-13T04:42:34Z"', False),
        ('meta.lastModified ge "2011-05-13T04:42:34Z"', True),
        ('meta.lastModified lt "2011-05-13T04:42:34Z"', False),
        ('meta.lastModified le "2011-05-13T04:42:34Z"', True),
        ('title pr and userType eq "Employee"', True),
        ('title pr or userType eq "Intern"', True),
        ('nickName pr or userType eq "Intern"', False),
        (f'schemas eq "{ENTERPRISE}"', True),
        (f'schemas eq "{ACCESS}"', False),
        (
            'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
            True,
        ),
        (
            'userType ne "Employee" and not (emails co "example.com" or '
            'emails.value co "example.org")',
            False,
        ),
        ('userType eq "Employee" and (emails.type eq "work")', True),
        ('userType eq "Employee" and emails[type eq "work" and value co "@example.com"]', True),
        (
            'emails[type eq "work" and value co "@example.com"] or '
            'ims[type eq "xmpp" and value co "@foo.com"]',
            True,
        ),
    ],
)
def test_rfc_examples(text: str, expected: bool) -> None:
    assert check(text) is expected


# --- case sensitivity (RFC 7643 §2.2 caseExact) ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "BJENSEN@EXAMPLE.COM"', True),  # caseExact false
        ('displayName eq "babs jensen"', True),
        ('name.givenName sw "bar"', True),
        ('emails.value ew "EXAMPLE.COM"', True),
        ('emails[type eq "WORK"]', True),
        ('id eq "2819C223-7F76-453A-919D-413861904646"', False),  # id is caseExact
        ('id eq "2819c223-7f76-453a-919d-413861904646"', True),
        ('externalId eq "BJENSEN-EXT"', False),  # externalId is caseExact
        ('externalId eq "bjensen-ext"', True),
        ('meta.resourceType eq "user"', False),  # caseExact
        ('meta.version eq "W/\\"3694e05e9dff591\\""', True),
        (f'{ENTERPRISE}:manager.value eq "26118915-6090-4610-87E4-49D8CA9F808D"', False),
        (f'{ENTERPRISE}:department eq "tour operations"', True),
        (f'schemas eq "{ENTERPRISE.upper()}"', True),  # schema URIs are case-insensitive
        ('USERNAME eq "bjensen@example.com"', True),  # attribute names too
        ('Name.FamilyName eq "o\'malley"', True),
        (f'{ENTERPRISE.upper()}:DEPARTMENT eq "Tour Operations"', True),
        ('EMAILS[TYPE eq "work"]', True),
    ],
)
def test_case_rules(text: str, expected: bool) -> None:
    assert check(text) is expected


# --- operators on strings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('title eq "Tour Guide"', True),
        ('title ne "Tour Guide"', False),
        ('title ne "Other"', True),
        ('title co "our G"', True),
        ('title co ""', True),
        ('title co "guides"', False),
        ('title sw "tour"', True),
        ('title sw "Tour Guide"', True),  # "satisfied if the two strings are identical"
        ('title ew "guide"', True),
        ('title ew "Tour Guide"', True),
        ('title ew "Tour"', False),
        ('title gt "Tour"', True),
        ('title gt "tour guide"', False),  # equal after case folding
        ('title ge "tour guide"', True),
        ('title lt "U"', True),
        ('title lt "a"', False),  # "tour guide" > "a"
        ('title le "TOUR GUIDE"', True),
        ('externalId gt "bjensen"', True),
        ('externalId lt "Z"', False),  # caseExact: "b" (0x62) > "Z" (0x5a)
    ],
)
def test_string_operators(text: str, expected: bool) -> None:
    assert check(text) is expected


# --- numbers, booleans, dateTimes, binary --------------------------------------------------------

TYPES_SCHEMA = {
    "id": "urn:example:Thing",
    "name": "Thing",
    "attributes": [
        {"name": "count", "type": "integer"},
        {"name": "ratio", "type": "decimal"},
        {"name": "flag", "type": "boolean"},
        {"name": "when", "type": "dateTime"},
        {"name": "blob", "type": "binary", "caseExact": True},
        {"name": "code", "type": "string", "caseExact": True},
        {"name": "tags", "type": "string", "multiValued": True},
        {"name": "scores", "type": "integer", "multiValued": True},
        {"name": "secret", "type": "string", "returned": "never"},
        {
            "name": "parts",
            "type": "complex",
            "multiValued": True,
            "subAttributes": [
                {"name": "label", "type": "string"},
                {"name": "size", "type": "integer"},
            ],
        },
        {  # a primary the core schemas do not name: the schema, not a list of names, decides
            "name": "badges",
            "type": "complex",
            "multiValued": True,
            "subAttributes": [
                {"name": "value", "type": "string"},
                {"name": "primary", "type": "boolean"},
            ],
        },
        {  # single-valued: no element among others, so no primary to assume
            "name": "main",
            "type": "complex",
            "subAttributes": [
                {"name": "value", "type": "string"},
                {"name": "primary", "type": "boolean"},
            ],
        },
    ],
}
THINGS = Registry(
    schemas=[TYPES_SCHEMA],
    resource_types=[
        {"id": "Thing", "name": "Thing", "endpoint": "/Things", "schema": "urn:example:Thing"}
    ],
).resource_type("Thing")

THING: dict[str, Any] = {
    "count": 42,
    "ratio": 0.5,
    "flag": False,
    "when": "2026-01-02T03:04:05+02:00",
    "blob": "QUJD",
    "code": "AbC",
    "tags": ["red", "Green"],
    "scores": [1, 10, 100],
    "parts": [{"label": "a", "size": 3}, {"label": "b"}],
    "badges": [{"value": "gold"}, {"value": "silver", "primary": True}],
    "main": {"value": "x"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("count eq 42", True),
        ("count eq 42.0", True),
        ("count ne 42", False),
        ("count gt 41", True),
        ("count gt 42", False),
        ("count ge 42", True),
        ("count lt 100", True),  # numeric, not lexicographic ("42" > "100")
        ("count le 41.5", False),
        ("count gt -1", True),
        ("count lt 12345678901234567890", True),
        ("ratio eq 0.5", True),
        ("ratio gt 0.25", True),
        ("ratio lt 1", True),
        ("ratio eq 5e-1", True),
        ("flag eq false", True),
        ("flag eq true", False),
        ("flag ne true", True),
        ("flag pr", True),  # false is a value
        ('when eq "2026-01-02T01:04:05Z"', True),  # same instant, other offset
        ('when gt "2026-01-02T01:04:04Z"', True),
        ('when lt "2026-01-02T01:04:04Z"', False),
        ('when ge "2026-01-02T03:04:05+02:00"', True),
        ('when le "2026-01-02T01:04:05.000Z"', True),
        ('blob eq "QUJD"', True),
        ('blob eq "qujd"', False),
        ('code eq "abc"', False),
        ('code eq "AbC"', True),
        ('code co "B"', False),
        ('code co "bC"', True),
        ('tags eq "green"', True),  # any value matches
        ('tags eq "blue"', False),
        ('tags ne "red"', True),  # some value differs
        ("tags pr", True),
        ("scores gt 50", True),
        ("scores lt 1", False),
        ("scores eq 10", True),
        ("parts.size gt 2", True),
        ("parts.size pr", True),
        ('parts[label eq "b" and size pr]', False),  # the same element must satisfy both
        ('parts[label eq "a" and size pr]', True),
        ('parts.label eq "b" and parts.size pr', True),  # ... unlike two separate clauses
        ('badges[value eq "gold" and primary eq false]', True),  # RFC 7643 §2.4
        ('badges[value eq "gold" and primary pr]', True),
        ('badges[value eq "gold" and primary eq null]', False),
        ("badges.primary eq false", True),
        ("main.primary eq false", False),  # absent stays absent outside a multi-valued one
        ("main.primary eq null", True),
    ],
)
def test_typed_comparisons(text: str, expected: bool) -> None:
    assert check(text, THING, THINGS) is expected


@pytest.mark.parametrize(
    ("text", "in_detail"),
    [
        ('count eq "42"', "number"),
        ("count eq true", "number"),
        ("count co 4", "co applies to string attributes only"),
        ("count sw 4", "string attributes only"),
        ("ratio ew 5", "string attributes only"),
        ("flag gt false", "cannot be ordered"),
        ("flag le true", "cannot be ordered"),
        ('flag eq "false"', "true or false"),
        ("flag eq 0", "true or false"),
        ('flag co "t"', "string attributes only"),
        ('blob gt "A"', "binary attributes cannot be ordered"),
        ('blob lt "A"', "cannot be ordered"),
        ('when gt "2026-01-02"', "not a dateTime"),
        ('when gt "yesterday"', "not a dateTime"),
        ("when gt 5", "dateTime string"),
        ('when co "2026"', "string attributes only"),
        ("code eq 1", "string in double quotes"),
        ("code eq false", "string in double quotes"),
        ("code gt null", "only eq and ne compare with null"),
        ('secret eq "x"', "never returned"),
        ("secret pr", "never returned"),
        ('parts eq "a"', "complex attribute"),  # no "value" sub-attribute to compare
        ('parts[nope eq "a"]', "unknown attribute"),
        ('count[x eq "a"]', "needs a complex attribute"),
        ('count.x eq "a"', "no sub-attributes"),
        ('nope eq "a"', 'unknown attribute "nope"'),
    ],
)
def test_type_errors(text: str, in_detail: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        check(text, THING, THINGS)
    assert in_detail in caught.value.detail


# --- presence, null and absence ------------------------------------------------------------------

SPARSE: dict[str, Any] = {
    "schemas": [CORE],
    "id": "1",
    "userName": "sparse",
    "nickName": "",
    "title": None,
    "emails": [],
    "phoneNumbers": [{"value": "", "type": "work"}],
    "name": {"givenName": None},
    ENTERPRISE: {},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("userName pr", True),
        ("nickName pr", False),  # empty string
        ("title pr", False),  # null
        ("locale pr", False),  # absent
        ("emails pr", False),  # empty list
        ("phoneNumbers pr", True),  # an element with a type
        ("phoneNumbers.value pr", False),  # ... but no value
        ("phoneNumbers.type pr", True),
        ("name pr", False),  # complex without any present sub-attribute
        ("name.givenName pr", False),
        (f"{ENTERPRISE}:department pr", False),
        (f"{ENTERPRISE}:manager.value pr", False),
        ("title eq null", True),
        ("locale eq null", True),
        ("nickName eq null", True),
        ("userName eq null", False),
        ("userName ne null", True),
        ("title ne null", False),
        ("emails eq null", True),
        ("emails.value eq null", True),
        ("name eq null", True),
        ('title eq "x"', False),
        ('title ne "x"', False),  # absent matches neither eq nor ne ...
        ('not (title eq "x")', True),  # ... use not() to include it
        ('emails.value ne "x"', False),
        ('emails[type eq "work"]', False),
        ('not (emails[type eq "work"])', True),
        ('phoneNumbers[type eq "work"]', True),
        ('phoneNumbers[type eq "work" and value pr]', False),
        ('nickName eq ""', True),
        ('nickName co ""', True),
    ],
)
def test_presence_and_null(text: str, expected: bool) -> None:
    assert check(text, SPARSE) is expected


@pytest.mark.parametrize(
    ("value", "present"),
    [
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
        ({"a": None}, False),
        ({"a": ""}, False),
        ([None, ""], False),
        ("x", True),
        (0, True),
        (False, True),
        ({"a": False}, True),
        ([{"a": "x"}], True),
    ],
)
def test_is_present(value: object, present: bool) -> None:
    assert is_present(value) is present


def test_no_extension_object_at_all() -> None:
    doc = {"schemas": [CORE], "id": "1", "userName": "x"}
    assert check(f'{ENTERPRISE}:department eq "x"', doc) is False
    assert check(f"{ENTERPRISE}:department eq null", doc) is True
    assert check(f'{ENTERPRISE}:manager.value eq "m"', doc) is False


# --- multi-valued attributes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('emails co "jensen.org"', True),  # compares each email's value
        ('emails eq "babs@jensen.org"', True),
        ('emails eq "work"', False),  # not the type
        ('emails.value eq "babs@jensen.org"', True),
        ('emails.type eq "home"', True),
        ("emails.primary eq true", True),
        ("emails.primary eq false", True),  # the home email: an absent primary is false
        ("emails.primary ne true", True),
        ('emails[type eq "home" and primary eq false]', True),
        ('emails[type eq "home" and primary eq null]', False),  # RFC 7643 §2.4: false, not null
        ('emails[type eq "home" and primary eq true]', False),
        ('emails[type eq "work" and primary eq true]', True),
        ('emails[type eq "home" or primary eq true]', True),
        ('emails[not (type eq "work")]', True),
        ('emails[type eq "work"].value eq "bjensen@example.com"', True),
        ('emails[type eq "home"].value eq "bjensen@example.com"', False),
        ('emails[type eq "home"].value co "jensen"', True),
        ('emails[type eq "home"].primary pr', True),  # absent, so false: a value
        ('addresses[type eq "work"].locality eq "hollywood"', True),
        ('addresses[type eq "home"].locality eq "hollywood"', False),
        ('ims[type eq "aim"]', True),
        (
            'x509Certificates eq "TUlJRGJEQ0NBdFdnQXdJQkFnSUJBREFO"',
            True,
        ),
        ('emails ne "babs@jensen.org"', True),  # the other email differs
    ],
)
def test_multi_valued(text: str, expected: bool) -> None:
    assert check(text) is expected


def test_group_members() -> None:
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1",
        "displayName": "Tour Guides",
        "members": [
            {"value": "2819c223-7f76-453a-919d-413861904646", "type": "User"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a", "type": "User"},
        ],
    }
    assert check('displayName eq "tour guides"', group, GROUP)
    assert check('members[value eq "902c246b-6245-4190-8e05-00816be7344a"]', group, GROUP)
    assert check('members.value eq "902c246b-6245-4190-8e05-00816be7344a"', group, GROUP)
    assert not check('members[value eq "902C246B-6245-4190-8E05-00816BE7344A"]', group, GROUP)
    assert check('members eq "2819c223-7f76-453a-919d-413861904646"', group, GROUP)
    assert not check('members[value eq "nobody"]', group, GROUP)


# --- the extension -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'{ENTERPRISE}:employeeNumber eq "701984"', True),
        (f'{ENTERPRISE}:department sw "Tour"', True),
        (f'{ENTERPRISE}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"', True),
        (f"{ENTERPRISE}:manager pr", True),
        (f"{ENTERPRISE}:costCenter pr", False),
        (f"{ACCESS}:role pr", False),
    ],
)
def test_extension_attributes(text: str, expected: bool) -> None:
    assert check(text) is expected


# --- unknown attributes and the like -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "in_detail"),
    [
        ('nope eq "x"', '"nope"'),
        ('name.nope eq "x"', '"name.nope"'),
        ('userName.x eq "x"', "no sub-attributes"),
        ('department eq "x"', '"department"'),  # extension attributes need their URN
        ('urn:example:Unknown:1.0:User:x eq "x"', "unknown schema"),
        (f'{ENTERPRISE}:nope eq "x"', "nope"),
        (f"{ENTERPRISE} pr", "schema URN, not an attribute"),
        ('emails[nope eq "x"]', '"emails.nope"'),
        ('emails[type eq "work"].nope eq "x"', '"emails.nope"'),
        ('userName[value eq "x"]', "needs a complex attribute"),
        ('password eq "secret"', "never returned"),
        ('name eq "x"', "complex attribute"),
        (f'{ENTERPRISE}:manager eq "x"', "complex attribute"),
        ('meta eq "x"', "complex attribute"),
        ('meta.nope eq "x"', '"meta.nope"'),
    ],
)
def test_unknown_attributes_are_invalid_filters(text: str, in_detail: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        check(text)
    assert in_detail in caught.value.detail


def test_errors_do_not_depend_on_the_data() -> None:
    """A bad filter fails even where and/or would short-circuit, and on an empty document."""
    for text in [
        'userName eq "nobody" and nope eq "x"',
        'userName pr or nope eq "x"',
        'emails[nope eq "x"]',
        "active gt true",
    ]:
        expr = parse_filter(text)
        with pytest.raises(InvalidFilter):
            compile_filter(USER, expr)
        with pytest.raises(InvalidFilter):
            matches(USER, expr, {})


def test_a_compiled_filter_can_be_reused() -> None:
    predicate = compile_filter(USER, parse_filter('userName sw "b"'))
    assert predicate(BJENSEN)
    assert not predicate(SPARSE)


def test_documents_with_unexpected_shapes_do_not_match() -> None:
    odd: dict[str, Any] = {
        "userName": 5,
        "emails": "not-a-list",
        "name": "not-an-object",
        "active": "true",
        "meta": {"lastModified": "garbage"},
        ENTERPRISE: "not-an-object",
    }
    assert not check('userName eq "5"', odd)
    assert check('emails eq "x"', odd) is False
    assert check('name.givenName eq "x"', odd) is False
    assert check("active eq true", odd) is False
    assert check('meta.lastModified gt "2000-01-01T00:00:00Z"', odd) is False
    assert check(f'{ENTERPRISE}:department eq "x"', odd) is False


def test_keys_in_another_case_are_still_found() -> None:
    doc = {"USERNAME": "x", "Emails": [{"VALUE": "a@b.c"}]}
    assert check('userName eq "x"', doc)
    assert check('emails.value eq "a@b.c"', doc)


# --- resolve_attr_path ---------------------------------------------------------------------------


def test_resolve_core_common_and_extension() -> None:
    core = resolve_attr_path(USER, AttrPath("NAME", "GIVENNAME"))
    assert core.attribute is not None
    assert core.attribute.name == "name"
    assert core.sub is not None
    assert core.sub.name == "givenName"
    assert not core.is_extension

    common = resolve_attr_path(USER, AttrPath("externalid"))
    assert common.attribute is not None
    assert common.attribute.name == "externalId"
    assert common.attribute.case_exact

    ext = resolve_attr_path(USER, AttrPath("manager", "value", ENTERPRISE.lower()))
    assert ext.is_extension
    assert ext.schema.id == ENTERPRISE
    assert ext.leaf is not None
    assert ext.leaf.name == "value"


def test_resolve_whole_extension_only_when_allowed() -> None:
    path = AttrPath("User", None, "urn:ietf:params:scim:schemas:extension:enterprise:2.0")
    resolved = resolve_attr_path(USER, path, allow_schema=True)
    assert resolved.attribute is None
    assert resolved.schema.id == ENTERPRISE
    with pytest.raises(InvalidFilter):
        resolve_attr_path(USER, path)


# --- element_matches (PATCH value filters) -------------------------------------------------------

EMAILS = USER.schema.attribute("emails")


@pytest.mark.parametrize(
    ("text", "element", "expected"),
    [
        ('type eq "work"', {"type": "work", "value": "a@x"}, True),
        ('type eq "WORK"', {"type": "work", "value": "a@x"}, True),
        ('type eq "work" and value ew "@x"', {"type": "work", "value": "a@x"}, True),
        ('type eq "work" and value ew "@y"', {"type": "work", "value": "a@x"}, False),
        ("primary eq true", {"value": "a@x", "primary": True}, True),
        ("primary pr", {"value": "a@x"}, True),  # RFC 7643 §2.4: absent is false
        ("primary eq false", {"value": "a@x"}, True),
        ("primary ne true", {"value": "a@x"}, True),
        ("primary eq null", {"value": "a@x"}, False),
        ("primary eq false", {"value": "a@x", "primary": None}, True),  # null is unassigned
        ("primary eq false", "not-an-element", False),
        ('not (type eq "home")', {"type": "work"}, True),
        ('type eq "work"', "not-an-element", False),
    ],
)
def test_element_matches(text: str, element: object, expected: bool) -> None:
    assert EMAILS is not None
    expr = parse_filter(f"emails[{text}]")
    assert isinstance(expr, ValuePath)
    assert element_matches(EMAILS, expr.filter, element) is expected


def _with_primary(rt: ResourceType) -> list[Any]:
    schemas = [rt.schema, *(extension.schema for extension in rt.extensions)]
    return [
        attribute
        for schema in schemas
        for attribute in schema.attributes
        if attribute.multi_valued and attribute.sub("primary") is not None
    ]


@pytest.mark.parametrize(
    "attribute", _with_primary(USER), ids=[a.name for a in _with_primary(USER)]
)
def test_an_absent_primary_is_false_in_every_attribute_that_has_one(attribute: Any) -> None:
    """RFC 7643 §2.4, for each multi-valued attribute of the shipped schemas with a primary."""
    element = {"value": "v"}
    for text, expected in (
        ("primary eq false", True),
        ("primary ne true", True),
        ("primary pr", True),
        ("primary eq null", False),
        ("not (primary eq true)", True),
    ):
        expr = parse_filter(f"{attribute.name}[{text}]")
        assert isinstance(expr, ValuePath)
        assert element_matches(attribute, expr.filter, element) is expected, text
    assert element == {"value": "v"}  # read as false, never written


def test_the_shipped_schemas_give_primary_to_the_rfc_attributes() -> None:
    names = {a.name for a in _with_primary(USER)}
    assert {"emails", "phoneNumbers", "addresses", "roles", "x509Certificates"} <= names
    assert _with_primary(GROUP) == []  # members have none: a filter on it is refused
    with pytest.raises(InvalidFilter):
        matches(GROUP, parse_filter("members[primary eq false]"), {})


@pytest.mark.parametrize(
    "expr",
    [
        Compare(AttrPath("nope"), "eq", "x"),
        Compare(AttrPath("type", "x"), "eq", "x"),
        Compare(AttrPath("type", None, CORE), "eq", "x"),
        ValuePath(AttrPath("type"), Compare(AttrPath("x"), "eq", 1)),
        Compare(AttrPath("primary"), "gt", True),
    ],
)
def test_element_filter_errors(expr: Any) -> None:
    assert EMAILS is not None
    with pytest.raises(InvalidFilter):
        element_matches(EMAILS, expr, {"type": "work"})


def test_element_filter_needs_a_complex_attribute() -> None:
    user_name = USER.schema.attribute("userName")
    assert user_name is not None
    with pytest.raises(InvalidFilter):
        element_matches(user_name, Compare(AttrPath("x"), "eq", 1), {})


# --- properties ----------------------------------------------------------------------------------

# NUL and lone surrogates are refused in a filter literal (no database stores them)
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)


@given(TEXT, TEXT)
def test_case_insensitive_string_semantics(stored: str, wanted: str) -> None:
    import json

    doc = {"userName": stored, "externalId": stored}
    literal = json.dumps(wanted)
    assert check(f"userName eq {literal}", doc) == (stored.lower() == wanted.lower())
    assert check(f"userName co {literal}", doc) == (wanted.lower() in stored.lower())
    assert check(f"userName sw {literal}", doc) == stored.lower().startswith(wanted.lower())
    assert check(f"userName gt {literal}", doc) == (stored.lower() > wanted.lower())
    assert check(f"externalId eq {literal}", doc) == (stored == wanted)
    assert check(f"externalId ew {literal}", doc) == stored.endswith(wanted)
    assert check(f"externalId le {literal}", doc) == (stored <= wanted)


FILTERS = st.sampled_from(
    [
        'userName sw "b"',
        "title pr",
        'emails[type eq "work"]',
        'emails.value co "jensen"',
        f'{ENTERPRISE}:department eq "Tour Operations"',
        'meta.lastModified gt "2011-01-01T00:00:00Z"',
        "active eq false",
        'nickName eq "x"',
        "locale eq null",
    ]
)


@given(FILTERS, FILTERS, st.sampled_from([BJENSEN, SPARSE, {}]))
def test_boolean_algebra(left: str, right: str, doc: dict[str, Any]) -> None:
    a, b = check(left, doc), check(right, doc)
    assert check(f"({left}) and ({right})", doc) == (a and b)
    assert check(f"({left}) or ({right})", doc) == (a or b)
    assert check(f"not ({left})", doc) == (not a)
    assert matches(USER, Not(parse_filter(left)), doc) == (not a)
    # De Morgan
    assert check(f"not (({left}) and ({right}))", doc) == check(
        f"not ({left}) or not ({right})", doc
    )


@given(st.integers(), st.integers())
def test_integer_ordering(stored: int, wanted: int) -> None:
    doc = {"count": stored}
    assert check(f"count gt {wanted}", doc, THINGS) == (stored > wanted)
    assert check(f"count le {wanted}", doc, THINGS) == (stored <= wanted)
    assert check(f"count eq {wanted}", doc, THINGS) == (stored == wanted)
