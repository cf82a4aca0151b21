"""Auditors' queries over the provisioning log (DESIGN §6): filter, cursor pages, streamed exports.

Filters use the SCIM filter language over the event fields described by
``schemas/audit_event.json`` and are compiled to SQL by the same compiler as ``/Users``. Pages
are keyset pages on the sequence number: the cursor names the last event seen, so a page costs
the same at the end of a million events as at the start, and events appended while an auditor
pages through never shift what the next page returns. Exports stream rows from the database in
batches: memory stays flat whatever the number of events.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, bindparam, select
from sqlalchemy.orm import Session

from scim_server.audit.chain import SEALED_FIELDS, canonical_fields
from scim_server.scim.columns import safe_cell
from scim_server.scim.errors import InvalidValue
from scim_server.scim.filter import parse_filter
from scim_server.scim.listing import MAX_INTEGER
from scim_server.scim.schema import Registry, ResourceType
from scim_server.store.filters import FilterCompiler, ResourceStorage, execution_options
from scim_server.store.models import AuditChain, AuditEvent

EXPORT_FORMATS = ("csv", "jsonl")
EXPORT_BATCH = 1000

#: event field (canonical name) -> column
_FIELDS = {
    "orgId": "org_id",
    "seq": "seq",
    "time": "time",
    "actorType": "actor_type",
    "actor": "actor",
    "tokenPrefix": "token_prefix",
    "requestId": "request_id",
    "clientIp": "client_ip",
    "userAgent": "user_agent",
    "operation": "operation",
    "outcome": "outcome",
    "status": "status",
    "scimType": "scim_type",
    "detail": "detail",
    "resourceType": "resource_type",
    "resourceId": "resource_id",
    "userName": "user_name",
    "changes": "changes",
    "prevHash": "prev_hash",
    "hash": "hash",
}

AUDIT_STORAGE = ResourceStorage(
    model=AuditEvent,
    pk_column="pk",
    org_column="org_id",
    document_column="changes",
    columns={name.lower(): column for name, column in _FIELDS.items() if name != "changes"},
)


def event_type(registry: Registry) -> ResourceType:
    return registry.resource_type("AuditEvent")


def event_document(event: AuditEvent) -> dict[str, Any]:
    """An event as auditors see it: every sealed field, camelCase, plus its hash."""
    fields = canonical_fields(event)
    document = {name: fields[column] for name, column in _FIELDS.items() if column in fields}
    document["hash"] = event.hash
    return document


def encode_cursor(seq: int, until: int | None) -> str:
    """The next page of a walk: after ``seq``, up to ``until`` (where the log stood when the
    walk began)."""
    text = f"seq:{seq}" if until is None else f"seq:{seq}:{until}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int | None]:
    """(after, until) of a cursor; ``until`` is None in cursors issued before walks had an
    end."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        kind, *values = text.split(":")
        if (
            kind == "seq"
            and 1 <= len(values) <= 2
            and all(
                value.isascii() and value.isdigit() and int(value) <= MAX_INTEGER
                for value in values
            )
        ):
            return int(values[0]), int(values[1]) if len(values) == 2 else None
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidValue(f'"cursor" {cursor[:64]!r} is not a cursor this server issued')


@dataclass
class _Query:
    conditions: list[ColumnElement[bool]]
    #: what the statement binds
    parameters: dict[str, Any]
    #: what it executes with (``store.filters.execution_options``)
    options: Mapping[str, Any]


def _query(registry: Registry, org_id: int, filter_text: str | None) -> _Query:
    query = _Query(
        [AuditEvent.org_id == bindparam("org_id")], {"org_id": org_id}, execution_options(None)
    )
    if filter_text:
        compiler = FilterCompiler(event_type(registry), AUDIT_STORAGE)
        expr = parse_filter(filter_text)
        condition, values = compiler.compile(expr)
        query.conditions.append(condition)
        query.parameters.update(values)
        query.options = execution_options(expr)
    return query


def check_filter(registry: Registry, org_id: int, filter_text: str | None) -> None:
    """Raise the 400 a bad filter deserves (syntax, unknown attribute, bad literal) now, before
    a streamed export has sent its first byte."""
    _query(registry, org_id, filter_text)


@dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]]
    next_cursor: str | None


def search(
    session: Session,
    registry: Registry,
    org_id: int,
    *,
    filter_text: str | None,
    cursor: str | None,
    count: int,
) -> EventPage:
    """One page of events in sequence order, after ``cursor``.

    A walk ends where the log stood at its first page: every page is itself an event of the log
    it reads (``audit.query``), so a walk that followed the end would never end at one event a
    page; what was appended since is the next walk's (``filter=seq gt N``).
    """
    query = _query(registry, org_id, filter_text)
    until = None
    if cursor:
        after, until = decode_cursor(cursor)
        # BIGINT, as the filter's integers: seq is an INTEGER column on PostgreSQL
        query.conditions.append(AuditEvent.seq > bindparam("after", type_=BigInteger()))
        query.parameters["after"] = after
    if until is None:  # a first page (or a cursor issued before walks had an end)
        until = session.scalar(select(AuditChain.last_seq).where(AuditChain.org_id == org_id))
    if until is not None:
        query.conditions.append(AuditEvent.seq <= bindparam("until", type_=BigInteger()))
        query.parameters["until"] = until
    rows = session.scalars(
        select(AuditEvent).where(*query.conditions).order_by(AuditEvent.seq).limit(count + 1),
        query.parameters,
        execution_options=query.options,
    ).all()
    page = rows[:count]
    more = len(rows) > count
    return EventPage(
        events=[event_document(event) for event in page],
        next_cursor=encode_cursor(page[-1].seq, until) if more and page else None,
    )


def stream(
    session: Session, registry: Registry, org_id: int, filter_text: str | None
) -> Iterator[AuditEvent]:
    """Every matching event in sequence order, fetched from the database in batches."""
    query = _query(registry, org_id, filter_text)
    statement = (
        select(AuditEvent)
        .where(*query.conditions)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=EXPORT_BATCH)
    )
    for event in session.scalars(statement, query.parameters, execution_options=query.options):
        yield event
        session.expunge(event)  # nothing keeps exported rows alive


#: ``changes`` (JSON) after the plain fields; ``orgId`` last, added after the others, so that
#: readers of the columns by position read what they did before it
CSV_COLUMNS = [name for name in _FIELDS if name not in ("changes", "orgId")] + ["changes", "orgId"]
_CHANGES_COLUMN = CSV_COLUMNS.index("changes")


def csv_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    """CSV with a header row; ``changes`` as a JSON object in its column.

    The file is for spreadsheets, and events quote what clients sent (a userName, a
    User-Agent, a request id): a cell a spreadsheet would run as a formula is written after a
    ``'``, as in the users' CSV (``scim.columns.safe_cell``). The JSON Lines export keeps every
    value exactly; it is the one to verify a chain with."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for event in events:
        document = event_document(event)
        buffer.seek(0)
        buffer.truncate()
        row = [document.get(name) for name in CSV_COLUMNS]
        changes = row[_CHANGES_COLUMN]
        row[_CHANGES_COLUMN] = "" if changes is None else json.dumps(changes, sort_keys=True)
        writer.writerow(
            [
                "" if value is None else safe_cell(value) if isinstance(value, str) else value
                for value in row
            ]
        )
        yield buffer.getvalue()


def jsonl_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    for event in events:
        yield json.dumps(event_document(event), ensure_ascii=False, separators=(",", ":")) + "\n"


#: Rows are sent in pieces of about this size: one HTTP chunk per row costs more than the row.
CHUNK_CHARS = 64 * 1024


def _pieces(lines: Iterator[str]) -> Iterator[str]:
    buffered: list[str] = []
    size = 0
    for line in lines:
        buffered.append(line)
        size += len(line)
        if size >= CHUNK_CHARS:
            yield "".join(buffered)
            buffered, size = [], 0
    if buffered:
        yield "".join(buffered)


def export_lines(events: Iterator[AuditEvent], fmt: str) -> Iterator[str]:
    if fmt == "csv":
        return _pieces(csv_lines(events))
    if fmt == "jsonl":
        return _pieces(jsonl_lines(events))
    raise InvalidValue(f'"format" must be one of {", ".join(EXPORT_FORMATS)}, got {fmt[:32]!r}')


assert set(SEALED_FIELDS) <= set(_FIELDS.values()), "every sealed field is exported"
