"""Auditor use cases over the provisioning log: pages, streamed exports, verification, pruning."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select

from scim_server.audit import chain, query
from scim_server.audit.events import EventDraft
from scim_server.audit.prune import PruneResult, prune
from scim_server.audit.signing import SigningKey
from scim_server.scim.schema import Registry
from scim_server.store.db import Database
from scim_server.store.models import SYSTEM_CHAIN, Organization


def page_events(
    database: Database,
    registry: Registry,
    org_id: int,
    *,
    filter_text: str | None,
    cursor: str | None,
    count: int,
) -> query.EventPage:
    with database.transaction(write=False) as session:
        return query.search(
            session, registry, org_id, filter_text=filter_text, cursor=cursor, count=count
        )


def export_events(
    database: Database, registry: Registry, org_id: int, filter_text: str | None, fmt: str
) -> Iterator[str]:
    """The export as an iterator of text chunks; bad parameters fail before the first chunk."""
    query.check_filter(registry, org_id, filter_text)  # a bad filter is a 400, not a broken stream
    query.export_lines(iter(()), fmt)  # likewise a bad format

    def chunks() -> Iterator[str]:
        with database.transaction(write=False) as session:
            yield from query.export_lines(query.stream(session, registry, org_id, filter_text), fmt)

    return chunks()


def verify_chain(
    database: Database,
    org_id: int,
    anchor: tuple[int, str] | None = None,
    keys: tuple[SigningKey, ...] = (),
) -> chain.Verification:
    with database.transaction(write=False) as session:
        if not database.is_sqlite:
            # one snapshot for the head and the events: under READ COMMITTED, events appended
            # by a live server between the two reads looked "added outside the log"
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return chain.verify(session, org_id, anchor, keys)


def prune_events(
    database: Database, draft: EventDraft, before: datetime, key: SigningKey | None
) -> PruneResult:
    with database.transaction(write=True) as session:
        return prune(session, draft, before, key)


def sign_checkpoint(database: Database, draft: EventDraft, key: SigningKey) -> chain.Sealed:
    """A signed checkpoint at the end of ``draft.org_id``'s log: whoever rewrites any event
    before it and reseals the chain cannot sign again, and ``audit verify`` shows it."""
    with database.transaction(write=True) as session:
        return chain.append_checkpoint(session, draft, key)


def every_log(database: Database) -> list[tuple[int, str | None]]:
    """(chain id, organisation slug) of every log: the system log (slug None), then each
    organisation's by slug."""
    with database.transaction(write=False) as session:
        organizations = session.execute(
            select(Organization.id, Organization.slug).order_by(Organization.slug)
        ).all()
    return [(SYSTEM_CHAIN, None), *((org_id, slug) for org_id, slug in organizations)]
