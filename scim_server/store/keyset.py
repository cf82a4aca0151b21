"""Keyset ("seek") pages: the rows after a position, never ``OFFSET`` (DESIGN §4.2, RFC 9865).

A page is ordered by ``(sort key, primary key)`` — ascending or descending, NULL sort keys last
in both directions, exactly as index paging orders them — and starts strictly after the
position of the previous page's last row. The database seeks to it instead of reading and
discarding the rows before it, so a page near the end costs what the first one does, and rows
inserted or deleted between two pages cannot shift a row into a page twice or out of every page.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from scim_server.scim.cursor import Position


def _after(
    key: ColumnElement[Any] | None,
    pk: InstrumentedAttribute[int],
    descending: bool,
    position: Position,
    nullable: bool,
) -> ColumnElement[bool]:
    beyond_pk = pk < position.pk if descending else pk > position.pk
    if key is None:
        return beyond_pk
    if position.key is None:  # already among the NULL sort keys, which come last
        return and_(key.is_(None), beyond_pk)
    # ``key >= k AND (key > k OR pk > p)`` rather than ``key > k OR (key = k AND pk > p)``: the
    # same rows, but the leading range lets the database seek in an index on the key
    if descending:
        beyond = and_(key <= position.key, or_(key < position.key, beyond_pk))
    else:
        beyond = and_(key >= position.key, or_(key > position.key, beyond_pk))
    return or_(beyond, key.is_(None)) if nullable else beyond


def seek(
    statement: Select[Any],
    *,
    key: ColumnElement[Any] | None,
    pk: InstrumentedAttribute[int],
    descending: bool,
    after: Position | None,
    limit: int,
    nullable: bool = True,
) -> Select[Any]:
    """``statement`` ordered for keyset paging, after ``after``, at most ``limit`` rows.

    The sort key (when there is one) and the primary key are appended as the last columns, so
    :func:`position_of` can read where the page ended. ``nullable``: whether the key can be
    NULL (NULLs come after every value, in both directions).
    """
    if key is not None:
        order = key.desc().nulls_last() if descending else key.asc().nulls_last()
        statement = statement.add_columns(key).order_by(order)
    statement = statement.add_columns(pk).order_by(pk.desc() if descending else pk.asc())
    if after is not None:
        statement = statement.where(_after(key, pk, descending, after, nullable))
    return statement.limit(limit)


def position_of(row: Any, *, keyed: bool) -> Position:
    """The position of a row selected by :func:`seek`."""
    values = tuple(row)
    return Position(values[-2] if keyed else None, int(values[-1]))


def extra_columns(*, keyed: bool) -> int:
    """How many columns :func:`seek` appended."""
    return 2 if keyed else 1
