"""List and search parameters (RFC 7644 §3.4.2 and §3.4.3), parsed once for GET and POST .search.

Query-string values are text; a SearchRequest body carries JSON types. Both become one
:class:`ListQuery`, so ``GET /Users?...`` and ``POST /Users/.search`` can never disagree.

Paging is by index (``startIndex``, the default) or by cursor (RFC 9865 §2: ``cursor``, empty
for the first page). The two cannot be mixed; under a cursor ``count`` must be 1..maxPageSize
(RFC 9865 §2.1 ``invalidCount``), where index paging keeps RFC 7644's ``count=0``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scim_server.scim.dialects import parse_normalised_filter
from scim_server.scim.errors import (
    InvalidCount,
    InvalidCursor,
    InvalidFilter,
    InvalidSyntax,
    InvalidValue,
)
from scim_server.scim.filter import client_text, parse_filter
from scim_server.scim.filter_ast import AttrPath, Expr

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

_SEARCH_KEYS = {
    "schemas",
    "attributes",
    "excludedattributes",
    "filter",
    "sortby",
    "sortorder",
    "startindex",
    "count",
    "cursor",
}


@dataclass(frozen=True)
class ListQuery:
    filter: Expr | None
    sort_by: AttrPath | None
    descending: bool
    start_index: int
    count: int
    attributes: str | None
    excluded_attributes: str | None
    #: None: index paging; "" : the first page of a cursor walk; else a ``nextCursor``
    cursor: str | None = None


@dataclass(frozen=True)
class Limits:
    default_count: int
    max_count: int
    max_filter_length: int


#: The largest ``startIndex`` (and audit cursor position) taken: what both databases' BIGINT
#: hold; a larger one overflowed its bound parameter (a 500). A start past the last resource is
#: an empty page, however far.
MAX_INTEGER = 2**63 - 1


def integer_parameter(name: str, raw: Any, *, capped: bool = False) -> int:
    """``raw`` as an integer up to :data:`MAX_INTEGER`; a larger one is refused, or with
    ``capped`` (``count``: a page may hold fewer than asked) is that maximum."""
    value = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if isinstance(raw, str):
        text = raw.strip()
        digits = text.removeprefix("-").removeprefix("+").lstrip("0")
        if capped and digits.isascii() and digits.isdigit() and len(digits) > 19:
            # not int(): Python refuses more than 4,300 digits; a negative count reads as 0
            return 0 if text.startswith("-") else MAX_INTEGER
        # ASCII digits only: int() also reads other scripts' digits and "1_000"; past 4,300
        # digits it refuses
        if re.fullmatch(r"[+-]?[0-9]+", text):
            with contextlib.suppress(ValueError):
                value = int(text)
    if value is None:
        raise InvalidValue(f'"{name}" must be an integer, got {repr(raw)[:64]}')
    if value > MAX_INTEGER:
        if capped:
            return MAX_INTEGER
        raise InvalidValue(f'"{name}" is {value}; the largest this server takes is {MAX_INTEGER}')
    return value


def _as_attribute_list(name: str, raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return ",".join(raw)
    if isinstance(raw, str):
        return raw
    raise InvalidValue(f'"{name}" must be a list of attribute names')


def _parse_sort_by(raw: str) -> AttrPath:
    """A sort attribute is a filter attribute path: parse ``<path> pr`` to reuse the grammar."""
    try:
        expr = parse_filter(f"{raw} pr")
    except InvalidFilter:
        raise InvalidValue(f'"sortBy" is not an attribute path: {client_text(raw)}') from None
    path = getattr(expr, "path", None)
    if not isinstance(path, AttrPath) or type(expr).__name__ != "Present":
        raise InvalidValue(f'"sortBy" is not an attribute path: {client_text(raw)}')
    return path


def parse_list_query(params: Mapping[str, Any], limits: Limits) -> ListQuery:
    """Parameters by their RFC names (any case), from a query string or a SearchRequest."""
    values = {key.lower(): value for key, value in params.items()}

    filter_text = values.get("filter")
    expr: Expr | None = None
    if filter_text is not None:
        if not isinstance(filter_text, str):
            raise InvalidFilter('"filter" must be a string')
        if len(filter_text) > limits.max_filter_length:
            raise InvalidFilter(
                f"filter is {len(filter_text)} characters long; "
                f"the maximum is {limits.max_filter_length}"
            )
        expr = parse_normalised_filter(filter_text)

    sort_by_raw = values.get("sortby")
    sort_by = None
    if sort_by_raw not in (None, ""):
        if not isinstance(sort_by_raw, str):
            raise InvalidValue('"sortBy" must be a string')
        sort_by = _parse_sort_by(sort_by_raw)

    order = values.get("sortorder")
    if order in (None, ""):
        descending = False
    elif isinstance(order, str) and order.lower() in {"ascending", "descending"}:
        descending = order.lower() == "descending"
    else:
        raise InvalidValue(f'"sortOrder" must be "ascending" or "descending", got {order!r}')

    start_raw = values.get("startindex")
    # RFC 7644 §3.4.2.4: a value less than 1 is interpreted as 1.
    start_index = 1
    if start_raw not in (None, ""):
        start_index = max(1, integer_parameter("startIndex", start_raw))

    cursor = values.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise InvalidCursor(
            '"cursor" must be a string: empty for the first page, then a nextCursor'
        )
    if cursor is not None and start_raw not in (None, ""):
        # RFC 9865 §2: the parameter present chooses the paging method; both is a contradiction
        raise InvalidValue(
            '"cursor" and "startIndex" cannot be used together: page by cursor (RFC 9865) '
            "or by index (RFC 7644), not both"
        )

    count_raw = values.get("count")
    if count_raw in (None, ""):
        count = limits.default_count
    elif cursor is not None:
        try:
            count = integer_parameter("count", count_raw)
        except InvalidValue as error:
            raise InvalidCount(error.detail) from None
        if not 1 <= count <= limits.max_count:
            raise InvalidCount(
                f'"count" is {count}; with a cursor it must be between 1 and {limits.max_count} '
                "(ServiceProviderConfig pagination.maxPageSize)"
            )
    else:
        # RFC 7644 §3.4.2.4: a negative value is interpreted as 0; a page may hold fewer
        # results than asked (itemsPerPage says how many), so a larger count is capped
        # (DESIGN §4) at filter.maxResults. A cursor's count is refused instead (RFC 9865).
        count = min(max(0, integer_parameter("count", count_raw, capped=True)), limits.max_count)

    attributes = _as_attribute_list("attributes", values.get("attributes"))
    excluded = _as_attribute_list("excludedAttributes", values.get("excludedattributes"))
    if attributes and excluded:
        raise InvalidValue('"attributes" and "excludedAttributes" cannot be used together')
    return ListQuery(
        filter=expr,
        sort_by=sort_by,
        descending=descending,
        start_index=start_index,
        count=count,
        attributes=attributes or None,
        excluded_attributes=excluded or None,
        cursor=cursor,
    )


def parse_search_request(body: Any, limits: Limits) -> ListQuery:
    """A ``POST .search`` body (RFC 7644 §3.4.3)."""
    if not isinstance(body, dict):
        raise InvalidSyntax("a SearchRequest body must be a JSON object")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or SEARCH_REQUEST.lower() not in {
        str(s).lower() for s in schemas
    }:
        raise InvalidSyntax(f'a SearchRequest must list "{SEARCH_REQUEST}" in "schemas"')
    unknown = [key for key in body if key.lower() not in _SEARCH_KEYS]
    if unknown:
        raise InvalidSyntax(f'unknown SearchRequest attribute "{unknown[0]}"')
    return parse_list_query(body, limits)
