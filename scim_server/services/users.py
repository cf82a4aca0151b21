"""User provisioning use cases (DESIGN §5.1): create, read, replace, patch, delete, list.

Each function runs inside the caller's transaction and either completes every write or raises a
``ScimError`` before anything is committed. Every query is scoped by the caller's organisation: a
user of another organisation is indistinguishable from one that does not exist (404).

Every response carries what the user's stored document does not: ``groups`` (from memberships)
and the access extension's ``role`` and ``accessGroups`` (DESIGN §5.2), read in the same SELECT
as the user (one statement for a GET, one for a whole list page). A write that changes the
user's direct ``roles`` (and every create) recomputes the effective access in its transaction,
and the audit event records the access before and after. ``roles`` values new to the user must
name a role of the organisation (400 otherwise); values already stored are not re-checked, so a
full PUT from Okta that resends them keeps working after a role is deleted.

Lifecycle (DESIGN §5.3, rules in ``policy.lifecycle``, storage in ``services.lifecycle``): every
write derives the user's status from ``active``, writes or cancels invitations, and refuses,
before anything is written, a reactivation of a locked user (409) and a write that would take a
seat beyond the organisation's limit (403). DELETE honours the organisation's delete mode:
``hard`` removes the row, ``soft`` sets ``deleted_at`` — the user is then gone for SCIM (404,
absent from lists and filters, its userName free for a new user) until ``users purge`` removes
it. Either way its group memberships go, its API keys are revoked and its pending invitation is
cancelled.

Temporary access (DESIGN §5.4 item 4, rules in ``policy.temporary``): ``accessExpiresAt`` is
stored as the instant access ends (400 beyond 30 days); past it the user reads ``expired``; a
user with it cannot hold an admin role (409, here and in ``services.access.recompute_access``
for group and mapping changes).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Select, bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scim_server.audit.events import document_changes
from scim_server.policy import domains, lifecycle, temporary
from scim_server.policy.domains import DomainSettings
from scim_server.scim.errors import Conflict, InvalidValue, NotFound, ScimError, Uniqueness
from scim_server.scim.listing import ListQuery
from scim_server.scim.patch import apply_patch
from scim_server.scim.projection import Projection, apply_projection, parse_projection
from scim_server.scim.schema import ACCESS_USER, ResourceType
from scim_server.scim.validate import parse_datetime, parse_resource
from scim_server.scim.wire import compact_json
from scim_server.services import deprovisioning, guards, paging
from scim_server.services import lifecycle as lifecycle_store
from scim_server.services.access import (
    NO_ACCESS,
    Access,
    access_changes,
    initial_access,
    recompute_access,
    refuse_temporary_admin,
    require_roles_exist,
)
from scim_server.services.context import RequestContext
from scim_server.services.lifecycle import UserSettings, load_user_settings
from scim_server.services.resources import Page, check_if_match, is_resource_id, iso
from scim_server.store.access import json_value, user_with_access
from scim_server.store.errors import unique_violation
from scim_server.store.groups import lock_groups_of_user, touch_groups_of_user
from scim_server.store.models import GroupMember, User, UserAccess
from scim_server.store.types import utcnow
from scim_server.store.users import USER_STORAGE, user_name_taken, write_user

#: The audit ``changes`` key of the status (an access extension attribute).
STATUS_CHANGE = f"{ACCESS_USER}:status"


@dataclass(frozen=True)
class Rendered:
    document: dict[str, Any]
    etag: str


def user_type(ctx: RequestContext) -> ResourceType:
    return ctx.registry.resource_type("User")


@dataclass(frozen=True)
class LoadedUser:
    """A user with what is computed rather than stored: effective access and groups."""

    user: User
    access: Access = NO_ACCESS
    #: (group id, displayName) of the groups the user is a direct member of
    groups: tuple[tuple[str, str], ...] = ()


class StoredUser(Protocol):
    """What rendering reads of a stored user: the ORM entity, or a list page's plain row."""

    @property
    def id(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def status(self) -> str: ...
    @property
    def access_expires_at(self) -> datetime | None: ...
    @property
    def last_sign_in_at(self) -> datetime | None: ...
    @property
    def last_activity_at(self) -> datetime | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def last_modified(self) -> datetime: ...
    @property
    def version(self) -> int: ...


class _ListedUser(NamedTuple):
    """A user of a list page, read as columns: pages only render, and building ORM entities
    (identity map, instrumented attributes) for a hundred users was a fifth of a page's CPU in
    issue #7's profile."""

    pk: int
    id: str
    data: dict[str, Any]
    status: str
    access_expires_at: datetime | None
    last_sign_in_at: datetime | None
    last_activity_at: datetime | None
    created_at: datetime
    last_modified: datetime
    version: int


_LISTED_COLUMNS = tuple(getattr(User, name) for name in _ListedUser._fields)


def _computed(
    role: Any, access_groups: Any, groups: Any
) -> tuple[Access, tuple[tuple[str, str], ...]]:
    """Effective access and direct groups from the columns of ``user_with_access()``."""
    pairs = sorted(
        ((str(pair[0]), str(pair[1])) for pair in json_value(groups)),
        key=lambda pair: (pair[1].lower(), pair[0]),
    )
    return (role, tuple(sorted(str(n) for n in json_value(access_groups)))), tuple(pairs)


def _loaded(row: Sequence[Any]) -> LoadedUser:
    user, role, access_groups, groups = row
    access, pairs = _computed(role, access_groups, groups)
    return LoadedUser(user, access, pairs)


def render(
    ctx: RequestContext,
    user: StoredUser,
    access: Access = NO_ACCESS,
    groups: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The full SCIM document of a stored user (before projection)."""
    stored = user.data
    schemas = list(stored.get("schemas") or [user_type(ctx).schema.id])
    doc: dict[str, Any] = {"schemas": schemas, "id": user.id}
    for key, value in stored.items():
        if key != "schemas" and not key.startswith("urn:"):
            doc[key] = value
    if groups:
        doc["groups"] = [
            {
                "value": group_id,
                "display": display_name,
                "$ref": f"{ctx.base_url}/Groups/{group_id}",
                "type": "direct",
            }
            for group_id, display_name in groups
        ]
    for key, value in stored.items():
        if key.startswith("urn:") and key != ACCESS_USER:
            doc[key] = value
    status = lifecycle.effective_status(user.status, user.access_expires_at, utcnow())
    extension = _access_extension(stored.get(ACCESS_USER), access, status, _seen(user))
    if extension:
        doc[ACCESS_USER] = extension
        if ACCESS_USER not in schemas:
            schemas.append(ACCESS_USER)
    doc["meta"] = {
        "resourceType": "User",
        "created": iso(user.created_at),
        "lastModified": iso(user.last_modified),
        "location": f"{ctx.base_url}/Users/{user.id}",
        "version": _version_tag(user, access, groups, status),
    }
    return doc


def _seen(user: StoredUser) -> dict[str, str]:
    """What the product recorded of the user's use of it (DESIGN §5.1), as the extension shows
    it; never from a SCIM write."""
    seen = {}
    if user.last_sign_in_at is not None:
        seen["lastSignInAt"] = iso(user.last_sign_in_at)
    if user.last_activity_at is not None:
        seen["lastActivityAt"] = iso(user.last_activity_at)
    return seen


def _version_tag(
    user: StoredUser, access: Access, groups: Sequence[tuple[str, str]], status: str | None
) -> str:
    """The user's ETag (RFC 7644 §3.14): its stored version *and* what the server computes.

    ``version`` counts the user's own writes; the effective role, access groups, ``groups`` and
    status change without one (a membership, a mapping, a group's rename, temporary access
    running out). A client revalidating with ``If-None-Match`` must see those changes too, and
    an ``If-Match`` taken before them must fail. The product's record of sign-ins and activity
    (``lastSignInAt``, ``lastActivityAt``) is not part of it: a weak ETag, and an IdP's
    ``If-Match`` must not fail because the user was active in the product meanwhile.
    """
    computed = compact_json([access[0], list(access[1]), list(groups), status])
    digest = hashlib.blake2b(computed.encode(), digest_size=6).hexdigest()
    return f'W/"{user.version}-{digest}"'


def _current_tag(loaded: LoadedUser) -> str:
    user = loaded.user
    status = lifecycle.effective_status(user.status, user.access_expires_at, utcnow())
    return _version_tag(user, loaded.access, loaded.groups, status)


def _rendered(doc: dict[str, Any]) -> Rendered:
    return Rendered(doc, doc["meta"]["version"])


def _access_extension(
    stored: Any, access: Access, status: str | None, seen: dict[str, str]
) -> dict[str, Any]:
    role, access_groups = access
    extension: dict[str, Any] = {}
    if role is not None:
        extension["role"] = role
    if access_groups:
        extension["accessGroups"] = [{"value": name, "display": name} for name in access_groups]
    if isinstance(stored, dict):
        extension.update(stored)
    if status is not None:
        extension["status"] = status
    extension.update(seen)
    return extension


def _render(ctx: RequestContext, loaded: LoadedUser) -> dict[str, Any]:
    return render(ctx, loaded.user, loaded.access, loaded.groups)


@functools.cache
def _by_pks() -> Select[Any]:
    # the deletion test again: on PostgreSQL the page's keys were read in an earlier snapshot
    return select(*_LISTED_COLUMNS, *user_with_access()).where(
        User.org_id == bindparam("org_id"),
        User.pk.in_(bindparam("pks", expanding=True)),
        User.deleted_at.is_(None),
    )


def _rendered_page(session: Session, ctx: RequestContext, pks: list[int]) -> list[dict[str, Any]]:
    """The full documents of a page's users, in the order of ``pks`` (the page's order)."""
    if not pks:
        return []
    width = len(_LISTED_COLUMNS)
    rendered: dict[int, dict[str, Any]] = {}
    for row in session.execute(_by_pks(), {"org_id": ctx.principal.org_id, "pks": pks}):
        user = _ListedUser._make(row[:width])
        access, groups = _computed(*row[width:])
        rendered[user.pk] = render(ctx, user, access, groups)
    return [rendered[pk] for pk in pks if pk in rendered]


def all_rendered(
    session: Session, ctx: RequestContext, chunk: int = 500
) -> Iterator[dict[str, Any]]:
    """Every user of the organisation as GET returns it, in creation order, ``chunk`` at a time
    (an export: memory bounded by the chunk, not the directory)."""
    last = 0
    while True:
        pks = list(
            session.scalars(
                select(User.pk)
                .where(
                    User.org_id == ctx.principal.org_id, User.pk > last, User.deleted_at.is_(None)
                )
                .order_by(User.pk)
                .limit(chunk)
            )
        )
        if not pks:
            return
        yield from _rendered_page(session, ctx, pks)
        last = pks[-1]


@functools.cache
def _user_by_id(*, for_update: bool) -> Select[Any]:
    """The one-user read of every GET, PUT, PATCH and DELETE, built once with parameters: a
    statement built anew per request had its cache key walked every time (a twentieth of a
    GET's CPU in issue #7's profile); a prebuilt one memoises it."""
    query = select(User, *user_with_access()).where(
        User.org_id == bindparam("org_id"),
        User.id == bindparam("user_id"),
        User.deleted_at.is_(None),
    )
    return query.with_for_update(of=User) if for_update else query


def _check_id(ctx: RequestContext, user_id: str) -> None:
    ctx.audit.resource_type = "User"
    ctx.audit.resource_id = user_id[:64]
    if not is_resource_id(user_id):
        raise NotFound(f'User "{user_id[:64]}" not found')


def _load_for_write(
    session: Session, ctx: RequestContext, user_id: str, *, with_groups: bool = False
) -> tuple[LoadedUser, UserSettings]:
    """The user, locked, and the organisation's settings, held: the organisation first, then
    (``with_groups``, for a write that changes them) the user's groups, then the user; see
    ``access.hold_rules`` and ``lock_groups_of_user``. The settings are read by the statement
    that holds them."""
    _check_id(ctx, user_id)
    settings = load_user_settings(session, ctx.principal.org_id, hold=True)
    if with_groups:
        lock_groups_of_user(session, ctx.principal.org_id, user_id)
    return _load(session, ctx, user_id, for_update=True), settings


def _load(session: Session, ctx: RequestContext, user_id: str, *, for_update: bool) -> LoadedUser:
    _check_id(ctx, user_id)
    query = _user_by_id(for_update=for_update)
    row = session.execute(query, {"org_id": ctx.principal.org_id, "user_id": user_id}).first()
    if row is None:
        raise NotFound(f'User "{user_id}" not found')
    loaded = _loaded(row)
    ctx.audit.user_name = loaded.user.user_name
    return loaded


def _record_change(
    ctx: RequestContext,
    user: User,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    access: dict[str, list[Any]] | None = None,
) -> None:
    """Say in the request's audit event which user changed and how, attribute by attribute."""
    ctx.audit.resource_type = "User"
    ctx.audit.resource_id = user.id
    ctx.audit.user_name = (after or before or {}).get("userName", user.user_name)
    changes = document_changes(before, after, user_type(ctx).schema_ids[1:])
    ctx.audit.changes = {**changes, **(access or {})}


def _role_names(doc: dict[str, Any] | None) -> list[str]:
    """The direct role names of a canonical document (``roles[].value``)."""
    roles = (doc or {}).get("roles")
    if not isinstance(roles, list):
        return []
    return [
        role["value"]
        for role in roles
        if isinstance(role, dict) and isinstance(role.get("value"), str)
    ]


def _check_new_roles(
    session: Session, ctx: RequestContext, doc: dict[str, Any], previous: dict[str, Any] | None
) -> bool:
    """Refuse new direct role names that name no role; say whether the direct roles changed."""
    old = _role_names(previous)
    new = _role_names(doc)
    held = {name.lower() for name in old}
    require_roles_exist(
        session, ctx.principal.org_id, [name for name in new if name.lower() not in held]
    )
    return held != {name.lower() for name in new}


def _recompute(
    session: Session, ctx: RequestContext, user: User, current: Access
) -> tuple[Access, dict[str, list[Any]]]:
    """The user's access after recomputing it, and its audit ``changes`` entries."""
    changed = recompute_access(session, ctx.principal.org_id, [user.pk])
    if user.pk not in changed:
        return current, {}
    before, after = changed[user.pk]
    return after, access_changes(before, after)


def _addresses(doc: dict[str, Any]) -> list[str]:
    emails = doc.get("emails")
    values = [
        email["value"]
        for email in (emails if isinstance(emails, list) else [])
        if isinstance(email, dict) and isinstance(email.get("value"), str)
    ]
    return domains.user_addresses(doc["userName"], values)


def _check_domain_policy(
    ctx: RequestContext,
    settings: DomainSettings,
    doc: dict[str, Any],
    previous: dict[str, Any] | None,
) -> None:
    """Refuse addresses outside the organisation's allowed domains (DESIGN §5.4 item 2).

    Like direct roles, addresses the user already holds (compared case-insensitively) are not
    re-checked, so that after an admin tightens the policy the IdP can still update and
    deactivate users it made before (``policy check`` lists them) — except when the write
    reactivates the user: then every address must be allowed, so that no active user is outside
    an SSO domain set while it was deactivated.
    """
    addresses = _addresses(doc)
    reactivated = previous is not None and previous.get("active") is False
    if previous is not None and not (reactivated and doc.get("active") is not False):
        held = {address.lower() for address in _addresses(previous)}
        addresses = [address for address in addresses if address.lower() not in held]
    if not addresses:
        return
    violation = domains.check(addresses, settings)
    if violation is not None:
        raise InvalidValue(violation.detail(ctx.principal.org_slug))


def _store(
    session: Session,
    ctx: RequestContext,
    user: User,
    doc: dict[str, Any],
    previous: dict[str, Any] | None,
    seat_domain: str | None,
    lifecycle_columns: dict[str, Any] | None = None,
) -> None:
    try:
        write_user(
            session,
            user_type(ctx),
            user,
            doc,
            previous,
            lifecycle_columns,
            seat_domain=seat_domain,
        )
    except IntegrityError as error:
        if unique_violation(error) in ("ux_users_org_user_name", ""):
            raise _name_taken(doc["userName"]) from None
        raise


def _name_taken(user_name: str) -> Uniqueness:
    return Uniqueness(
        f'userName "{user_name}" is already taken in this organisation '
        "(userName is unique, case-insensitively)"
    )


@contextmanager
def _uniqueness_first(
    session: Session, ctx: RequestContext, doc: dict[str, Any], user: User | None
) -> Iterator[None]:
    """Answer a taken ``userName`` before a policy's refusal (DESIGN §5.4: uniqueness is item
    1, the policies come after it): an IdP re-creating a user it already provisioned must hear
    409 ``uniqueness``, on which Okta and Entra match the existing user, not that the user
    would break the domain policy or take a seat.

    The unique index finds a taken name only at the write, after the policies; so the name is
    looked up only when a policy refuses (a rename only), and the writes that pass pay
    nothing for it.
    """
    try:
        yield
    except ScimError:
        renamed = user is None or doc["userName"].lower() != (user.user_name or "").lower()
        if renamed and user_name_taken(
            session, ctx.principal.org_id, doc["userName"], user.pk if user else None
        ):
            raise _name_taken(doc["userName"]) from None
        raise


def _check_seat(
    session: Session,
    ctx: RequestContext,
    settings: UserSettings,
    user: User | None,
    status: str,
    doc: dict[str, Any],
    seat_domain: str | None,
) -> None:
    """Refuse (403) a write after which the user holds a seat it did not hold before;
    ``seat_domain``: the policy's reading of ``doc`` (computed once per write)."""
    exempt = settings.exempt_domains
    now = utcnow()
    after = lifecycle.effective_status(status, _expires_at(doc), now)
    if not lifecycle.holds_seat(after, seat_domain, exempt):
        return
    if user is not None:
        before = lifecycle.effective_status(user.status, user.access_expires_at, now)
        if lifecycle.holds_seat(before, user.seat_domain, exempt):
            return
    lifecycle_store.require_seat(
        session, ctx.principal.org_id, settings, user.pk if user is not None else None
    )


def _expires_at(doc: dict[str, Any]) -> datetime | None:
    extension = doc.get(ACCESS_USER)
    value = extension.get("accessExpiresAt") if isinstance(extension, dict) else None
    return parse_datetime(value) if isinstance(value, str) else None


def _temporary_access(settings: UserSettings, doc: dict[str, Any], user: User | None) -> None:
    """Store the end of temporary access as the instant it ends (DESIGN §5.4 item 4), or refuse
    a date too far ahead (400 invalidValue)."""
    requested = _expires_at(doc)
    if requested is None:
        return
    stored = user.access_expires_at if user is not None else None
    end = temporary.end_of_access(requested, settings.timezone, utcnow(), stored)
    if isinstance(end, temporary.TooFar):
        raise InvalidValue(end.detail())
    doc[ACCESS_USER] = {**doc[ACCESS_USER], "accessExpiresAt": temporary.render(end)}


def _after_status_change(
    session: Session, ctx: RequestContext, user: User, before: str | None, after: str
) -> None:
    """Invitations follow the status: a user entering ``invited`` gets one (never its token in
    the event), a user leaving it loses the pending one. Record the status change."""
    if before == after:
        return
    changes = ctx.audit.changes if ctx.audit.changes is not None else {}
    changes[STATUS_CHANGE] = [before, after]
    if after == lifecycle.INVITED:
        # a user created by this request (no status before) has no invitation to cancel
        issued = lifecycle_store.issue_invitation(session, user, new_user=before is None)
        changes["invitation"] = [None, issued.summary()]
    elif before == lifecycle.INVITED:
        lifecycle_store.cancel_pending(session, user.pk)
    ctx.audit.changes = changes


def create_user(session: Session, ctx: RequestContext, body: Any) -> Rendered:
    rt = user_type(ctx)
    doc = parse_resource(rt, body)
    doc.setdefault("active", True)
    ctx.audit.resource_type = "User"
    ctx.audit.user_name = doc["userName"]
    settings = load_user_settings(session, ctx.principal.org_id, hold=True)
    with _uniqueness_first(session, ctx, doc, None):
        _check_domain_policy(ctx, settings.domains, doc, None)
        _check_new_roles(session, ctx, doc, None)
        _temporary_access(settings, doc, None)
        status = lifecycle.initial_status(doc["active"] is not False, settings.domains.enforces_sso)
        seat = domains.seat_domain(doc)
        _check_seat(session, ctx, settings, None, status, doc, seat)
    user = User(
        id=str(uuid.uuid4()),
        org_id=ctx.principal.org_id,
        owner_connection_id=ctx.principal.connection_id,
        status=status,
        activated_at=utcnow() if status == lifecycle.ACTIVE else None,
        # the product's to write; set here so rendering does not load them back
        last_sign_in_at=None,
        last_activity_at=None,
    )
    _store(session, ctx, user, doc, None, seat)  # inserts it
    access = initial_access(
        session, ctx.principal.org_id, user, _role_names(doc), settings.default_role_pk
    )
    _record_change(ctx, user, None, doc, access_changes(NO_ACCESS, access))
    _after_status_change(session, ctx, user, None, status)
    return _rendered(render(ctx, user, access))


def get_user(session: Session, ctx: RequestContext, user_id: str) -> Rendered:
    loaded = _load(session, ctx, user_id, for_update=False)
    return _rendered(_render(ctx, loaded))


def replace_user(
    session: Session, ctx: RequestContext, user_id: str, body: Any, if_match: str | None
) -> Rendered:
    rt = user_type(ctx)
    loaded, settings = _load_for_write(session, ctx, user_id)
    user = loaded.user
    guards.require_owner(session, ctx, "User", user)
    check_if_match(if_match, _current_tag(loaded))
    previous = user.data
    doc = parse_resource(rt, body, existing=previous)
    # A PUT that omits ``active`` does not reactivate or deactivate anyone.
    doc.setdefault("active", user.active)
    return _write(session, ctx, loaded, settings, doc, previous)


def _write(
    session: Session,
    ctx: RequestContext,
    loaded: LoadedUser,
    settings: UserSettings,
    doc: dict[str, Any],
    previous: dict[str, Any],
) -> Rendered:
    """Store a replaced or patched document, recompute access if its roles changed."""
    user = loaded.user
    before_status, was_active = user.status, bool(user.active)
    with _uniqueness_first(session, ctx, doc, user):
        _check_domain_policy(ctx, settings.domains, doc, previous)
        roles_changed = _check_new_roles(session, ctx, doc, previous)
        _temporary_access(settings, doc, user)
        try:
            status = lifecycle.next_status(
                before_status,
                user.active,
                doc.get("active") is not False,
                ever_active=user.activated_at is not None,
                enforces_sso=settings.domains.enforces_sso,
            )
        except lifecycle.LockedUser:
            raise Conflict(
                f'user "{user.user_name}" is locked (after failed sign-ins) and SCIM cannot '
                "unlock it: active stays false until an admin of the organisation unlocks the "
                f"user (scim-server user unlock --org {settings.slug} USERNAME)"
            ) from None
        seat = domains.seat_domain(doc)
        _check_seat(session, ctx, settings, user, status, doc, seat)
    lifecycle_columns: dict[str, Any] = {}
    if status != before_status:
        lifecycle_columns["status"] = status
        if status == lifecycle.ACTIVE and user.activated_at is None:
            lifecycle_columns["activated_at"] = utcnow()
    if doc != previous:
        _store(session, ctx, user, doc, previous, seat, lifecycle_columns)  # one UPDATE
    else:
        for key, value in lifecycle_columns.items():  # flushed by the ORM
            setattr(user, key, value)
    access = loaded.access
    access_change: dict[str, list[Any]] = {}
    if roles_changed:
        access, access_change = _recompute(session, ctx, user, loaded.access)
    guards.check_user_left(session, ctx, user, loaded.access[0], previous, doc)
    refuse_temporary_admin(session, ctx.principal.org_id, user, access[0])
    if was_active and doc.get("active") is False:
        deprovisioning.admit(session, ctx, settings.deprovision, user.id, user.user_name)
    _record_change(ctx, user, previous, doc, access_change)
    _after_status_change(session, ctx, user, before_status, status)
    return _rendered(render(ctx, user, access, loaded.groups))


def patch_user(
    session: Session, ctx: RequestContext, user_id: str, body: Any, if_match: str | None
) -> Rendered:
    rt = user_type(ctx)
    loaded, settings = _load_for_write(session, ctx, user_id)
    user = loaded.user
    guards.require_owner(session, ctx, "User", user)
    check_if_match(if_match, _current_tag(loaded))
    previous = user.data
    patched = apply_patch(rt, previous, body)
    doc = parse_resource(rt, patched, existing=previous)
    return _write(session, ctx, loaded, settings, doc, previous)


def delete_user(session: Session, ctx: RequestContext, user_id: str, if_match: str | None) -> None:
    loaded, settings = _load_for_write(session, ctx, user_id, with_groups=True)
    user = loaded.user
    guards.require_owner(session, ctx, "User", user)
    check_if_match(if_match, _current_tag(loaded))
    # deleting a deactivated user takes nothing away
    deprovisions, user_name = bool(user.active), user.user_name
    mode = settings.delete_mode
    # The event keeps a tombstone: every value the user had when it was deleted, and the access
    # it held (its user_access row and memberships go with it, by ON DELETE CASCADE — or, for a
    # soft delete, explicitly: a hidden user grants nothing and belongs to no group).
    _record_change(ctx, user, user.data, None, access_changes(loaded.access, NO_ACCESS))
    changes = ctx.audit.changes if ctx.audit.changes is not None else {}
    changes[STATUS_CHANGE] = [user.status, None]
    changes["deleteMode"] = [None, mode]
    left = touch_groups_of_user(session, user.pk)
    if left:
        changes["groups"] = [left, None]
    revoked = lifecycle_store.revoke_api_keys(session, user.pk)
    if revoked:
        changes["apiKeysRevoked"] = [None, revoked]
    lifecycle_store.cancel_pending(session, user.pk)
    ctx.audit.changes = changes
    if mode == "soft":
        session.execute(delete(GroupMember).where(GroupMember.user_pk == user.pk))
        session.execute(delete(UserAccess).where(UserAccess.user_pk == user.pk))
        user.deleted_at = utcnow()
        user.last_modified = user.deleted_at
    else:
        session.delete(user)
    session.flush()
    guards.check_user_left(session, ctx, user, loaded.access[0], user.data, None)
    if deprovisions:
        deprovisioning.admit(session, ctx, settings.deprovision, user_id, user_name, deleting=True)


@functools.cache
def _user_list_source() -> paging.ListSource:
    """``/Users`` pages select primary keys only; ``_rendered_page`` reads their users with a
    prebuilt statement."""
    return paging.ListSource(
        columns=(User.pk,),
        pk=User.pk,
        conditions=(User.org_id == bindparam("org_id"), User.deleted_at.is_(None)),
    )


def list_users(session: Session, ctx: RequestContext, query: ListQuery) -> Page:
    rt = user_type(ctx)
    projection: Projection = parse_projection(rt, query.attributes, query.excluded_attributes)
    listing, parameters = paging.prepared_listing(
        rt, USER_STORAGE, _user_list_source(), query, ctx.principal.org_id
    )

    def render_rows(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """The page's users, read by primary key with the prebuilt statement."""
        documents = _rendered_page(session, ctx, [row[0] for row in rows])
        return [apply_projection(rt, document, projection) for document in documents]

    if query.cursor is not None:
        return paging.cursor_page(session, ctx, "User", query, listing, parameters, render_rows)
    total, rows = paging.index_page(session, query, listing, parameters)
    resources = render_rows(rows)
    return Page(total=total, start_index=query.start_index, resources=resources)
