"""``users export`` and ``users import`` (DESIGN §8): an organisation's users as CSV, and back.

The columns are those of :mod:`scim_server.scim.columns` (from the schema documents). An import
goes through the same use cases as a SCIM POST or PUT, so every rule holds as for an IdP: the
domain policy, single-domain SSO, the seat limit, temporary access, the lifecycle and its
invitations, the last-admin guard. It is one transaction: any refused row refuses the whole file
(every refused row is reported, with its line), so a file is applied entirely or not at all.

- A row names its user by ``id`` when that column has a value, else by ``userName`` (in any
  case); a user not found is created. A row that changes nothing is not written.
- Each user created, changed or deactivated is its own provisioning-log event
  (``user.create``, ``user.replace``), attributed to the admin who ran the command, in the
  import's transaction; the run itself is one ``users.import`` event (``dryRun``, counts,
  the file's name), written whether it was applied, refused or a dry run.
- ``deactivate_missing``: active users the file does not name are deactivated.
- Admin imports are not counted by the mass-deprovisioning guard (it watches connections), and
  users created here belong to no connection: any connection may change them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from scim_server.audit.chain import append, append_all
from scim_server.audit.events import EventDraft
from scim_server.scim.columns import (
    CellError,
    Column,
    apply_row,
    to_row,
    unsafe_cell,
    user_columns,
)
from scim_server.scim.cursor import CursorSettings
from scim_server.scim.errors import ScimError
from scim_server.scim.listing import Limits
from scim_server.scim.schema import Registry, ResourceType
from scim_server.services import users
from scim_server.services.context import RequestContext
from scim_server.services.errors import ServiceError
from scim_server.services.tokens import Principal
from scim_server.store.db import Database
from scim_server.store.models import Organization, User
from scim_server.store.text import same_text

#: Users named one by one in a report (and its event); the counts are always whole.
LISTED = 1000
_UNUSED_LIMITS = Limits(default_count=100, max_count=100, max_filter_length=1)
_UNUSED_CURSORS = CursorSettings(secret=b"\0" * 32, timeout_seconds=1)


@dataclass(frozen=True)
class Admin:
    """Who runs the command, as the provisioning log names a CLI user (``actorType`` cli)."""

    actor_type: str
    actor: str


def _context(
    org: Organization, registry: Registry, draft: EventDraft, base_url: str
) -> RequestContext:
    principal = Principal(
        org_id=org.id,
        org_slug=org.slug,
        connection_id=None,
        scope="admin",
        token_prefix="",
        expires_at=None,
        revoked=False,
    )
    return RequestContext(principal, registry, base_url, _UNUSED_LIMITS, draft, _UNUSED_CURSORS)


def columns_of(registry: Registry) -> list[Column]:
    return user_columns(registry.resource_type("User"))


# -- export ----------------------------------------------------------------------------------


def export_rows(
    database: Database, registry: Registry, org: Organization, base_url: str
) -> Iterator[list[str]]:
    """The header, then one row per user (not deleted), in creation order, streamed."""
    rt = registry.resource_type("User")
    columns = user_columns(rt)
    yield [column.header for column in columns]
    draft = EventDraft(operation="users.export")
    with database.transaction(write=False) as session:
        ctx = _context(org, registry, draft, base_url)
        for doc in users.all_rendered(session, ctx):
            yield to_row(doc, columns, rt.schema.id)


def csv_text(rows: Iterable[list[str]]) -> Iterator[str]:
    """Rows as CSV text (RFC 4180: quoted where needed, CRLF line ends), a line at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


# -- import ----------------------------------------------------------------------------------


@dataclass
class ImportReport:
    org: str
    file: str
    dry_run: bool
    rows: int = 0
    created: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    deactivated: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def applied(self) -> bool:
        return not self.dry_run and not self.errors

    def note(self, kind: str, entry: dict[str, Any]) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        listed: list[dict[str, Any]] = getattr(self, kind)
        if len(listed) < LISTED:
            listed.append(entry)

    def to_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "file": self.file,
            "dryRun": self.dry_run,
            "applied": self.applied,
            "rows": self.rows,
            "created": self.counts.get("created", 0),
            "updated": self.counts.get("updated", 0),
            "unchanged": self.unchanged,
            "deactivated": self.counts.get("deactivated", 0),
            "errors": self.errors,
            "users": {
                "created": self.created,
                "updated": self.updated,
                "deactivated": self.deactivated,
            },
        }


class _Rollback(Exception):
    """Ends the import's transaction without writing (a dry run, or a refused row)."""


def check_header(header: list[str], columns: list[Column]) -> dict[str, str]:
    """The file's headers mapped to the columns' (any case); unknown or missing ones refused."""
    known = {column.header.lower(): column.header for column in columns}
    mapped: dict[str, str] = {}
    unknown = []
    for name in header:
        canonical = known.get(name.strip().lower())
        if canonical is None:
            unknown.append(name)
        elif canonical in mapped.values():
            raise ServiceError(f'column "{canonical}" appears twice in the header')
        else:
            mapped[name] = canonical
    if unknown:
        raise ServiceError(
            f"unknown column{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(name) for name in unknown)}; the columns are those of "
            f"`scim-server users export`: {', '.join(column.header for column in columns)}"
        )
    if "userName" not in mapped.values() and "id" not in mapped.values():
        raise ServiceError('the header needs a "userName" column (or "id")')
    return mapped


def _check_width(raw: dict[Any, Any]) -> None:
    """``csv.DictReader`` fills a short row with None and puts a long row's rest under None:
    either way the row does not say what the header says, and an empty cell removes."""
    if None in raw:
        raise CellError(f"the row has {len(raw) - 1 + len(raw[None])} cells, the header fewer")
    if any(value is None for value in raw.values()):
        missing = sum(value is None for value in raw.values())
        raise CellError(f"the row has {len(raw) - missing} cells, the header {len(raw)}")


def _find(session: Session, org_id: int, cells: dict[str, str]) -> User | None:
    user_id = unsafe_cell(cells.get("id", "")).strip()
    user_name = unsafe_cell(cells.get("userName", "")).strip()
    if user_id:
        condition = User.id == user_id
    elif user_name:
        condition = same_text(User.user_name, user_name)
    else:
        raise CellError('the row has neither an "id" nor a "userName"')
    found = session.scalars(
        select(User).where(User.org_id == org_id, User.deleted_at.is_(None), or_(condition))
    ).first()
    if found is None and user_id:
        raise CellError(f'no user with id "{user_id}" in this organisation')
    return found


def _with_schemas(doc: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
    doc["schemas"] = [rt.schema.id] + [
        extension.schema.id for extension in rt.extensions if extension.schema.id in doc
    ]
    return doc


def _write(
    session: Session,
    org: Organization,
    registry: Registry,
    admin: Admin,
    base_url: str,
    user: User | None,
    doc: dict[str, Any],
    events: list[EventDraft],
) -> dict[str, Any]:
    """Create or replace through the SCIM use case; its event joins ``events``, sealed with the
    others when the import commits (one lock of the organisation's chain, at the end: a
    head locked from the first row would stall every request of the organisation)."""
    operation, status = ("user.replace", 200) if user is not None else ("user.create", 201)
    draft = EventDraft(
        operation=operation, org_id=org.id, actor_type=admin.actor_type, actor=admin.actor
    )
    ctx = _context(org, registry, draft, base_url)
    if user is not None:
        rendered = users.replace_user(session, ctx, user.id, doc, None)
    else:
        rendered = users.create_user(session, ctx, doc)
    draft.status = status
    events.append(draft)
    return {"id": rendered.document["id"], "userName": rendered.document["userName"]}


def import_rows(
    database: Database,
    registry: Registry,
    org_slug: str,
    file_name: str,
    header: list[str],
    rows: list[tuple[int, dict[str, str]]],
    *,
    admin: Admin,
    base_url: str,
    dry_run: bool = False,
    deactivate_missing: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Apply ``rows`` (line number, header -> cell) to the organisation's users, or report why
    not. Raises :class:`ServiceError` for a file that is not an import (its header)."""
    rt = registry.resource_type("User")
    columns = user_columns(rt)
    try:
        mapping = check_header(header, columns)
    except ServiceError as error:
        refuse_file(database, org_slug, admin, file_name, str(error))
        raise
    report = ImportReport(org_slug, file_name, dry_run, rows=len(rows))
    try:
        with database.transaction(write=True) as session:
            org = session.scalars(select(Organization).where(Organization.slug == org_slug)).one()
            seen: set[int] = set()
            events: list[EventDraft] = []
            for line, raw in rows:
                cells = {
                    mapping[name]: value or "" for name, value in raw.items() if name in mapping
                }
                savepoint = session.begin_nested()
                try:
                    _check_width(raw)
                    user = _find(session, org.id, cells)
                    if user is not None and user.pk in seen:
                        raise CellError(f'user "{user.user_name}" is named by an earlier row too')
                    base = user.data if user is not None else {}
                    doc = _with_schemas(apply_row(base, columns, cells, rt.schema.id), rt)
                    if user is not None:
                        seen.add(user.pk)
                        if doc == user.data:
                            report.unchanged += 1
                            savepoint.commit()
                            continue
                    written = _write(session, org, registry, admin, base_url, user, doc, events)
                    if user is None:
                        seen.add(
                            session.scalars(select(User.pk).where(User.id == written["id"])).one()
                        )
                    savepoint.commit()
                    report.note("created" if user is None else "updated", written)
                except (ScimError, CellError, ServiceError) as error:
                    savepoint.rollback()
                    detail = error.detail if isinstance(error, ScimError) else str(error)
                    report.errors.append(
                        {"line": line, "userName": cells.get("userName", ""), "detail": detail}
                    )
                if progress is not None:
                    progress(1)
            if deactivate_missing and not report.errors:
                _deactivate_missing(session, org, registry, admin, base_url, seen, report, events)
            if dry_run or report.errors:
                raise _Rollback
            append_all(session, [*events, _summary(org.id, admin, report)])
    except _Rollback:
        with database.transaction(write=True) as session:
            org_id = session.scalars(
                select(Organization.id).where(Organization.slug == org_slug)
            ).one()
            append(session, _summary(org_id, admin, report))
    return report


def refuse_file(
    database: Database, org_slug: str, admin: Admin, file_name: str, detail: str
) -> None:
    """The ``users.import`` event of a file refused as a whole (its header, its encoding)."""
    with database.transaction(write=True) as session:
        org_id = session.scalars(select(Organization.id).where(Organization.slug == org_slug)).one()
        append(
            session,
            EventDraft(
                operation="users.import",
                org_id=org_id,
                actor_type=admin.actor_type,
                actor=admin.actor,
                resource_type="User",
                status=400,
                detail=detail[:1000],
                changes={"file": file_name},
            ),
        )


def _deactivate_missing(
    session: Session,
    org: Organization,
    registry: Registry,
    admin: Admin,
    base_url: str,
    seen: set[int],
    report: ImportReport,
    events: list[EventDraft],
) -> None:
    missing = session.scalars(
        select(User)
        .where(User.org_id == org.id, User.deleted_at.is_(None), User.active.is_(True))
        .order_by(User.pk)
    ).all()
    for user in missing:
        if user.pk in seen:
            continue
        try:
            doc = {**user.data, "active": False}
            written = _write(session, org, registry, admin, base_url, user, doc, events)
        except ScimError as error:
            report.errors.append({"line": None, "userName": user.user_name, "detail": error.detail})
            return
        report.note("deactivated", written)


def _summary(org_id: int, admin: Admin, report: ImportReport) -> EventDraft:
    summary = report.to_dict()
    return EventDraft(
        operation="users.import",
        org_id=org_id,
        actor_type=admin.actor_type,
        actor=admin.actor,
        resource_type="User",
        status=400 if report.errors else 200,
        detail=(
            f"{len(report.errors)} rows refused: nothing was written"
            if report.errors
            else ("dry run: nothing was written" if report.dry_run else None)
        ),
        changes={
            **{
                key: summary[key]
                for key in (
                    "file",
                    "dryRun",
                    "rows",
                    "created",
                    "updated",
                    "unchanged",
                    "deactivated",
                )
            },
            **({"refused": report.errors[:LISTED]} if report.errors else {}),
        },
    )
