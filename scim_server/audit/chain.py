"""The hash chain of the provisioning log (DESIGN §6): append and verify.

Each event's hash is SHA-256 over its canonical form, which includes the previous event's hash
and its own sequence number. Editing, inserting or deleting any event changes a hash that a later
event (or the chain head) has sealed, and ``verify`` names the first event where that shows.

Appending takes the organisation's chain head row ``FOR UPDATE`` in the caller's transaction:
events of concurrent writers (several gunicorn workers on PostgreSQL) get consecutive sequence
numbers and never fork the chain; on SQLite the write transaction already holds the lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from scim_server.audit import signing
from scim_server.audit.events import MAX_DETAIL, EventDraft, redact
from scim_server.scim.wire import storable, unstorable
from scim_server.store.models import AuditChain, AuditEvent
from scim_server.store.types import utcnow

GENESIS = "0" * 64


#: Fields sealed by the hash, in the order they appear in exports.
SEALED_FIELDS = (
    "org_id",
    "seq",
    "time",
    "actor_type",
    "actor",
    "token_prefix",
    "request_id",
    "client_ip",
    "user_agent",
    "operation",
    "outcome",
    "status",
    "scim_type",
    "detail",
    "resource_type",
    "resource_id",
    "user_name",
    "changes",
    "prev_hash",
)

# append() runs for every request: its three statements are built once (Core, not the ORM).
_EVENTS = AuditEvent.metadata.tables[AuditEvent.__tablename__]
_CHAINS = AuditChain.metadata.tables[AuditChain.__tablename__]
_HEAD = (
    select(_CHAINS.c.last_seq, _CHAINS.c.last_hash)
    .where(_CHAINS.c.org_id == bindparam("org_id"))
    .with_for_update()
)
_INSERT_EVENT = insert(_EVENTS)
_ADVANCE_HEAD = (
    update(_CHAINS)
    .where(_CHAINS.c.org_id == bindparam("head_org_id"))
    .values(last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))
)


def _time_text(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical_fields(event: AuditEvent) -> dict[str, Any]:
    """The sealed fields of a stored event, as JSON-ready values."""
    fields = {name: getattr(event, name) for name in SEALED_FIELDS}
    fields["time"] = _time_text(event.time)
    return fields


#: ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, prebuilt
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(fields: dict[str, Any]) -> str:
    canonical = _CANONICAL.encode(fields)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Sealed:
    """An appended event's place in its chain."""

    seq: int
    hash: str


def create_chain(session: Session, org_id: int) -> None:
    """The empty chain of a new organisation (the migration creates the system chain)."""
    session.add(AuditChain(org_id=org_id, last_seq=0, last_hash=GENESIS))
    session.flush()


def append(session: Session, draft: EventDraft) -> Sealed:
    """Seal ``draft`` as the next event of its organisation's chain, in the caller's transaction.

    Every request writes one event, reads included, so this is on every hot path: the head is
    read as two columns and the event and the new head are written with one INSERT and one
    UPDATE each, not through the ORM's unit of work (measured: a third of the cost of a GET).
    Returns where the event stands in the chain.

    The chain head is locked last: whatever the ORM still holds for this transaction is flushed
    first (a no-op on every path today), so a write never waits on another transaction's rows
    while holding the organisation's head, which every other request of it needs.
    """
    return append_all(session, [draft])[0]


def append_checkpoint(
    session: Session, draft: EventDraft, key: signing.SigningKey | None
) -> Sealed:
    """Seal a checkpoint event, signed under ``key`` (``audit.signing``) when one is given.

    The signature covers the place the event takes in the chain and where the log starts
    (``logStart``: a prefix removed later shows, whatever record claims it was pruned), so the
    head is locked first and read in this transaction; :func:`append` then finds it as it was.
    A prune calls this after its deletion: what it signs is the log's new start.
    """
    if key is not None:
        session.flush()
        connection = session.connection()
        head = connection.execute(_HEAD, {"org_id": draft.org_id}).first()
        if head is None:
            raise RuntimeError(f"organisation {draft.org_id} has no audit chain")
        last_seq, last_hash = head
        first = connection.execute(_FIRST_EVENT, {"org_id": draft.org_id}).first()
        start_seq, start_prev = first if first is not None else (last_seq + 1, last_hash)
        content = {
            **redact(draft.changes or {}),
            signing.SIGNED_AT: _time_text(utcnow()),
            signing.LOG_START: {"seq": start_seq, "prevHash": start_prev},
        }
        draft.changes = signing.signed_changes(key, draft.org_id, last_seq + 1, last_hash, content)
    return append(session, draft)


_FIRST_EVENT = (
    select(_EVENTS.c.seq, _EVENTS.c.prev_hash)
    .where(_EVENTS.c.org_id == bindparam("org_id"))
    .order_by(_EVENTS.c.seq)
    .limit(1)
)


def append_all(session: Session, drafts: list[EventDraft]) -> list[Sealed]:
    """Seal several events in the caller's transaction: each organisation's head is locked and
    advanced once, and the events are inserted with one statement (group commit of the events
    of concurrent reads, ``audit.recorder``).

    Heads are locked in organisation order, so two batches of several organisations can never
    wait on each other; an organisation's events keep the order of ``drafts``.
    """
    session.flush()
    sealed = append_rows(session.connection(), drafts)
    for org_id in {draft.org_id for draft in drafts}:
        loaded = session.identity_map.get(identity_key(AuditChain, org_id))
        if loaded is not None:  # a head this session holds as an object: reload it when read
            session.expire(loaded)
    return sealed


def append_rows(connection: Connection, drafts: list[EventDraft]) -> list[Sealed]:
    """:func:`append_all` on a connection in its transaction, for a transaction that holds no
    ORM state: the audit recorder's own, which seals the events of reads (a session there
    cost a tenth of a GET's event)."""
    for draft in drafts:
        if draft.recorded:
            raise RuntimeError(f"audit event {draft.operation} recorded twice")
    by_org: dict[int, list[EventDraft]] = {}
    for draft in drafts:
        by_org.setdefault(draft.org_id, []).append(draft)
    sealed: dict[int, Sealed] = {}
    rows: list[dict[str, Any]] = []
    heads: list[dict[str, Any]] = []
    for org_id in sorted(by_org):
        head = connection.execute(_HEAD, {"org_id": org_id}).first()
        if head is None:
            raise RuntimeError(f"organisation {org_id} has no audit chain")
        last_seq, last_hash = head
        for draft in by_org[org_id]:
            row = _seal(draft, last_seq + 1, last_hash)
            last_seq, last_hash = row["seq"], row["hash"]
            sealed[id(draft)] = Sealed(last_seq, last_hash)
            rows.append(row)
        heads.append({"head_org_id": org_id, "new_seq": last_seq, "new_hash": last_hash})
    connection.execute(_INSERT_EVENT, rows)
    connection.execute(_ADVANCE_HEAD, heads)
    for draft in drafts:
        draft.recorded = True
    return [sealed[id(draft)] for draft in drafts]


def _seal(draft: EventDraft, seq: int, prev_hash: str) -> dict[str, Any]:
    """The event's row, hash included: a plain dict (an ORM object's instrumented attributes
    cost more than the hash on this path), hashed over the same canonical form as
    ``canonical_fields`` gives for the stored event."""
    row: dict[str, Any] = {
        "org_id": draft.org_id,
        "seq": seq,
        "time": utcnow(),
        "actor_type": draft.actor_type,
        "actor": draft.actor,
        "token_prefix": draft.token_prefix,
        "request_id": draft.request_id,
        "client_ip": draft.client_ip,
        "user_agent": (draft.user_agent or None) and draft.user_agent[:512],
        "operation": draft.operation,
        "outcome": draft.outcome,
        "status": draft.status,
        "scim_type": draft.scim_type,
        "detail": draft.detail[:MAX_DETAIL] if draft.detail else draft.detail,
        "resource_type": draft.resource_type,
        "resource_id": draft.resource_id,
        "user_name": draft.user_name,
        "changes": redact(draft.changes) if draft.changes is not None else None,
        "prev_hash": prev_hash,
    }
    for name, value in row.items():
        # a detail quoting a client's NUL or half surrogate (an id in a URL, an Entra role) must
        # not make the event itself impossible to store or hash: written as its escape
        if isinstance(value, str) and unstorable(value) is not None:
            row[name] = storable(value)
    row["hash"] = event_hash({**row, "time": _time_text(row["time"])})
    return row


@dataclass(frozen=True)
class Break:
    """The first place where the stored chain does not hold."""

    seq: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "reason": self.reason}


@dataclass(frozen=True)
class SignedCheckpoint:
    """The last checkpoint whose signature holds: nothing up to it was rewritten since."""

    seq: int
    #: when it was signed, as the signature vouches (``signedAt``)
    time: str | None
    key_id: str
    #: where the log started when it was signed (``logStart``)
    log_start: Any = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "key_id": self.key_id}


@dataclass(frozen=True)
class Verification:
    org_id: int
    events: int
    first_seq: int | None
    last_seq: int | None
    broken: Break | None
    #: The hash of the last event of a chain that holds: an auditor who keeps it can show later
    #: that nothing up to that event was rewritten since (the event must still have it).
    last_hash: str | None = None
    #: Whether signing keys were given (``audit.signing``); without them no signature is read.
    signatures_checked: bool = False
    signed_checkpoint: SignedCheckpoint | None = None
    #: Checkpoints no given key vouches for: unsigned, signed with a key not given, or all of
    #: them when no key was given.
    unchecked_checkpoints: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.broken is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "org_id": self.org_id,
            "events": self.events,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "broken": self.broken.to_dict() if self.broken else None,
            "signatures_checked": self.signatures_checked,
            "signed_checkpoint": (
                self.signed_checkpoint.to_dict() if self.signed_checkpoint else None
            ),
            "unchecked_checkpoints": list(self.unchecked_checkpoints),
        }


def _events(session: Session, org_id: int) -> Iterator[AuditEvent]:
    query = (
        select(AuditEvent)
        .where(AuditEvent.org_id == org_id)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=1000)
    )
    yield from session.scalars(query)


@dataclass(frozen=True)
class _Start:
    """Where the stored log starts: the hash its first event follows, and the prune checkpoint
    that recorded it (None for genesis)."""

    hash: str
    prune_seq: int | None
    #: the key id the prune record claims it was signed with, if any
    prune_key_id: str | None = None


def _start_anchor(session: Session, org_id: int, first_seq: int) -> _Start | None:
    """The hash the first remaining event must follow: genesis, or the cut recorded by the
    first prune checkpoint, after that cut, that names it."""
    if first_seq == 1:
        return _Start(GENESIS, None)
    for checkpoint in session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.org_id == org_id,
            AuditEvent.operation == "audit.prune",
            AuditEvent.seq >= first_seq,
        )
        .order_by(AuditEvent.seq)
    ):
        changes = checkpoint.changes if isinstance(checkpoint.changes, dict) else {}
        cut = changes.get("cut")
        if isinstance(cut, dict) and cut.get("seq") == first_seq - 1:
            value = cut.get("hash")
            key_id = changes.get(signing.KEY_ID)
            return (
                _Start(value, checkpoint.seq, key_id if isinstance(key_id, str) else None)
                if isinstance(value, str)
                else None
            )
    return None


def verify(
    session: Session,
    org_id: int,
    anchor: tuple[int, str] | None = None,
    keys: tuple[signing.SigningKey, ...] = (),
) -> Verification:
    """Recompute the chain of ``org_id`` and name the first broken link, if any.

    Someone who can write to the database can rewrite the chain and reseal it. Two things show
    that: ``keys``, which check the signatures of checkpoints (``audit.signing``), and
    ``anchor``, (seq, hash) an auditor kept from an earlier run.
    """
    result = replace(_verify(session, org_id, keys), signatures_checked=bool(keys))
    if anchor is None or result.broken is not None:
        return result
    broken = _check_anchor(session, org_id, result, *anchor)
    return result if broken is None else replace(result, broken=broken, last_hash=None)


def _check_anchor(
    session: Session, org_id: int, result: Verification, seq: int, kept: str
) -> Break | None:
    if result.first_seq is None or result.last_seq is None or seq > result.last_seq:
        return Break(seq, f"event {seq} is not in the log: the kept hash cannot be checked")
    if seq >= result.first_seq:
        stored = session.scalar(
            select(AuditEvent.hash).where(AuditEvent.org_id == org_id, AuditEvent.seq == seq)
        )
    elif seq == result.first_seq - 1:  # the cut of a prune: its checkpoint recorded the hash
        start = _start_anchor(session, org_id, result.first_seq)
        stored = start.hash if start is not None else None
    else:
        return Break(seq, f"event {seq} was pruned: the kept hash cannot be checked")
    if stored is None:  # pruned between the scan and this lookup (PostgreSQL, READ COMMITTED)
        return Break(seq, f"event {seq} was pruned: the kept hash cannot be checked")
    if stored != kept:
        return Break(
            seq,
            f"event {seq}'s hash is not the one kept: the log up to it was rewritten and "
            "resealed since",
        )
    return None


def _start_not_vouched(
    signed: SignedCheckpoint | None, start: _Start | None, first_seq: int | None
) -> Break | None:
    """Where the log starts must be where the last valid checkpoint signed it started: a
    prefix deleted since, behind a prune record made up before or after that checkpoint, shows
    here. A log that was pruned and has no valid checkpoint is vouched for by nothing."""
    if start is None or first_seq is None or (start.prune_seq is None and signed is None):
        return None  # from genesis and nothing signed: the chain alone shows any removal
    if signed is not None and signed.log_start is None:
        # signed before checkpoints recorded logStart (never released): the record that
        # names the cut must itself be vouched for, at least
        if start.prune_seq is None or signed.seq >= start.prune_seq:
            return None
    elif signed is not None:
        if signed.log_start == {"seq": first_seq, "prevHash": start.hash}:
            return None
        was = signed.log_start.get("seq") if isinstance(signed.log_start, dict) else None
        return Break(
            start.prune_seq or first_seq,
            f"the log starts at event {first_seq}, but when the last valid checkpoint (event "
            f"{signed.seq}) was signed it started at event {was}: events were removed since "
            + _without_vouched_prune(start),
        )
    assert start.prune_seq is not None
    return Break(
        start.prune_seq,
        f"the log starts after event {first_seq - 1}, and the prune record that says so "
        f"(event {start.prune_seq}) is neither signed with a given key nor followed by a "
        "checkpoint that is: events may have been removed"
        + (
            f" (it claims key {start.prune_key_id}, which was not given)"
            if start.prune_key_id
            else ""
        ),
    )


def _without_vouched_prune(start: _Start) -> str:
    if start.prune_seq is not None and start.prune_key_id is not None:
        return (
            f"by the prune record at event {start.prune_seq}, signed with key "
            f"{start.prune_key_id}, which was not given"
        )
    if start.prune_seq is not None:
        return (
            f"by the unsigned prune record at event {start.prune_seq} (a prune with "
            "--unsigned, or a database writer's)"
        )
    return "with no prune record (a database writer)"


def _verify(session: Session, org_id: int, keys: tuple[signing.SigningKey, ...]) -> Verification:
    head = session.get(AuditChain, org_id)
    signed: SignedCheckpoint | None = None
    unchecked: list[int] = []
    start: _Start | None = None
    count = 0
    first_seq: int | None = None
    previous: AuditEvent | None = None
    expected_prev: str | None = None

    def broken(last_seq: int | None, at: int, reason: str) -> Verification:
        return Verification(org_id, count, first_seq, last_seq, Break(at, reason))

    for event in _events(session, org_id):
        count += 1
        if previous is None:
            first_seq = event.seq
            start = _start_anchor(session, org_id, event.seq)
            expected_prev = start.hash if start is not None else None
            if expected_prev is None:
                return broken(
                    event.seq,
                    event.seq,
                    "events before this one are missing and no prune "
                    "checkpoint records where the log was cut",
                )
        elif event.seq != previous.seq + 1:
            return broken(event.seq, previous.seq + 1, f"event {previous.seq + 1} is missing")
        if event.prev_hash != expected_prev:
            return broken(
                event.seq, event.seq, "prev_hash does not match the hash of the event before it"
            )
        try:
            recomputed: str | None = event_hash(canonical_fields(event))
        except UnicodeEncodeError:  # a lone surrogate: the server never stores one (storable)
            recomputed = None
        if recomputed != event.hash:
            return broken(
                event.seq,
                event.seq,
                "the event's content does not match its hash (a sealed field was changed)",
            )
        if event.operation in signing.CHECKPOINT_OPERATIONS:
            checked = (
                signing.check(keys, org_id, event.seq, event.prev_hash, event.changes)
                if keys
                else signing.Check.UNKNOWN_KEY
            )
            if checked is signing.Check.INVALID:
                return broken(
                    event.seq,
                    event.seq,
                    "the checkpoint's signature does not hold: the checkpoint, or an event "
                    "before it, was rewritten and resealed without the signing key",
                )
            if checked is signing.Check.VALID:
                vouched = event.changes or {}
                signed_at = vouched.get(signing.SIGNED_AT)
                signed = SignedCheckpoint(
                    event.seq,
                    signed_at if isinstance(signed_at, str) else None,
                    str(vouched[signing.KEY_ID]),
                    vouched.get(signing.LOG_START),
                )
            else:
                unchecked.append(event.seq)
        expected_prev = event.hash
        previous = event
    last_seq = previous.seq if previous else None
    if head is not None and last_seq is not None and last_seq > head.last_seq:
        return broken(
            last_seq,
            head.last_seq + 1,
            f"event {head.last_seq + 1} is beyond the chain head (at {head.last_seq}): "
            "it was added outside the log",
        )
    if head is not None and head.last_seq != (last_seq or 0) and count:
        return broken(
            last_seq,
            (last_seq or 0) + 1,
            f"events after {last_seq} are missing (the chain head is at {head.last_seq})",
        )
    if head is not None and count and head.last_hash != (previous.hash if previous else GENESIS):
        return broken(
            last_seq, last_seq or 0, "the last event's hash does not match the chain head"
        )
    moved = _start_not_vouched(signed, start, first_seq) if keys else None
    if moved is not None:
        return Verification(org_id, count, first_seq, last_seq, moved)
    if head is not None and not count and head.last_seq != 0:
        pruned_all = head.last_seq
        return Verification(
            org_id,
            0,
            None,
            None,
            Break(pruned_all, "the chain head records events but none are stored"),
        )
    return Verification(
        org_id,
        count,
        first_seq,
        last_seq,
        None,
        previous.hash if previous else None,
        signed_checkpoint=signed,
        unchecked_checkpoints=tuple(unchecked),
    )
