"""User provisioning use cases (DESIGN §5.1): create, read, replace, patch, delete, list.

Each function runs inside the caller's transaction and either completes every write or raises a
``ScimError`` before anything is committed. Every query is scoped by the caller's organisation: a
user of another organisation is indistinguishable from one that does not exist (404).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scim_server.audit.events import document_changes
from scim_server.scim.errors import NotFound, PreconditionFailed, Uniqueness
from scim_server.scim.listing import ListQuery
from scim_server.scim.patch import apply_patch
from scim_server.scim.projection import Projection, apply_projection, parse_projection
from scim_server.scim.schema import ResourceType
from scim_server.scim.validate import parse_resource
from scim_server.services.context import RequestContext
from scim_server.store.errors import unique_violation
from scim_server.store.filters import FilterCompiler
from scim_server.store.models import User
from scim_server.store.users import USER_STORAGE, write_user


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
class Rendered:
    document: dict[str, Any]
    etag: str


@dataclass(frozen=True)
class Page:
    total: int
    start_index: int
    resources: list[dict[str, Any]]


def user_type(ctx: RequestContext) -> ResourceType:
    return ctx.registry.resource_type("User")


def render(ctx: RequestContext, user: User) -> dict[str, Any]:
    """The full SCIM document of a stored user (before projection)."""
    stored = user.data
    doc: dict[str, Any] = {"schemas": list(stored.get("schemas") or [user_type(ctx).schema.id])}
    doc["id"] = user.id
    for key, value in stored.items():
        if key != "schemas":
            doc[key] = value
    doc["meta"] = {
        "resourceType": "User",
        "created": _iso(user.created_at),
        "lastModified": _iso(user.last_modified),
        "location": f"{ctx.base_url}/Users/{user.id}",
        "version": etag_of(user.version),
    }
    return doc


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _load(session: Session, ctx: RequestContext, user_id: str, *, for_update: bool) -> User:
    ctx.audit.resource_type = "User"
    ctx.audit.resource_id = user_id[:64]
    if not _is_uuid(user_id):  # ids are UUIDs: anything else exists nowhere
        raise NotFound(f'User "{user_id[:64]}" not found')
    query = select(User).where(User.org_id == ctx.principal.org_id, User.id == user_id)
    if for_update:
        query = query.with_for_update()
    user = session.scalar(query)
    if user is None:
        raise NotFound(f'User "{user_id}" not found')
    ctx.audit.user_name = user.user_name
    return user


def _record_change(
    ctx: RequestContext, user: User, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """Say in the request's audit event which user changed and how, attribute by attribute."""
    ctx.audit.resource_type = "User"
    ctx.audit.resource_id = user.id
    ctx.audit.user_name = (after or before or {}).get("userName", user.user_name)
    ctx.audit.changes = document_changes(before, after, user_type(ctx).schema_ids[1:])


def _store(
    session: Session,
    ctx: RequestContext,
    user: User,
    doc: dict[str, Any],
    previous: dict[str, Any] | None,
) -> None:
    try:
        write_user(session, user_type(ctx), user, doc, previous)
    except IntegrityError as error:
        if unique_violation(error) in ("ux_users_org_user_name", ""):
            raise Uniqueness(
                f'userName "{doc["userName"]}" is already taken in this organisation '
                "(userName is unique, case-insensitively)"
            ) from None
        raise


def create_user(session: Session, ctx: RequestContext, body: Any) -> Rendered:
    rt = user_type(ctx)
    doc = parse_resource(rt, body)
    doc.setdefault("active", True)
    user = User(
        id=str(uuid.uuid4()),
        org_id=ctx.principal.org_id,
        owner_connection_id=ctx.principal.connection_id,
    )
    ctx.audit.resource_type = "User"
    ctx.audit.user_name = doc["userName"]
    session.add(user)
    _store(session, ctx, user, doc, None)
    _record_change(ctx, user, None, doc)
    return Rendered(render(ctx, user), etag_of(user.version))


def get_user(session: Session, ctx: RequestContext, user_id: str) -> Rendered:
    user = _load(session, ctx, user_id, for_update=False)
    return Rendered(render(ctx, user), etag_of(user.version))


def replace_user(
    session: Session, ctx: RequestContext, user_id: str, body: Any, if_match: str | None
) -> Rendered:
    rt = user_type(ctx)
    user = _load(session, ctx, user_id, for_update=True)
    check_if_match(if_match, etag_of(user.version))
    previous = user.data
    doc = parse_resource(rt, body, existing=previous)
    # A PUT that omits ``active`` does not reactivate or deactivate anyone.
    doc.setdefault("active", user.active)
    if doc != previous:
        _store(session, ctx, user, doc, previous)
    _record_change(ctx, user, previous, doc)
    return Rendered(render(ctx, user), etag_of(user.version))


def patch_user(
    session: Session, ctx: RequestContext, user_id: str, body: Any, if_match: str | None
) -> Rendered:
    rt = user_type(ctx)
    user = _load(session, ctx, user_id, for_update=True)
    check_if_match(if_match, etag_of(user.version))
    previous = user.data
    patched = apply_patch(rt, previous, body)
    doc = parse_resource(rt, patched, existing=previous)
    if doc != previous:
        _store(session, ctx, user, doc, previous)
    _record_change(ctx, user, previous, doc)
    return Rendered(render(ctx, user), etag_of(user.version))


def delete_user(session: Session, ctx: RequestContext, user_id: str, if_match: str | None) -> None:
    user = _load(session, ctx, user_id, for_update=True)
    check_if_match(if_match, etag_of(user.version))
    # The event keeps a tombstone: every value the user had when it was deleted.
    _record_change(ctx, user, user.data, None)
    session.delete(user)
    session.flush()


def list_users(session: Session, ctx: RequestContext, query: ListQuery) -> Page:
    rt = user_type(ctx)
    compiler = FilterCompiler(rt, USER_STORAGE, ctx.principal.org_id)
    projection: Projection = parse_projection(rt, query.attributes, query.excluded_attributes)
    conditions = [User.org_id == ctx.principal.org_id]
    if query.filter is not None:
        conditions.append(compiler.compile(query.filter))

    total = session.scalar(select(func.count()).select_from(User).where(*conditions)) or 0
    resources: list[dict[str, Any]] = []
    if query.count > 0 and query.start_index <= total:
        statement = select(User).where(*conditions)
        if query.sort_by is not None:
            key = compiler.sort_key(query.sort_by)
            statement = statement.order_by(
                key.desc().nulls_last() if query.descending else key.asc().nulls_last(),
                User.pk.desc() if query.descending else User.pk.asc(),
            )
        else:
            statement = statement.order_by(User.pk)
        statement = statement.offset(query.start_index - 1).limit(query.count)
        for user in session.scalars(statement):
            resources.append(apply_projection(rt, render(ctx, user), projection))
    return Page(total=total, start_index=query.start_index, resources=resources)
