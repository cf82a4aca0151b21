"""Evaluate a filter (RFC 7644 §3.4.2.2) against one in-memory canonical resource document.

Used by the PATCH engine for value filters (``members[value eq "..."]``) and as the oracle the
SQL compiler (``store``) is differentially tested against, so the semantics here are the
project's definition of what a filter means:

- Attribute names resolve case-insensitively against the resource type's schemas; the common
  attributes ``id``, ``externalId``, ``meta`` and ``schemas`` (RFC 7643 §3.1) resolve too.
  Unqualified names are core-schema names; extension attributes need their schema URN
  (``urn:...:enterprise:2.0:User:department``).
- Every path, operator and value type is checked *before* any document is looked at (a filter
  is compiled), so a bad filter fails the same way whether or not any resource would match,
  just as it does in SQL. Problems raise :class:`InvalidFilter` naming the attribute.
- Strings compare case-insensitively unless the attribute is ``caseExact`` (RFC 7643 §2.2),
  by ``str.lower()``; ``gt``/``ge``/``lt``/``le`` on strings compare code points of those
  values. Numbers compare numerically, ``dateTime`` values as instants (RFC 7643 §2.3.5).
  ``co``/``sw``/``ew`` apply to strings (``string``, ``reference``, ``binary``) only; ordering
  a ``boolean`` or ``binary`` is an error (RFC 7644 §3.4.2.2, Table 3). A literal of the wrong
  JSON type for the attribute (``active eq "true"``, ``userName eq 1``) is an error, not a
  silent non-match.
- Multi-valued attributes match when *any* value matches (so ``ne`` means "some value differs",
  and an absent attribute matches neither ``eq`` nor ``ne``). A multi-valued complex attribute
  without sub-attribute compares its ``value`` sub-attribute (``emails co "@x"``).
- ``pr`` means present and not null, not ``""``, not ``[]`` and, for a complex value, with some
  present sub-attribute. ``eq null`` is exactly ``not pr`` and ``ne null`` exactly ``pr``.
- An element of a multi-valued attribute without its ``primary`` sub-attribute reads as
  ``primary: false`` (RFC 7643 §2.4: "If not specified, the value of 'primary' SHALL be assumed
  to be 'false'"), as the index rows SQL filters read store it: ``emails[primary eq false]``,
  ``emails[primary ne true]`` and ``emails.primary pr`` select it, ``emails[primary eq null]``
  does not. Only the reading changes: no document gains a ``primary``.
- ``attr[filter]``: both sides of an ``and`` inside the bracket must hold for the same element.
- ``returned: never`` attributes (``password``) cannot be filtered on: that would let a client
  probe a secret one guess at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scim_server.scim.errors import InvalidFilter, ScimError
from scim_server.scim.filter_ast import (
    And,
    AttrPath,
    Compare,
    Expr,
    Literal,
    Not,
    Or,
    Present,
    ValuePath,
)
from scim_server.scim.schema import Attribute, ResourceType, Schema
from scim_server.scim.validate import DateTimeOutOfRange, parse_datetime

Predicate = Callable[[Any], bool]

# The common attributes of every resource (RFC 7643 §3.1). They are in no schema document, but
# filters, sorting and PATCH all name them.
_META = Attribute(
    name="meta",
    type="complex",
    mutability="readOnly",
    sub_attributes=(
        Attribute(name="resourceType", type="string", case_exact=True, mutability="readOnly"),
        Attribute(name="created", type="dateTime", mutability="readOnly"),
        Attribute(name="lastModified", type="dateTime", mutability="readOnly"),
        Attribute(name="location", type="reference", case_exact=True, mutability="readOnly"),
        Attribute(name="version", type="string", case_exact=True, mutability="readOnly"),
    ),
)
COMMON_ATTRIBUTES: dict[str, Attribute] = {
    a.name.lower(): a
    for a in (
        Attribute(
            name="id",
            type="string",
            case_exact=True,
            mutability="readOnly",
            returned="always",
            uniqueness="server",
        ),
        Attribute(name="externalId", type="string", case_exact=True),
        _META,
        # Schema URIs are case-insensitive (RFC 7643 §2.1 applies to them as to names).
        Attribute(name="schemas", type="reference", multi_valued=True, required=True),
    )
}

_STRING_TYPES = frozenset({"string", "reference", "binary"})
_MAX_SHOWN = 100
_ORDERING = frozenset({"gt", "ge", "lt", "le"})
_SUBSTRING = frozenset({"co", "sw", "ew"})


@dataclass(frozen=True)
class ResolvedPath:
    """Where an :class:`AttrPath` points in a resource of one resource type.

    ``schema`` is the schema holding the attribute (the core schema for the common attributes);
    values of a core attribute live at the top of the document, those of an extension attribute
    under the extension's URN key (RFC 7643 §3.3). ``attribute`` is None when the path names a
    whole extension (a PATCH path may: ``urn:...:enterprise:2.0:User``).
    """

    schema: Schema
    attribute: Attribute | None
    sub: Attribute | None
    is_extension: bool

    @property
    def leaf(self) -> Attribute | None:
        return self.sub or self.attribute


def _a(word: str) -> str:
    """``word`` with its indefinite article: "an integer", "a string"."""
    return f"{'an' if word[:1] in {'a', 'e', 'i', 'o', 'u'} else 'a'} {word}"


def resolve_attr_path(
    rt: ResourceType,
    path: AttrPath,
    *,
    error: type[ScimError] = InvalidFilter,
    allow_schema: bool = False,
) -> ResolvedPath:
    """Resolve ``path`` against ``rt`` case-insensitively; unknown names raise ``error``.

    The URI is the text before the attribute name, as :func:`scim.filter.parse_filter` and
    :func:`scim.filter.parse_patch_path` split it. With ``allow_schema``, a path whose
    ``uri:attr`` is itself an extension URN (a bare extension URN) names the whole extension.
    """
    shown = _shown(str(path))
    if path.uri is None:
        schema = rt.schema
    else:
        whole = None if path.sub is not None else rt.schema_for_urn(f"{path.uri}:{path.attr}")
        if whole is not None:
            if allow_schema and whole is not rt.schema:
                return ResolvedPath(whole, None, None, is_extension=True)
            raise error(f"{shown} is a schema URN, not an attribute")
        found = rt.schema_for_urn(path.uri)
        if found is None:
            raise error(
                f"unknown schema in {shown}: resource type {rt.name} has {', '.join(rt.schema_ids)}"
            )
        schema = found
    attribute = schema.attribute(path.attr)
    if attribute is None and schema is rt.schema:
        attribute = COMMON_ATTRIBUTES.get(path.attr.lower())
    if attribute is None:
        raise error(f"unknown attribute {shown} for resource type {rt.name}")
    sub = None
    if path.sub is not None:
        if not attribute.is_complex:
            raise error(
                f"unknown attribute {shown}: {attribute.name} has no sub-attributes "
                f"(it is {_a(attribute.type)})"
            )
        sub = attribute.sub(path.sub)
        if sub is None:
            raise error(f"unknown attribute {shown} for resource type {rt.name}")
    return ResolvedPath(schema, attribute, sub, is_extension=schema is not rt.schema)


def get_ci(obj: object, name: str) -> Any:
    """``obj[name]`` with ``name`` matched case-insensitively, or None (RFC 7643 §2.1)."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def is_present(value: object) -> bool:
    """RFC 7644 §3.4.2.2 ``pr``: not null, not empty, and a complex value with some content."""
    if value is None or value == "" or value == []:
        return False
    if isinstance(value, dict):
        return any(is_present(v) for v in value.values())
    if isinstance(value, list):
        return any(is_present(v) for v in value)
    return True


# --- public API ---------------------------------------------------------------------------------


def compile_filter(rt: ResourceType, expr: Expr) -> Predicate:
    """Check ``expr`` against ``rt``'s schemas and return a predicate over canonical documents.

    Raises :class:`InvalidFilter` for an unknown attribute, an operator the attribute's type
    does not support, or a literal of the wrong type, whatever the documents hold.
    """
    return _compile(_ResourceScope(rt), expr)


def matches(rt: ResourceType, expr: Expr, doc: dict[str, Any]) -> bool:
    """Whether the canonical document ``doc`` of resource type ``rt`` satisfies ``expr``."""
    return compile_filter(rt, expr)(doc)


def compile_element_filter(attribute: Attribute, expr: Expr) -> Predicate:
    """A predicate over elements of the complex attribute ``attribute`` (a value filter).

    Paths in ``expr`` are sub-attribute names of ``attribute`` (``type``, ``value``).
    """
    if not attribute.is_complex:
        raise InvalidFilter(
            f'a value filter needs a complex attribute; "{attribute.name}" is {_a(attribute.type)}'
        )
    return _compile(_ElementScope(attribute), expr)


def element_matches(attribute: Attribute, expr: Expr, element: object) -> bool:
    """Whether one element of ``attribute`` (a dict of sub-attributes) satisfies ``expr``."""
    return compile_element_filter(attribute, expr)(element)


# --- compilation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """What a filter path reads: the attribute whose values are compared, and how to get them."""

    shown: str
    leaf: Attribute
    values: Callable[[Any], list[Any]]
    multi_valued: bool


class _ResourceScope:
    def __init__(self, rt: ResourceType) -> None:
        self.rt = rt

    def target(self, path: AttrPath) -> _Target:
        resolved = resolve_attr_path(self.rt, path)
        attribute = resolved.attribute
        assert attribute is not None  # allow_schema is off
        check_filterable(attribute, path)
        container = _container(resolved)
        sub = resolved.sub
        if sub is not None:
            check_filterable(sub, path)
            return _Target(
                str(path),
                sub,
                _sub_values(container, attribute.name, sub.name, absent_as(attribute, sub)),
                attribute.multi_valued,
            )
        return _Target(
            str(path), attribute, _attr_values(container, attribute.name), attribute.multi_valued
        )

    def value_path(self, node: ValuePath) -> Predicate:
        resolved = resolve_attr_path(self.rt, node.path)
        attribute = resolved.attribute
        assert attribute is not None
        check_filterable(attribute, node.path)
        if not attribute.is_complex or resolved.sub is not None:
            raise InvalidFilter(
                f'"{node.path}[...]": a value filter needs a complex attribute, '
                f"and {attribute.name} is {_a(attribute.type)}"
            )
        inner = _compile(_ElementScope(attribute), node.filter)
        values = _attr_values(_container(resolved), attribute.name)

        def predicate(doc: Any) -> bool:
            return any(isinstance(e, dict) and inner(e) for e in values(doc))

        return predicate


class _ElementScope:
    def __init__(self, attribute: Attribute) -> None:
        self.attribute = attribute

    def target(self, path: AttrPath) -> _Target:
        shown = f"{self.attribute.name}[{path}]"
        if path.uri is not None or path.sub is not None:
            raise InvalidFilter(
                f'"{shown}": inside a value filter, name a sub-attribute of '
                f"{self.attribute.name} ({_sub_names(self.attribute)})"
            )
        sub = self.attribute.sub(path.attr)
        if sub is None:
            unknown = _shown(f"{self.attribute.name}.{path.attr}")
            raise InvalidFilter(
                f"unknown attribute {unknown} in a value filter: "
                f"{self.attribute.name} has {_sub_names(self.attribute)}"
            )
        check_filterable(sub, path)
        name = sub.name
        absent = absent_as(self.attribute, sub)

        def values(element: Any) -> list[Any]:
            value = get_ci(element, name)
            return [absent if value is None and isinstance(element, dict) else value]

        return _Target(f"{self.attribute.name}.{sub.name}", sub, values, False)

    def value_path(self, node: ValuePath) -> Predicate:
        raise InvalidFilter(
            f'"{node.path}[...]" cannot be nested inside the value filter of {self.attribute.name}'
        )


_Scope = _ResourceScope | _ElementScope


def _compile(scope: _Scope, expr: Expr) -> Predicate:
    if isinstance(expr, And):
        left, right = _compile(scope, expr.left), _compile(scope, expr.right)
        return lambda doc: left(doc) and right(doc)
    if isinstance(expr, Or):
        left, right = _compile(scope, expr.left), _compile(scope, expr.right)
        return lambda doc: left(doc) or right(doc)
    if isinstance(expr, Not):
        inner = _compile(scope, expr.expr)
        return lambda doc: not inner(doc)
    if isinstance(expr, ValuePath):
        return scope.value_path(expr)
    if isinstance(expr, Present):
        target = scope.target(expr.path)
        return lambda doc: any(is_present(v) for v in target.values(doc))
    if isinstance(expr, Compare):
        return _compare(scope.target(expr.path), expr.op, expr.value)
    raise InvalidFilter(f"unsupported filter expression {expr!r}")  # pragma: no cover


def _compare(target: _Target, op: str, value: Literal) -> Predicate:
    if value is None:
        # RFC 7643 §2.5: null is "unassigned", so "eq null" asks for absence.
        if op not in {"eq", "ne"}:
            raise InvalidFilter(f'"{target.shown} {op} null": only eq and ne compare with null')

        def present(doc: Any) -> bool:
            return any(is_present(v) for v in target.values(doc))

        return present if op == "ne" else (lambda doc: not present(doc))

    leaf, values = target.leaf, target.values
    if leaf.is_complex:
        value_sub = leaf.sub("value")
        if not target.multi_valued or value_sub is None:
            raise InvalidFilter(
                f'"{target.shown}" is a complex attribute: compare one of its sub-attributes '
                f"({_sub_names(leaf)})"
            )
        # RFC 7644 §3.4.2.2: "emails co ..." compares each email's value.
        leaf = value_sub
        outer = values

        def values(doc: Any) -> list[Any]:
            return [get_ci(e, "value") for e in outer(doc)]

    test = _value_test(leaf, target.shown, op, value)
    return lambda doc: any(v is not None and test(v) for v in values(doc))


def _value_test(attr: Attribute, shown: str, op: str, value: Literal) -> Callable[[Any], bool]:
    """A test of one stored value of ``attr`` against the literal; type errors raised now."""
    kind = attr.type
    if kind in _STRING_TYPES:
        if not isinstance(value, str):
            raise _wrong_literal(shown, attr, value, "a string in double quotes")
        if op in _ORDERING and kind == "binary":
            raise InvalidFilter(f'"{shown} {op}": binary attributes cannot be ordered')
        fold = (lambda s: s) if attr.case_exact else str.lower
        wanted = fold(value)

        def string_test(stored: Any) -> bool:
            return isinstance(stored, str) and _apply(op, fold(stored), wanted)

        return string_test
    if op in _SUBSTRING:
        raise InvalidFilter(
            f'"{shown} {op}": {op} applies to string attributes only, and {attr.name} is {_a(kind)}'
        )
    if kind == "boolean":
        if op in _ORDERING:
            raise InvalidFilter(f'"{shown} {op}": boolean attributes cannot be ordered')
        if not isinstance(value, bool):
            raise _wrong_literal(shown, attr, value, "true or false (no quotes)")
        return lambda stored: isinstance(stored, bool) and _apply(op, stored, value)
    if kind in {"integer", "decimal"}:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_literal(shown, attr, value, "a number (no quotes)")
        number: int | float = value

        def number_test(stored: Any) -> bool:
            return (
                isinstance(stored, int | float)
                and not isinstance(stored, bool)
                and _apply(op, stored, number)
            )

        return number_test
    if kind == "dateTime":
        if not isinstance(value, str):
            raise _wrong_literal(
                shown, attr, value, 'a dateTime string such as "2026-01-02T03:04:05Z"'
            )
        try:
            instant = parse_datetime(value)
        except DateTimeOutOfRange:
            raise InvalidFilter(
                f'"{shown} {op}": {_shown(value)} is {DateTimeOutOfRange.RULE}'
            ) from None
        except ValueError:
            raise InvalidFilter(
                f'"{shown} {op}": {_shown(value)} is not a dateTime with time zone '
                '(for example "2026-01-02T03:04:05Z")'
            ) from None

        def datetime_test(stored: Any) -> bool:
            parsed = _stored_instant(stored)
            return parsed is not None and _apply(op, parsed, instant)

        return datetime_test
    raise InvalidFilter(
        f'"{shown}": attributes of type {kind} cannot be filtered'
    )  # pragma: no cover


def _apply(op: str, left: Any, right: Any) -> bool:
    """One RFC 7644 §3.4.2.2 Table 3 operator on two comparable Python values."""
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if op == "co":
        return bool(right in left)
    if op == "sw":
        return bool(left.startswith(right))
    if op == "ew":
        return bool(left.endswith(right))
    if op == "gt":
        return bool(left > right)
    if op == "ge":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    if op == "le":
        return bool(left <= right)
    raise InvalidFilter(f"unknown operator {op!r}")  # pragma: no cover - the parser knows these


def _stored_instant(stored: Any) -> datetime | None:
    if isinstance(stored, datetime):
        return stored if stored.tzinfo is not None else stored.replace(tzinfo=UTC)
    if isinstance(stored, str):
        try:
            return parse_datetime(stored)
        except ValueError:
            return None
    return None


# --- helpers ------------------------------------------------------------------------------------


def _container(resolved: ResolvedPath) -> Callable[[Any], Any]:
    if not resolved.is_extension:
        return lambda doc: doc
    urn = resolved.schema.id
    return lambda doc: get_ci(doc, urn)


def _attr_values(container: Callable[[Any], Any], name: str) -> Callable[[Any], list[Any]]:
    def values(doc: Any) -> list[Any]:
        raw = get_ci(container(doc), name)
        if raw is None:
            return []
        return list(raw) if isinstance(raw, list) else [raw]

    return values


def _sub_values(
    container: Callable[[Any], Any], name: str, sub: str, absent: Any = None
) -> Callable[[Any], list[Any]]:
    """Each element's ``sub`` (``absent`` where an element has none or null)."""
    parents = _attr_values(container, name)

    def values(doc: Any) -> list[Any]:
        found = (get_ci(parent, sub) for parent in parents(doc) if isinstance(parent, dict))
        return [absent if value is None else value for value in found]

    return values


def absent_as(attribute: Attribute, sub: Attribute) -> Any:
    """What a filter reads for ``sub`` in an element of ``attribute`` that does not hold it:
    ``False`` for the boolean ``primary`` of a multi-valued attribute, whichever attributes the
    schema documents give one (RFC 7643 §2.4: "If not specified, the value of 'primary' SHALL be
    assumed to be 'false'"; ``store.users`` indexes it so), None (absent) for anything else."""
    if attribute.multi_valued and sub.name.lower() == "primary" and sub.type == "boolean":
        return False
    return None


def check_filterable(attr: Attribute, path: AttrPath) -> None:
    """Refuse a never-returned attribute (the password): a filter or an order by it would tell
    something of the secret."""
    if attr.returned == "never":
        raise InvalidFilter(f'"{path}" cannot be used in a filter: it is never returned')


def _shown(text: str) -> str:
    """Quote client text for a detail, cut so a huge name cannot bloat logs."""
    return f'"{text}"' if len(text) <= _MAX_SHOWN else f'"{text[:_MAX_SHOWN]}..."'


def _sub_names(attr: Attribute) -> str:
    return ", ".join(sub.name for sub in attr.sub_attributes) or "no sub-attributes"


def _wrong_literal(shown: str, attr: Attribute, value: Literal, expected: str) -> InvalidFilter:
    return InvalidFilter(
        f'"{shown}" is {_a(attr.type)} attribute: compare it with {expected}, '
        f"not {_literal_text(value)}"
    )


def _literal_text(value: Literal) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {_shown(value)}"
    return f"the number {value}"
