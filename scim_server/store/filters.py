"""Compile the filter AST to SQLAlchemy expressions (RFC 7644 §3.4.2.2, DESIGN §4).

Never string-built SQL: every literal is a bound parameter. The in-memory evaluator
(``scim.filter_eval``) is the definition of what a filter means; this module first has it check
the filter (unknown attributes, operators a type does not support, literals of the wrong type all
fail identically in both), reuses its attribute resolution, and then translates:

* promoted columns (``userName``, ``externalId``, ``meta.lastModified`` ...) compare directly,
  through ``lower()`` when the attribute is not ``caseExact`` so the functional indexes are used;
* other single-valued attributes are read from the JSON document;
* multi-valued attributes are ``EXISTS`` sub-queries over the child table, and a value path
  (``emails[type eq "work" and value co "x"]``) requires both clauses of the *same* row.

A filter is compiled from its *shape* (:func:`shape_of`): every string and number literal
replaced by a :class:`Slot`, bound by name when the statement runs, and the organisation bound as
``org_id``. So one compiled condition, and the statements services build around it, serve every
request of that shape: IdPs send a few shapes (``userName eq "..."``) with a new value each time.

Comparisons compile to two-valued logic (an absent attribute makes ``eq`` and ``ne`` false, not
NULL), so ``not (...)`` means the same as in the evaluator. String ordering compares code points
on both databases (``COLLATE "C"`` on PostgreSQL; SQLite's default), whatever the server locale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    exists,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.util import LRUCache

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
    comparisons,
)
from scim_server.scim.filter_eval import (
    ResolvedPath,
    check_filterable,
    compile_filter,
    resolve_attr_path,
)
from scim_server.scim.schema import Attribute, ResourceType
from scim_server.scim.validate import parse_datetime
from scim_server.store.text import LIKE_ESCAPE, folded, like_pattern

_STRING_TYPES = frozenset({"string", "reference", "binary"})

#: Integers a BIGINT parameter holds. A literal beyond (RFC 7643 sets no bound) is a slot of
#: kind float: it compares as a number with any stored integer, where a BIGINT parameter would
#: overflow (a 500).
_BIGINT = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Slot:
    """The place of a filter's ``index``-th literal in its shape. ``kind`` is the literal's type:
    a string and a number compile to different SQL. ``true``, ``false`` and ``null`` are not
    slots but part of the shape (``eq null`` compiles to an absence test)."""

    index: int
    kind: type


#: The largest filter (in comparisons) whose statements are worth remembering. A larger one is
#: built and compiled for its request alone: the statements of a filter of 150 comparisons held
#: about 2.5 MB, so a client sending distinct large filters grew a worker by 1.5 GB in 600
#: requests. IdPs look up by one or two attributes (``bench/filter_memory.py``).
REMEMBERED_COMPARISONS = 4

#: Compiled statements of the shapes remembered, apart from the engine's cache, which then
#: holds only statements the code builds (a set of bounded size). One compiled for a filter of
#: four comparisons held about 100 KB, and the engine's cache (500 entries, pruned at 750) let
#: one client's made-up shapes grow a worker by 73 MB.
_COMPILED_SHAPES: LRUCache[Any, Any] = LRUCache(128)


def worth_remembering(expr: Expr) -> bool:
    """Whether statements built for ``expr`` may be kept for later requests."""
    return comparisons(expr) <= REMEMBERED_COMPARISONS


def execution_options(expr: Expr | None) -> Mapping[str, Any]:
    """The options of a statement filtered by ``expr`` (None: unfiltered): compiled into the
    shapes' own cache, or for its request alone when ``expr`` is large."""
    if expr is not None and not worth_remembering(expr):
        return _FOR_ONE_REQUEST
    return _IN_SHAPES_CACHE


_FOR_ONE_REQUEST: Mapping[str, Any] = MappingProxyType({"compiled_cache": None})
_IN_SHAPES_CACHE: Mapping[str, Any] = MappingProxyType({"compiled_cache": _COMPILED_SHAPES})


def shape_of(expr: Expr) -> tuple[Expr, tuple[Literal, ...]]:
    """``expr`` with each string and number literal replaced by a :class:`Slot`, and those
    literals in slot order."""
    values: list[Literal] = []

    def walk(node: Expr) -> Expr:
        if isinstance(node, Compare):
            value = node.value
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                values.append(value)
                kind = float if isinstance(value, int) and value not in _BIGINT else type(value)
                return Compare(node.path, node.op, Slot(len(values) - 1, kind))  # type: ignore[arg-type]
            return node
        if isinstance(node, And):
            return And(walk(node.left), walk(node.right))
        if isinstance(node, Or):
            return Or(walk(node.left), walk(node.right))
        if isinstance(node, Not):
            return Not(walk(node.expr))
        if isinstance(node, ValuePath):
            return ValuePath(node.path, walk(node.filter))
        return node

    return walk(expr), tuple(values)


def _slot_name(index: int) -> str:
    return f"filter_{index}"


@dataclass(frozen=True)
class PreparedFilter:
    """The SQL condition of a filter shape, with its parameters: ``org_id``, and one per slot,
    whose value ``binders[i]`` makes of the request's ``i``-th literal (lower-cased when the
    attribute is not ``caseExact``, then a LIKE pattern for ``co``/``sw``/``ew``, ...)."""

    condition: ColumnElement[bool]
    binders: tuple[tuple[str, int, Callable[[Any], Any]], ...]

    def parameters(self, values: Sequence[Literal]) -> dict[str, Any]:
        """The slots' parameters for the literals of one request (``org_id`` is the caller's)."""
        return {name: bind(values[index]) for name, index, bind in self.binders}


def _like_pattern(op: str) -> Callable[[Any], str]:
    return lambda value: like_pattern(str(value), op)


def _then(first: Callable[[Any], Any], second: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: second(first(value))


def _as_float(value: Any) -> float:
    """A float slot's value; an integer past what a float holds compares as an infinity."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _same(value: Any) -> Any:
    return value


class codepoint_order(FunctionElement[str]):
    """``expr`` compared by code point: ``COLLATE "C"`` on PostgreSQL, as is on SQLite."""

    type = String()
    inherit_cache = True


@compiles(codepoint_order)
def _codepoint_default(element: codepoint_order, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(codepoint_order, "postgresql")
def _codepoint_postgresql(element: codepoint_order, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


class text_position(FunctionElement[int]):
    """Where ``needle`` first occurs in ``haystack``, by code point (1-based, 0 when absent).

    ``co`` on a ``caseExact`` attribute needs it: SQLite's LIKE folds ASCII case."""

    type = Integer()
    inherit_cache = True


@compiles(text_position)
def _text_position_default(element: text_position, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


@compiles(text_position, "sqlite")
def _text_position_sqlite(element: text_position, compiler: SQLCompiler, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


def _case_exact_match(op: str, column: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    """``co``/``sw``/``ew`` comparing case, the same on both databases (not LIKE: SQLite's folds
    ASCII case, and no pattern escaping is needed)."""
    if op == "co":
        return text_position(column, value) > 0
    if op == "sw":
        part = func.substr(column, 1, func.length(value))
    else:  # the tail as long as ``value``: shorter than ``value`` when the column is
        part = func.substr(column, func.length(column) - func.length(value) + 1)
    condition: ColumnElement[bool] = part == value
    return condition


@dataclass(frozen=True)
class Target:
    """A SQL expression standing for one attribute, and how to compare it."""

    expr: ColumnElement[Any]
    type: str
    case_exact: bool
    is_column: bool = False
    nullable: bool = True


@dataclass(frozen=True)
class ChildStorage:
    """Where one element of a multi-valued attribute lives: a row of ``model``."""

    model: Any
    parent_fk: str
    #: column telling which attribute a row belongs to; None when the table holds one attribute
    key_column: str | None
    #: sub-attribute name (lower case) -> column name on the child model
    columns: dict[str, str]
    #: column that keeps the elements in the order they were sent (rows are written in that
    #: order); None when they are a set (group members)
    order_column: str | None = None


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
    #: lower-case attribute names that are computed, not stored, and so cannot be filtered yet
    unfilterable: frozenset[str] = field(default_factory=frozenset)


def _canonical(resolved: ResolvedPath) -> str:
    assert resolved.attribute is not None
    path = resolved.attribute.name
    if resolved.sub is not None:
        path = f"{path}.{resolved.sub.name}"
    return path.lower()


def _child_key(resolved: ResolvedPath) -> str:
    """The ``attribute`` value of child rows holding a multi-valued attribute."""
    assert resolved.attribute is not None
    if resolved.is_extension:
        return f"{resolved.schema.id}:{resolved.attribute.name}"
    return resolved.attribute.name


def _json_value(expr: Any, attr_type: str) -> ColumnElement[Any]:
    if attr_type == "boolean":
        return expr.as_boolean()  # type: ignore[no-any-return]
    if attr_type == "integer":
        return expr.as_integer()  # type: ignore[no-any-return]
    if attr_type == "decimal":
        return expr.as_float()  # type: ignore[no-any-return]
    return expr.as_string()  # type: ignore[no-any-return]


def _present(target: Target) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = target.expr.is_not(None) if target.nullable else true()
    if target.type in _STRING_TYPES:
        condition = and_(condition, target.expr != "")
    return condition


def _datetime_bound(value: Any) -> Any:
    return parse_datetime(value)


class _Binder:
    """Collects the parameters a compiled shape binds."""

    def __init__(self) -> None:
        self.binders: list[tuple[str, int, Callable[[Any], Any]]] = []

    def bind(
        self, slot: Slot, convert: Callable[[Any], Any], compared_with: ColumnElement[Any]
    ) -> BindParameter[Any]:
        name = _slot_name(slot.index)
        self.binders.append((name, slot.index, convert))
        if slot.kind is int:
            # BIGINT, not the column's type: an INTEGER parameter made PostgreSQL refuse
            # ``status eq 2147483648`` (out of range) where it simply matches nothing
            return bindparam(name, type_=BigInteger())
        if slot.kind is float:
            # typed as a literal of its kind would be: an untyped parameter takes the column's
            # type, and PostgreSQL then casts 200.6 to the integer 201 (``status eq 200.6``)
            kind = compared_with.type.coerce_compared_value(operators.eq, slot.kind())
            return bindparam(name, type_=kind)
        return bindparam(name)


def _compare(
    target: Target, op: str, value: Slot | Literal, binder: _Binder
) -> ColumnElement[bool]:
    if value is None:  # ``eq null`` is ``not pr``; ``ne null`` is ``pr``
        return not_(_present(target)) if op == "eq" else _present(target)
    column: ColumnElement[Any] = target.expr
    operand: Any = value  # true / false are part of the shape
    # ``co``/``sw``/``ew`` take string attributes only: the evaluator refuses others
    like = op in {"co", "sw", "ew"} and not target.case_exact
    if isinstance(value, Slot):
        convert: Callable[[Any], Any] = _same
        if value.kind is float:
            convert = _as_float  # an integer past BIGINT too (see ``shape_of``)
        if value.kind is str and target.type == "dateTime" and target.is_column:
            convert = _datetime_bound  # the evaluator has checked that it parses
        folds = value.kind is str and target.type in _STRING_TYPES and not target.case_exact
        if folds:
            column = func.lower(column)
        if value.kind is str and target.type in _STRING_TYPES and op in {"gt", "ge", "lt", "le"}:
            column = codepoint_order(column)
        if like:
            convert = _then(convert, _like_pattern(op))
        operand = binder.bind(value, convert, column)
        if folds:  # by the database, as the column is (``store.text``)
            operand = folded(operand)
    condition: ColumnElement[bool]
    if like:
        condition = column.like(operand, escape=LIKE_ESCAPE)
    elif op in {"co", "sw", "ew"}:
        condition = _case_exact_match(op, column, operand)
    elif op == "eq":
        condition = column == operand
    elif op == "ne":
        condition = column != operand
    elif op == "gt":
        condition = column > operand
    elif op == "ge":
        condition = column >= operand
    elif op == "lt":
        condition = column < operand
    elif op == "le":
        condition = column <= operand
    else:  # pragma: no cover - the evaluator has already refused other operators
        raise InvalidFilter(f'unknown operator "{op}"')
    # An absent attribute satisfies no comparison (two-valued logic under ``not``).
    return and_(target.expr.is_not(None), condition) if target.nullable else condition


class FilterCompiler:
    """Compiles filters and sort keys for one resource type, for any organisation: the
    statements it builds take the organisation as the parameter ``org_id``."""

    def __init__(self, rt: ResourceType, storage: ResourceStorage) -> None:
        self.rt = rt
        self.storage = storage
        self.model = storage.model

    # -- targets -------------------------------------------------------------------------

    def _resolve(self, path: AttrPath) -> ResolvedPath:
        resolved = resolve_attr_path(self.rt, path)
        assert resolved.attribute is not None
        if resolved.attribute.name.lower() in self.storage.unfilterable:
            raise InvalidFilter(f'attribute "{path}" cannot be used in a filter yet')
        return resolved

    def _target(self, resolved: ResolvedPath, path: AttrPath) -> Target:
        """The expression of a single-valued, simple attribute or sub-attribute."""
        attr = resolved.leaf
        assert attr is not None
        column_name = (
            None if resolved.is_extension else self.storage.columns.get(_canonical(resolved))
        )
        if column_name is not None:
            column = getattr(self.model, column_name)
            nullable = bool(self.model.__table__.c[column_name].nullable)
            return Target(column, attr.type, attr.case_exact, is_column=True, nullable=nullable)
        if resolved.attribute is not None and resolved.attribute.name in {"id", "meta", "schemas"}:
            raise InvalidFilter(f'attribute "{path}" cannot be used in a filter')
        document = getattr(self.model, self.storage.document_column)
        keys: tuple[str, ...] = tuple(
            name
            for name in (
                resolved.schema.id if resolved.is_extension else None,
                resolved.attribute.name if resolved.attribute else None,
                resolved.sub.name if resolved.sub else None,
            )
            if name is not None
        )
        return Target(_json_value(document[keys], attr.type), attr.type, attr.case_exact)

    # -- compilation ---------------------------------------------------------------------

    def check(self, expr: Expr) -> None:
        """Refuse ``expr`` exactly when the evaluator refuses it (unknown attribute, operator
        the type does not support, literal of the wrong type or a dateTime that does not
        parse): per request, as these depend on the literals, not only on the shape."""
        compile_filter(self.rt, expr)

    def prepare(self, shape: Expr) -> PreparedFilter:
        """The condition of a checked filter's shape (see :func:`shape_of`)."""
        binder = _Binder()
        condition = self._compile(shape, binder)
        return PreparedFilter(condition, tuple(binder.binders))

    def compile(self, expr: Expr) -> tuple[ColumnElement[bool], dict[str, Any]]:
        """``expr`` checked and compiled, with its slots' parameters (not ``org_id``)."""
        self.check(expr)
        shape, values = shape_of(expr)
        prepared = self.prepare(shape)
        return prepared.condition, prepared.parameters(values)

    def _compile(self, expr: Expr, binder: _Binder) -> ColumnElement[bool]:
        if isinstance(expr, And):
            return and_(self._compile(expr.left, binder), self._compile(expr.right, binder))
        if isinstance(expr, Or):
            return or_(self._compile(expr.left, binder), self._compile(expr.right, binder))
        if isinstance(expr, Not):
            return not_(self._compile(expr.expr, binder))
        if isinstance(expr, ValuePath):
            return self._exists(self._resolve(expr.path), expr.filter, binder)
        resolved = self._resolve(expr.path)
        attribute = resolved.attribute
        assert attribute is not None
        if attribute.multi_valued:
            return self._multi_valued(resolved, expr, binder)
        if attribute.is_complex and resolved.sub is None:
            # only ``pr`` / ``eq null`` / ``ne null`` reach here (the evaluator refuses others)
            present = or_(
                *(
                    _present(
                        self._target(
                            ResolvedPath(resolved.schema, attribute, sub, resolved.is_extension),
                            expr.path,
                        )
                    )
                    for sub in attribute.sub_attributes
                )
            )
            wants_present = isinstance(expr, Present) or expr.op == "ne"
            return present if wants_present else not_(present)
        target = self._target(resolved, expr.path)
        if isinstance(expr, Present):
            return _present(target)
        return _compare(target, expr.op, expr.value, binder)

    def _multi_valued(
        self, resolved: ResolvedPath, expr: Compare | Present, binder: _Binder
    ) -> ColumnElement[bool]:
        """``emails.value co "x"`` / ``emails co "x"``: some element matches."""
        attribute = resolved.attribute
        assert attribute is not None
        whole = resolved.sub is None and (isinstance(expr, Present) or expr.value is None)
        if whole:  # ``emails pr``, ``emails eq null``: whether there is any element at all
            any_element = self._exists(resolved, None, binder)
            if isinstance(expr, Present) or expr.op == "ne":
                return any_element
            return not_(any_element)
        sub_name = resolved.sub.name if resolved.sub else "value"
        if isinstance(expr, Compare) and expr.value is None and expr.op == "eq":
            # ``emails.type eq null`` is exactly ``not (emails.type pr)``: no element has one
            # (not "some element lacks one"), as the evaluator reads it
            return not_(self._exists(resolved, Present(AttrPath(sub_name)), binder))
        inner: Expr = (
            Present(AttrPath(sub_name))
            if isinstance(expr, Present)
            else Compare(AttrPath(sub_name), expr.op, expr.value)
        )
        return self._exists(resolved, inner, binder)

    def _exists(
        self, resolved: ResolvedPath, inner: Expr | None, binder: _Binder
    ) -> ColumnElement[bool]:
        child = self.storage.child
        attribute = resolved.attribute
        assert child is not None
        assert attribute is not None
        row = aliased(child.model)
        conditions = [
            getattr(row, child.parent_fk) == getattr(self.model, self.storage.pk_column),
            row.org_id == bindparam("org_id"),
        ]
        if child.key_column is not None:
            conditions.append(getattr(row, child.key_column) == _child_key(resolved))
        if inner is not None:
            conditions.append(_ElementCompiler(row, child, attribute, binder).compile(inner))
        return exists().where(*conditions)

    # -- sorting -------------------------------------------------------------------------

    def sort_key(self, path: AttrPath) -> ColumnElement[Any]:
        """``sortBy`` (RFC 7644 §3.4.2.3): multi-valued attributes sort by their primary value,
        else their first one (the smallest, for elements kept as a set)."""
        try:
            return self._sort_key(path)
        except InvalidFilter as error:  # the attribute checks speak of filters: this is sortBy
            raise InvalidFilter(error.detail.replace("a filter", "sortBy")) from None

    def _sort_key(self, path: AttrPath) -> ColumnElement[Any]:
        resolved = self._resolve(path)
        attribute = resolved.attribute
        assert attribute is not None
        for named in (attribute, resolved.leaf):
            if named is not None:
                check_filterable(named, path)
        if attribute.multi_valued:
            child = self.storage.child
            assert child is not None
            row = aliased(child.model)
            sub_name = (resolved.sub.name if resolved.sub else "value").lower()
            column_name = child.columns.get(sub_name)
            sorted_by = attribute.sub(sub_name) if attribute.is_complex else attribute
            if sorted_by is not None and sorted_by.type in {"binary", "boolean"}:
                # binary: not indexed (``store.users``), and base64 has no order worth a sort;
                # boolean (``emails.primary``): the key is the primary element's, true for all
                raise InvalidFilter(f'cannot sort by "{path}": it is {sorted_by.type}')
            if column_name is None:
                raise InvalidFilter(f'cannot sort by "{path}"; sort by "{attribute.name}.value"')
            value = func.lower(getattr(row, column_name))
            owner = getattr(row, child.parent_fk) == getattr(self.model, self.storage.pk_column)
            if child.key_column is not None:
                owner = and_(owner, getattr(row, child.key_column) == _child_key(resolved))
            if child.order_column is None:
                first = select(func.min(value)).where(owner)
            else:
                first = select(value).where(owner).order_by(getattr(row, child.order_column))
                first = first.limit(1)
            if not hasattr(row, "primary"):
                return codepoint_order(first.scalar_subquery())
            primary = select(func.min(value)).where(owner, row.primary.is_(true()))
            return codepoint_order(
                func.coalesce(primary.scalar_subquery(), first.scalar_subquery())
            )
        if attribute.is_complex and resolved.sub is None:
            raise InvalidFilter(f'cannot sort by "{path}": name one of its sub-attributes')
        target = self._target(resolved, path)
        if target.type in _STRING_TYPES:
            expr = target.expr if target.case_exact else func.lower(target.expr)
            return codepoint_order(expr)
        return target.expr

    def sort_key_nullable(self, path: AttrPath) -> bool:
        """Whether ``sort_key(path)`` can be NULL: only a NOT NULL column (``userName``,
        ``meta.created``) cannot, and then a keyset seek needs no ``OR key IS NULL`` branch,
        which would keep the database from seeking in an index on the key."""
        resolved = self._resolve(path)
        attribute = resolved.attribute
        assert attribute is not None
        if attribute.multi_valued or (attribute.is_complex and resolved.sub is None):
            return True
        return self._target(resolved, path).nullable


class _ElementCompiler:
    """Compiles the filter inside ``attr[...]`` against one child row."""

    def __init__(
        self, row: Any, child: ChildStorage, attribute: Attribute, binder: _Binder
    ) -> None:
        self._row = row
        self._child = child
        self._attribute = attribute
        self._binder = binder

    def _target(self, path: AttrPath) -> Target:
        attribute = self._attribute
        if not attribute.is_complex:  # simple multi-valued attribute: the element itself
            if attribute.type == "binary" and hasattr(self._row, "data"):  # not indexed
                expr = _json_value(self._row.data["value"], "binary")
                return Target(expr, "binary", attribute.case_exact)
            return Target(self._row.value, attribute.type, attribute.case_exact)
        sub = attribute.sub(path.attr)
        assert sub is not None  # the evaluator has checked every name
        column_name = self._child.columns.get(sub.name.lower())
        if sub.type == "binary":  # not indexed (a certificate outgrows an index entry): the JSON
            column_name = None
        if column_name is not None:
            return Target(getattr(self._row, column_name), sub.type, sub.case_exact)
        if not hasattr(self._row, "data"):
            raise InvalidFilter(
                f'"{self._attribute.name}.{sub.name}" cannot be used in a filter; '
                f'filter on "{self._attribute.name}.value"'
            )
        return Target(_json_value(self._row.data[sub.name], sub.type), sub.type, sub.case_exact)

    def compile(self, expr: Expr) -> ColumnElement[bool]:
        if isinstance(expr, And):
            return and_(self.compile(expr.left), self.compile(expr.right))
        if isinstance(expr, Or):
            return or_(self.compile(expr.left), self.compile(expr.right))
        if isinstance(expr, Not):
            return not_(self.compile(expr.expr))
        if isinstance(expr, ValuePath):  # pragma: no cover - refused by the parser
            raise InvalidFilter("value paths cannot be nested")
        target = self._target(expr.path)
        if isinstance(expr, Present):
            return _present(target)
        return _compare(target, expr.op, expr.value, self._binder)
