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

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from scim_server.scim import cursor
from scim_server.scim.listing import ListQuery
from scim_server.services.context import RequestContext
from scim_server.services.resources import Page
from scim_server.store import keyset


def index_page(
    session: Session,
    query: ListQuery,
    *,
    statement: Select[Any],
    count_statement: Select[Any],
) -> tuple[int, list[Any]]:
    """``totalResults`` and the rows of the ``startIndex`` page of ``statement`` (ordered)."""
    if query.count <= 0:  # count=0 asks for the total alone (RFC 7644 §3.4.2.4)
        return session.scalar(count_statement) or 0, []
    skipped = query.start_index - 1
    rows = list(session.execute(statement.offset(skipped).limit(query.count)))
    if len(rows) < query.count and (rows or skipped == 0):
        return skipped + len(rows), rows
    return session.scalar(count_statement) or 0, rows


def cursor_page(
    session: Session,
    ctx: RequestContext,
    resource_type: str,
    query: ListQuery,
    *,
    statement: Select[Any],
    count_statement: Select[Any],
    key: ColumnElement[Any] | None,
    key_nullable: bool,
    pk: InstrumentedAttribute[int],
    render: Callable[[Sequence[Sequence[Any]]], list[dict[str, Any]]],
) -> Page:
    """One cursor page of ``statement``; ``render`` gets the rows as ``statement`` selects them."""
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
    page = keyset.seek(
        statement,
        key=key,
        pk=pk,
        descending=descending,
        after=after,
        limit=query.count + 1,
        nullable=key_nullable,
    )
    rows = list(session.execute(page))
    more = len(rows) > query.count
    total = None
    if after is None:  # the first page of a walk says how many there are
        total = len(rows) if not more else (session.scalar(count_statement) or 0)
    rows = rows[: query.count]
    next_cursor = None
    if more and rows:
        position = keyset.position_of(rows[-1], keyed=key is not None)
        next_cursor = cursor.encode(settings, scope, position, time.time())
    extra = keyset.extra_columns(keyed=key is not None)
    resources = render([tuple(row)[:-extra] for row in rows])
    return Page(total=total, start_index=None, resources=resources, next_cursor=next_cursor)
