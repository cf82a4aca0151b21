"""Pages of ``/Users`` and ``/Groups``, shared by both use cases: ``startIndex`` pages, and cursor
pages (RFC 9865, DESIGN §4.2).

Either kind reads the page first and counts only when the page cannot tell the total: a page
shorter than asked for ends the result set, so ``totalResults`` is what precedes it plus its
length. The lookups IdPs send most (``userName eq``, ``externalId eq``: no or one match) are one
statement, not a ``COUNT`` and a page.

A request with ``cursor`` (empty for the first page) is answered by a keyset seek after the
position its cursor names, one row more than ``count`` to learn whether ``nextCursor`` is due.

``totalResults`` is counted on the first page of a walk only (the empty cursor). RFC 9865 §2
lets a cursor page omit it, and a ``COUNT`` is the one cost of a page that grows with the
matching rows (about 23 ms at 100,000 users on both databases, twice the rest of the page;
docs/PERFORMANCE.md): a client walking every user learns the total once, and every later page
costs the same whatever the table's size.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from scim_server.scim import cursor
from scim_server.scim.filter_ast import AttrPath, Expr
from scim_server.scim.listing import ListQuery
from scim_server.scim.schema import ResourceType
from scim_server.services.context import RequestContext
from scim_server.services.resources import Page
from scim_server.store import keyset
from scim_server.store.filters import (
    FilterCompiler,
    PreparedFilter,
    ResourceStorage,
    execution_options,
    shape_of,
    worth_remembering,
)


@dataclass(frozen=True)
class Listing:
    """The statements of one kind of list request (resource type, filter shape, sort), built
    once: a statement built per request had its cache key walked by SQLAlchemy every time, and
    building it was a fifth of a ``userName eq`` request (issue #7). Each binds ``org_id``, the
    filter's slots (``filter``), and the page's ``offset`` and ``limit``."""

    #: the matching rows, unordered: cursor pages seek on it
    matching: Select[Any]
    #: the matching rows in page order, ``OFFSET :offset LIMIT :limit``
    page: Select[Any]
    count: Select[Any]
    key: ColumnElement[Any] | None
    key_nullable: bool
    filter: PreparedFilter | None
    #: the primary key, the last of the keyset order
    pk: InstrumentedAttribute[int]
    #: what every statement of the listing runs with (``store.filters.execution_options``)
    options: Mapping[str, Any]


#: Listings remembered per process. A key holds a resource type, a filter's shape (attribute
#: names, operators, no value: see ``store.filters.shape_of``) and a sort, never an
#: organisation's data. IdPs and auditors use a handful of shapes; a client making up shapes
#: only recycles these (``bench/filter_memory.py``).
_LISTINGS = 64


class _Same:
    """A cache key that is its object's identity (resource types, storages and sources hold
    SQL expressions or dicts, whose ``==`` and hash would be wrong or costly); it holds the
    object, so while the key is remembered its id cannot be another object's."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


@dataclass(frozen=True)
class ListSource:
    """What one resource type's list requests select: ``columns``, from the rows of ``pk``'s
    table that meet ``conditions`` (which bind ``org_id``)."""

    columns: tuple[Any, ...]
    pk: InstrumentedAttribute[int]
    conditions: tuple[ColumnElement[bool], ...]


def _build_listing(
    source: ListSource,
    compiler: FilterCompiler,
    prepared: PreparedFilter | None,
    sort_by: AttrPath | None,
    descending: bool,
    options: Mapping[str, Any],
) -> Listing:
    conditions = [*source.conditions]
    if prepared is not None:
        conditions.append(prepared.condition)
    key = compiler.sort_key(sort_by) if sort_by is not None else None
    pk = source.pk
    matching = select(*source.columns).where(*conditions)
    if key is not None:
        ordered = matching.order_by(
            key.desc().nulls_last() if descending else key.asc().nulls_last(),
            pk.desc() if descending else pk.asc(),
        )
    else:
        ordered = matching.order_by(pk)
    return Listing(
        matching=matching,
        page=ordered.offset(bindparam("offset")).limit(bindparam("limit")),
        count=select(func.count()).select_from(pk.class_).where(*conditions),
        key=key,
        key_nullable=sort_by is None or compiler.sort_key_nullable(sort_by),
        filter=prepared,
        pk=pk,
        options=options,
    )


def prepared_listing(
    rt: ResourceType, storage: ResourceStorage, source: ListSource, query: ListQuery, org_id: int
) -> tuple[Listing, dict[str, Any]]:
    """The listing of ``query``'s kind, built on first use, and the request's parameters
    (``org_id`` and the filter's).

    The filter is checked on every request (refusals depend on its literals, a dateTime's
    format for one); then only its literals and the organisation are bound.
    """
    shape: Expr | None = None
    values: tuple[Any, ...] = ()
    if query.filter is not None:
        FilterCompiler(rt, storage).check(query.filter)
        shape, values = shape_of(query.filter)
    remembered = shape is None or worth_remembering(shape)
    build = _listing if remembered else _listing.__wrapped__  # a large one: this request alone
    listing = build(
        _Same(rt), _Same(storage), _Same(source), shape, query.sort_by, query.descending
    )
    parameters = listing.filter.parameters(values) if listing.filter is not None else {}
    parameters["org_id"] = org_id
    return listing, parameters


@functools.lru_cache(maxsize=_LISTINGS)
def _listing(
    rt: _Same,
    storage: _Same,
    source: _Same,
    shape: Expr | None,
    sort_by: AttrPath | None,
    descending: bool,
) -> Listing:
    """Built on first use and remembered; a build that raises (a bad sortBy) is not. A large
    filter's is built through ``_listing.__wrapped__``, for its request alone."""
    compiler = FilterCompiler(rt.obj, storage.obj)
    prepared = compiler.prepare(shape) if shape is not None else None
    options = execution_options(shape)
    return _build_listing(source.obj, compiler, prepared, sort_by, descending, options)


def _count(session: Session, listing: Listing, parameters: dict[str, Any]) -> int:
    return session.scalar(listing.count, parameters, execution_options=listing.options) or 0


def index_page(
    session: Session,
    query: ListQuery,
    listing: Listing,
    parameters: dict[str, Any],
) -> tuple[int, list[Any]]:
    """``totalResults`` and the rows of the ``startIndex`` page of ``listing``."""
    if query.count <= 0:  # count=0 asks for the total alone (RFC 7644 §3.4.2.4)
        return _count(session, listing, parameters), []
    skipped = query.start_index - 1
    page = {**parameters, "offset": skipped, "limit": query.count}
    rows = list(session.execute(listing.page, page, execution_options=listing.options))
    if len(rows) < query.count and (rows or skipped == 0):
        return skipped + len(rows), rows
    return _count(session, listing, parameters), rows


def cursor_page(
    session: Session,
    ctx: RequestContext,
    resource_type: str,
    query: ListQuery,
    listing: Listing,
    parameters: dict[str, Any],
    render: Callable[[Sequence[Sequence[Any]]], list[dict[str, Any]]],
) -> Page:
    """One cursor page of ``listing``; ``render`` gets the rows as ``listing.matching`` selects
    them."""
    assert query.cursor is not None
    # sortOrder only qualifies sortBy (RFC 7644 §3.4.2.3): without it both paging methods
    # walk in the server's one default order, ascending
    descending = query.descending and query.sort_by is not None
    scope = cursor.query_scope(
        ctx.principal.org_id, resource_type, query.filter, query.sort_by, descending
    )
    settings = ctx.cursors
    after = None
    if query.cursor != "":
        after = cursor.decode(settings, scope, query.cursor, time.time())
    key = listing.key
    page = keyset.seek(
        listing.matching,
        key=key,
        pk=listing.pk,
        descending=descending,
        after=after,
        limit=query.count + 1,
        nullable=listing.key_nullable,
    )
    rows = list(session.execute(page, parameters, execution_options=listing.options))
    more = len(rows) > query.count
    total = None
    if after is None:  # the first page of a walk says how many there are
        total = len(rows) if not more else _count(session, listing, parameters)
    rows = rows[: query.count]
    next_cursor = None
    if more and rows:
        position = keyset.position_of(rows[-1], keyed=key is not None)
        next_cursor = cursor.encode(settings, scope, position, time.time())
    extra = keyset.extra_columns(keyed=key is not None)
    resources = render([tuple(row)[:-extra] for row in rows])
    return Page(total=total, start_index=None, resources=resources, next_cursor=next_cursor)
