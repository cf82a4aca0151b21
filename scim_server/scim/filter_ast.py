"""The project's own filter AST (RFC 7644 §3.4.2.2), independent of the parser library.

``scim.filter`` builds it from text; ``store.filters`` compiles it to SQLAlchemy and
``scim.filter_eval`` evaluates it against one in-memory document (PATCH value paths).
Operators are lower case; values are typed JSON literals (str, int, float, bool, None).
"""

from __future__ import annotations

from dataclasses import dataclass

COMPARISON_OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})

Literal = str | int | float | bool | None


@dataclass(frozen=True)
class AttrPath:
    """``[uri:]attr[.sub]`` exactly as written (case preserved); resolution is the consumer's."""

    attr: str
    sub: str | None = None
    uri: str | None = None

    def __str__(self) -> str:
        text = f"{self.uri}:{self.attr}" if self.uri else self.attr
        return f"{text}.{self.sub}" if self.sub else text


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str
    value: Literal


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    expr: Expr


@dataclass(frozen=True)
class ValuePath:
    """``attr[filter]``: some element of multi-valued ``attr`` satisfies ``filter``.

    ``filter`` paths are relative to the element (``type``, ``value``), never qualified.
    A trailing ``.sub`` in a *filter* (``emails[type eq "work"].value eq "x"``) is rewritten by
    the parser as ``emails[type eq "work" and value eq "x"]``.
    """

    path: AttrPath
    filter: Expr


Expr = Compare | Present | And | Or | Not | ValuePath


def comparisons(expr: Expr) -> int:
    """How many comparisons (``pr`` included) ``expr`` holds: the measure of its size."""
    if isinstance(expr, Compare | Present):
        return 1
    if isinstance(expr, And | Or):
        return comparisons(expr.left) + comparisons(expr.right)
    if isinstance(expr, Not):
        return comparisons(expr.expr)
    return comparisons(expr.filter)


@dataclass(frozen=True)
class PatchPath:
    """A PATCH ``path`` (RFC 7644 §3.5.2): ``attrPath`` or ``valuePath[.subAttr]``.

    ``attr`` carries the URN and top-level attribute (and sub-attribute when there is no value
    filter); ``value_filter`` is the bracketed filter; ``sub`` is the sub-attribute after the
    bracket (``emails[type eq "work"].value`` -> sub ``value``).
    """

    attr: AttrPath
    value_filter: Expr | None = None
    sub: str | None = None
