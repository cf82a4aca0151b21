"""What every resource type's use cases share: versions, preconditions, rendered pages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scim_server.scim.errors import PreconditionFailed


def is_resource_id(text: str) -> bool:
    """Whether ``text`` could name a stored resource: ids are UUIDs, so anything else exists
    nowhere and is answered without a query (and never reaches a bound parameter)."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def iso(moment: datetime) -> str:
    """``meta.created``/``meta.lastModified``: UTC, ``Z``, to the microsecond as stored, so
    that a client filtering with the value it was shown (``meta.lastModified gt "..."``, a
    delta sync) compares with the stored time, not one rounded down from it."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def etag_of(version: int) -> str:
    return f'W/"{version}"'


def check_if_match(if_match: str | None, current: str) -> None:
    """RFC 7644 §3.14 / RFC 9110 §13.1.1: a stale ``If-Match`` answers 412, nothing changes."""
    if if_match is None:
        return
    candidates = [tag.strip() for tag in if_match.split(",")]
    if "*" in candidates:
        return
    opaque = current.removeprefix("W/")
    if not any(tag.removeprefix("W/") == opaque for tag in candidates):
        raise PreconditionFailed(
            f"If-Match {if_match} does not match the current version {current} of the resource"
        )


@dataclass(frozen=True)
class Page:
    """One page of a list or search (RFC 7644 §3.4.2), before it is wrapped in a ListResponse.

    A cursor page (RFC 9865) has no ``start_index``, a ``next_cursor`` unless it is the last
    page, and a ``total`` only on the first page of a walk (``services.paging``).
    """

    total: int | None
    start_index: int | None
    resources: list[dict[str, Any]]
    next_cursor: str | None = None
