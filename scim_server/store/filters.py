"""Compile the filter AST to SQLAlchemy expressions (RFC 7644 §3.4.2.2, DESIGN §4).

Never string-built SQL: every literal is a bound parameter. Attribute paths are resolved against
the schema registry, so an unknown attribute is a 400 ``invalidFilter`` and never a silently wider
result. Where an attribute lives is described by a :class:`ResourceStorage`:

* promoted columns (``userName``, ``externalId``, ``meta.lastModified`` ...) compare directly,
  through ``lower()`` when the attribute is not ``caseExact`` so the functional indexes are used;
* other single-valued attributes are read from the JSON document;
* multi-valued attributes are ``EXISTS`` sub-queries over the child table, and a value path
  (``emails[type eq "work" and value co "x"]``) requires both clauses of the *same* row.

Comparisons compile to two-valued logic (an absent attribute makes ``eq`` false, not NULL) so that
``not (...)`` agrees with the in-memory evaluator in ``scim.filter_eval``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    exists,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import InstrumentedAttribute, aliased

from scim_server.scim.errors import InvalidFilter
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

ORDERING_OPERATORS = frozenset({"gt", "ge", "lt", "le"})
STRING_OPERATORS = frozenset({"co", "sw", "ew"})
_STRING_TYPES = frozenset({"string", "reference", "binary"})


@dataclass(frozen=True)
class Target:
    """A SQL expression standing for one attribute, and how to compare it."""

    expr: ColumnElement[Any]
    type: str
    case_exact: bool
    nullable: bool = True


@dataclass(frozen=True)
class ChildStorage:
    """Where one element of a multi-valued attribute lives: a row of ``model``."""

    model: Any
    parent_fk: str
    key_column: str
    #: sub-attribute name (lower case) -> column name on the child model
    columns: dict[str, str]


@dataclass(frozen=True)
class ResourceStorage:
    """How one resource type is stored, as far as filters and sorting need to know."""

    model: Any
    pk_column: str
    org_column: str
    document_column: str
    #: canonical path (lower case: ``username``, ``meta.lastmodified``) -> column name
    columns: dict[str, str]
    child: ChildStorage | None = None
    #: lower-case paths that are computed, not stored, and so cannot be filtered yet
    unfilterable: frozenset[str] = field(default_factory=frozenset)


# Common attributes (RFC 7643 §3.1), not in any schema document.
_COMMON = {
    "id": Attribute(name="id", type="string", case_exact=True, mutability="readOnly"),
    "externalid": Attribute(name="externalId", type="string", case_exact=True),
    "meta": Attribute(
        name="meta",
        type="complex",
        mutability="readOnly",
        sub_attributes=(
            Attribute(name="resourceType", type="string", case_exact=True),
            Attribute(name="created", type="dateTime"),
            Attribute(name="lastModified", type="dateTime"),
            Attribute(name="location", type="reference", case_exact=True),
            Attribute(name="version", type="string", case_exact=True),
        ),
    ),
}


@dataclass(frozen=True)
class Resolved:
    schema: Schema | None  # None for common attributes (id, externalId, meta)
    attribute: Attribute
    sub: Attribute | None
    extension_urn: str | None = None  # set when the attribute belongs to a schema extension

    @property
    def document_keys(self) -> tuple[str, ...]:
        """Keys of the attribute inside the stored JSON document."""
        keys: tuple[str, ...] = (self.attribute.name,)
        if self.extension_urn is not None:
            keys = (self.extension_urn, *keys)
        if self.sub is not None:
            keys = (*keys, self.sub.name)
        return keys

    @property
    def canonical(self) -> str:
        path = self.attribute.name
        if self.sub is not None:
            path = f"{path}.{self.sub.name}"
        if self.extension_urn is not None:
            path = f"{self.extension_urn}:{path}"
        return path.lower()

    @property
    def child_key(self) -> str:
        """The ``attribute`` value of child rows holding this multi-valued attribute."""
        if self.extension_urn is None:
            return self.attribute.name
        return f"{self.extension_urn}:{self.attribute.name}"


def resolve_path(rt: ResourceType, path: AttrPath) -> Resolved:
    """Find the schema attribute a filter path names; unknown names are ``invalidFilter``."""
    if path.uri:
        schema = rt.schema_for_urn(path.uri)
        if schema is None:
            raise InvalidFilter(f'unknown schema "{path.uri}" in filter attribute "{path}"')
        attribute = schema.attribute(path.attr)
        resolved_schema: Schema | None = schema
        extension = None if schema.id == rt.schema.id else schema.id
    else:
        extension = None
        common = _COMMON.get(path.attr.lower())
        if common is not None:
            attribute, resolved_schema = common, None
        else:
            attribute = rt.schema.attribute(path.attr)
            resolved_schema = rt.schema
    if attribute is None:
        raise InvalidFilter(f'unknown attribute "{path}" for resource type {rt.name}')
    sub = None
    if path.sub:
        sub = attribute.sub(path.sub)
        if sub is None:
            raise InvalidFilter(f'unknown attribute "{path}" for resource type {rt.name}')
    return Resolved(resolved_schema, attribute, sub, extension)


def _json_accessor(expr: Any, attr_type: str) -> ColumnElement[Any]:
    if attr_type == "boolean":
        return expr.as_boolean()  # type: ignore[no-any-return]
    if attr_type == "integer":
        return expr.as_integer()  # type: ignore[no-any-return]
    if attr_type == "decimal":
        return expr.as_float()  # type: ignore[no-any-return]
    return expr.as_string()  # type: ignore[no-any-return]


def _check_literal(op: str, target: Target, value: Literal, path: str) -> Any:
    """Type-check a comparison literal against the attribute and convert it for binding."""
    if value is None:
        if op in {"eq", "ne"}:
            return None
        raise InvalidFilter(f'"{path} {op} null": only eq and ne can compare with null')
    if op in STRING_OPERATORS and target.type not in _STRING_TYPES:
        raise InvalidFilter(f'"{op}" needs a string attribute; "{path}" is a {target.type}')
    if target.type == "boolean":
        if not isinstance(value, bool):
            raise InvalidFilter(f'"{path}" is a boolean; compare it with true or false')
        if op not in {"eq", "ne"}:
            raise InvalidFilter(f'"{op}" cannot compare booleans ("{path}")')
        return value
    if target.type in {"integer", "decimal"}:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidFilter(f'"{path}" is a number; compare it with a number')
        if target.type == "integer" and isinstance(value, float) and not value.is_integer():
            raise InvalidFilter(f'"{path}" is an integer; {value} is not')
        return value
    if not isinstance(value, str):
        raise InvalidFilter(f'"{path}" is a {target.type}; compare it with a quoted string')
    if target.type == "dateTime":
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidFilter(
                f'"{value}" is not a dateTime (xsd:dateTime) for "{path}"'
            ) from None
        if parsed.tzinfo is None:
            raise InvalidFilter(f'"{value}" has no time zone; write it like 2026-01-01T00:00:00Z')
        return parsed if isinstance(target.expr, InstrumentedAttribute) else value
    return value


def _compare(target: Target, op: str, value: Literal, path: str) -> ColumnElement[bool]:
    literal = _check_literal(op, target, value, path)
    column = target.expr
    if literal is None:
        return column.is_(None) if op == "eq" else column.is_not(None)
    if isinstance(literal, str) and not target.case_exact and target.type in _STRING_TYPES:
        column = func.lower(column)
        literal = literal.lower()
    condition: ColumnElement[bool]
    if op == "eq":
        condition = column == literal
    elif op == "ne":
        inequality = column != literal
        return or_(target.expr.is_(None), inequality) if target.nullable else inequality
    elif op == "co":
        condition = column.contains(literal, autoescape=True)
    elif op == "sw":
        condition = column.startswith(literal, autoescape=True)
    elif op == "ew":
        condition = column.endswith(literal, autoescape=True)
    elif op == "gt":
        condition = column > literal
    elif op == "ge":
        condition = column >= literal
    elif op == "lt":
        condition = column < literal
    elif op == "le":
        condition = column <= literal
    else:  # pragma: no cover - the parser only produces the operators above
        raise InvalidFilter(f'unknown operator "{op}"')
    return and_(target.expr.is_not(None), condition) if target.nullable else condition


def _present(target: Target) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = target.expr.is_not(None)
    if target.type in _STRING_TYPES:
        condition = and_(condition, target.expr != "")
    return condition


class FilterCompiler:
    """Compiles filters for one resource type and one organisation."""

    def __init__(self, rt: ResourceType, storage: ResourceStorage, org_id: int) -> None:
        self.rt = rt
        self.storage = storage
        self.org_id = org_id
        self.model = storage.model

    # -- targets -------------------------------------------------------------------------

    def _column(self, name: str) -> Any:
        return getattr(self.model, name)

    def target(self, resolved: Resolved, path: AttrPath) -> Target:
        """The expression of a single-valued attribute (or sub-attribute) of the resource."""
        attr = resolved.sub or resolved.attribute
        if resolved.canonical in self.storage.unfilterable:
            raise InvalidFilter(f'attribute "{path}" cannot be used in a filter yet')
        if attr.is_complex:
            raise InvalidFilter(f'"{path}" is a complex attribute; name one of its sub-attributes')
        column_name = self.storage.columns.get(resolved.canonical)
        if column_name is not None:
            column = self._column(column_name)
            nullable = bool(getattr(column, "nullable", True))
            expr_type = "dateTime" if attr.type == "dateTime" else attr.type
            return Target(column, expr_type, attr.case_exact, nullable=nullable)
        if resolved.schema is None:
            raise InvalidFilter(f'attribute "{path}" cannot be used in a filter')
        document = self._column(self.storage.document_column)
        keys = resolved.document_keys
        return Target(_json_accessor(document[keys], attr.type), attr.type, attr.case_exact)

    # -- compilation ---------------------------------------------------------------------

    def compile(self, expr: Expr) -> ColumnElement[bool]:
        if isinstance(expr, And):
            return and_(self.compile(expr.left), self.compile(expr.right))
        if isinstance(expr, Or):
            return or_(self.compile(expr.left), self.compile(expr.right))
        if isinstance(expr, Not):
            return not_(self.compile(expr.expr))
        if isinstance(expr, ValuePath):
            return self._value_path(expr.path, expr.filter)
        if isinstance(expr, Compare | Present):
            resolved = resolve_path(self.rt, expr.path)
            if resolved.attribute.multi_valued:
                # ``emails.value eq "x"`` / ``emails eq "x"``: some element matches.
                sub_name = resolved.sub.name if resolved.sub else "value"
                inner: Expr = (
                    Compare(AttrPath(sub_name), expr.op, expr.value)
                    if isinstance(expr, Compare)
                    else Present(AttrPath(sub_name))
                )
                return self._exists_child(resolved, expr.path, inner)
            target = self.target(resolved, expr.path)
            if isinstance(expr, Present):
                return _present(target)
            return _compare(target, expr.op, expr.value, str(expr.path))
        raise InvalidFilter("unsupported filter expression")  # pragma: no cover

    def _value_path(self, path: AttrPath, inner: Expr) -> ColumnElement[bool]:
        resolved = resolve_path(self.rt, path)
        if not resolved.attribute.multi_valued or resolved.sub is not None:
            raise InvalidFilter(f'"{path}[...]" needs a multi-valued attribute')
        return self._exists_child(resolved, path, inner)

    def _exists_child(self, resolved: Resolved, path: AttrPath, inner: Expr) -> ColumnElement[bool]:
        child = self.storage.child
        if child is None or resolved.canonical.split(".")[0] in self.storage.unfilterable:
            raise InvalidFilter(f'attribute "{path}" cannot be used in a filter yet')
        row = aliased(child.model)
        parent_pk = getattr(self.model, self.storage.pk_column)

        def element_target(sub_path: AttrPath) -> Target:
            if sub_path.uri or sub_path.sub:
                raise InvalidFilter(
                    f'"{sub_path}" inside "{path.attr}[...]" must be a sub-attribute name'
                )
            attribute = resolved.attribute
            sub = attribute.sub(sub_path.attr) if attribute.is_complex else None
            if attribute.is_complex and sub is None:
                raise InvalidFilter(f'unknown attribute "{path.attr}.{sub_path.attr}"')
            if sub is None:  # simple multi-valued attribute: the element itself
                return Target(row.value, attribute.type, attribute.case_exact)
            column_name = child.columns.get(sub.name.lower())
            if column_name is not None:
                return Target(getattr(row, column_name), sub.type, sub.case_exact)
            return Target(
                _json_accessor(row.data[sub.name], sub.type), sub.type, sub.case_exact
            )

        condition = _ElementCompiler(element_target, str(path)).compile(inner)
        return exists(
            select(row.pk).where(
                getattr(row, child.parent_fk) == parent_pk,
                row.org_id == self.org_id,
                getattr(row, child.key_column) == resolved.child_key,
                condition,
            )
        )

    # -- sorting -------------------------------------------------------------------------

    def sort_key(self, path: AttrPath) -> ColumnElement[Any]:
        """``sortBy`` (RFC 7644 §3.4.2.3): multi-valued attributes sort by their primary value."""
        try:
            resolved = resolve_path(self.rt, path)
        except InvalidFilter as error:
            raise InvalidFilter(error.detail.replace("filter", "sortBy")) from None
        if resolved.attribute.multi_valued:
            child = self.storage.child
            if child is None:
                raise InvalidFilter(f'cannot sort by "{path}"')
            row = aliased(child.model)
            sub_name = (resolved.sub.name if resolved.sub else "value").lower()
            value = func.lower(getattr(row, child.columns.get(sub_name, "value")))
            owner = and_(
                getattr(row, child.parent_fk) == getattr(self.model, self.storage.pk_column),
                getattr(row, child.key_column) == resolved.child_key,
            )
            primary = select(func.min(value)).where(owner, row.primary.is_(true()))
            first = select(func.min(value)).where(owner)
            return func.coalesce(primary.scalar_subquery(), first.scalar_subquery())
        target = self.target(resolved, path)
        if target.type in _STRING_TYPES and not target.case_exact:
            return func.lower(target.expr)
        return target.expr


class _ElementCompiler:
    """Compiles the filter inside ``attr[...]`` against one child row."""

    def __init__(self, target: Callable[[AttrPath], Target], outer: str) -> None:
        self._target = target
        self._outer = outer

    def compile(self, expr: Expr) -> ColumnElement[bool]:
        if isinstance(expr, And):
            return and_(self.compile(expr.left), self.compile(expr.right))
        if isinstance(expr, Or):
            return or_(self.compile(expr.left), self.compile(expr.right))
        if isinstance(expr, Not):
            return not_(self.compile(expr.expr))
        if isinstance(expr, ValuePath):
            raise InvalidFilter(f'value paths cannot be nested inside "{self._outer}[...]"')
        target = self._target(expr.path)
        if isinstance(expr, Present):
            return _present(target)
        return _compare(target, expr.op, expr.value, f"{self._outer}.{expr.path}")
