"""``POST /.search`` at the root (RFC 7644 §3.4.3): one query across every served resource type.

Results are the concatenation of each type's results in a fixed order (Users, then Groups), each
sorted by ``sortBy`` within its type; ``startIndex``/``count`` page over that concatenation. A
filter naming an attribute one type lacks simply matches nothing of that type; a filter that no
type understands is a 400 ``invalidFilter``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from scim_server.scim.errors import InvalidFilter
from scim_server.scim.listing import ListQuery
from scim_server.services import groups, users
from scim_server.services.context import RequestContext
from scim_server.services.resources import Page

Lister = Callable[[Session, RequestContext, ListQuery], Page]

LISTERS: tuple[Lister, ...] = (users.list_users, groups.list_groups)


def search_all(session: Session, ctx: RequestContext, query: ListQuery) -> Page:
    totals: list[tuple[Lister, int]] = []
    errors: list[InvalidFilter] = []
    for lister in LISTERS:
        try:
            counted = lister(session, ctx, dataclasses.replace(query, start_index=1, count=0))
        except InvalidFilter as error:
            errors.append(error)
            continue
        totals.append((lister, counted.total or 0))
    if not totals:
        raise errors[0]
    total = sum(count for _, count in totals)
    resources: list[dict[str, Any]] = []
    offset = query.start_index - 1  # into the concatenation
    wanted = query.count
    for lister, count in totals:
        if wanted <= 0:
            break
        if offset >= count:
            offset -= count
            continue
        page = lister(
            session, ctx, dataclasses.replace(query, start_index=offset + 1, count=wanted)
        )
        resources.extend(page.resources)
        wanted -= len(page.resources)
        offset = 0
    return Page(total=total, start_index=query.start_index, resources=resources)
