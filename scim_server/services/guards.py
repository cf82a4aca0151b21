"""The last-admin guard and resource ownership (DESIGN §5.4 items 6 and 7, issue #5).

**Last-admin guard.** An *active administrator* is a user whose effective role (``user_access``)
is a role with ``is_admin``, and who is active. A write that takes that standing from someone —
deactivating or deleting them, or changing their effective role to one that is not an admin role
(their ``roles``, a group membership, a group's rename or deletion, a mapping, a role deleted,
the default role) — is refused when, at the end of it, the organisation has no active
administrator left. The rule is one check ("had one before, must have one after"), run wherever a
user stops being an active administrator: :func:`recompute_access
<scim_server.services.access.recompute_access>` (every change of an effective role goes through
it), and the deactivation and deletion of a user. A write that demotes nobody costs nothing; an
organisation that never had an active administrator is never refused. A SCIM request answers 409
without ``scimType`` (RFC 7644 §3.12 has none for a business rule); an admin command fails with
the same message.

Race safety (PostgreSQL, READ COMMITTED): two requests deactivating the last two administrators
at once must not both pass, each counting the other as still active. So the check takes a
transaction-scoped advisory lock per organisation, then counts, in a statement whose snapshot
sees whatever the previous holder committed. Not ``FOR UPDATE`` on the organisation row: every
recomputation holds that row ``FOR SHARE`` (:func:`~scim_server.services.access.lock_rules`),
and two transactions each holding it and asking to upgrade would deadlock. The advisory lock is
taken only by a write that demotes someone, after its other locks, and its holder only appends
its audit event afterwards, so it waits for nothing a waiter holds. On SQLite a write
transaction already excludes every other writer (``BEGIN IMMEDIATE``).

**Ownership.** A user or group remembers the connection that created it
(``owner_connection_id``). Another connection of the organisation may read it (and list it, and
name a user as a member of its own groups) but not replace, patch or delete it: 409, naming the
owning connection. ``scim-server connection transfer`` moves ownership (an IdP migration).
Resources without an owner — created outside SCIM, or whose connection was deleted — may be
changed by any connection, and a change does not claim them: ownership is never decided by who
happened to write first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.orm import Session

from scim_server.scim.errors import Conflict
from scim_server.services.errors import ServiceError
from scim_server.store.models import Connection, Group, Organization, Role, User, UserAccess

if TYPE_CHECKING:
    from scim_server.services.context import RequestContext

#: First key of ``pg_advisory_xact_lock(key, org_id)``: this guard's lock space.
ADMIN_GUARD_LOCK = 0x5C1A
#: Users named in a refusal.
NAMED_USERS = 5
#: Pks per ``IN (...)`` list.
CHUNK = 5000


class LastAdministrator(Conflict, ServiceError):
    """Refusal by the last-admin guard: 409 on the SCIM surface, a failed admin command."""


class NotOwner(Conflict):
    """A connection changing a resource another connection of the organisation owns."""


# -- last-admin guard ------------------------------------------------------------------------


def _active() -> ColumnElement[bool]:
    """What "active" means for an administrator: not deactivated (the SCIM ``active`` flag) and
    not deleted. Invited, locked or expired administrators still count: another admin, or the
    user accepting an invitation, can bring them back; a deactivated or deleted one cannot."""
    return and_(User.active.is_(true()), User.deleted_at.is_(None))


def _lock(session: Session, org_id: int) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(ADMIN_GUARD_LOCK, org_id)))


def _has_active_admin(session: Session, org_id: int) -> bool:
    found = session.scalar(
        select(User.pk)
        .join(UserAccess, UserAccess.user_pk == User.pk)
        .join(Role, Role.pk == UserAccess.role_pk)
        .where(User.org_id == org_id, _active(), Role.is_admin.is_(true()))
        .limit(1)
    )
    return found is not None


def refuse_if_no_admin_left(
    session: Session,
    org_id: int,
    lost: Sequence[tuple[str, str]],
    action: str,
) -> None:
    """Refuse the transaction if the organisation now has no active administrator.

    ``lost``: (id, userName) of the users who were active administrators before this transaction
    and are not any more; ``action`` says what took it from them ("deactivating").
    """
    if not lost:
        return
    _lock(session, org_id)
    if not _has_active_admin(session, org_id):
        _refuse(session, org_id, lost, action)


def check_role_losses(session: Session, org_id: int, lost_pks: Sequence[int]) -> None:
    """After a recomputation: ``lost_pks`` held an admin role before it and do not after.

    Called by :func:`~scim_server.services.access.recompute_access`; users among them that are
    not active were not active administrators, so they do not count.
    """
    if not lost_pks:
        return
    _lock(session, org_id)
    if _has_active_admin(session, org_id):
        return
    lost: list[tuple[str, str]] = []
    ordered = sorted(set(lost_pks))
    for start in range(0, len(ordered), CHUNK):
        lost += [
            (user_id, user_name)
            for user_id, user_name in session.execute(
                select(User.id, User.user_name)
                .where(User.org_id == org_id, User.pk.in_(ordered[start : start + CHUNK]))
                .where(_active())
                .order_by(User.pk)
            )
        ]
    if lost:
        _refuse(session, org_id, lost, "taking the administrator role from")


def _refuse(session: Session, org_id: int, lost: Sequence[tuple[str, str]], action: str) -> None:
    slug = session.scalar(select(Organization.slug).where(Organization.id == org_id))
    named = ", ".join(f'"{user_name}" (id {user_id})' for user_id, user_name in lost[:NAMED_USERS])
    more = f" and {len(lost) - NAMED_USERS} more" if len(lost) > NAMED_USERS else ""
    who = "user" if len(lost) == 1 else "users"
    raise LastAdministrator(
        f"last-admin guard: {action} {who} {named}{more} would leave organisation "
        f'"{slug}" without an active administrator; give another active user an '
        "administrator role first"
    )


def _is_admin_role(session: Session, org_id: int, role_name: str | None) -> bool:
    if role_name is None:
        return False
    return bool(
        session.scalar(
            select(Role.is_admin).where(Role.org_id == org_id, Role.name == role_name).limit(1)
        )
    )


def check_user_left(
    session: Session,
    ctx: RequestContext,
    user: User,
    role_before: str | None,
    previous: dict[str, Any],
    doc: dict[str, Any] | None,
) -> None:
    """After a SCIM write of ``user`` (``previous``: its document before, ``doc``: after, None
    when deleted; ``role_before``: its effective role before): if it deactivated or deleted an
    active administrator, refuse it when that was the organisation's last one. (A change of role
    is checked by the recomputation.)"""
    if previous.get("active") is False or (doc is not None and doc.get("active") is not False):
        return
    org_id = ctx.principal.org_id
    if not _is_admin_role(session, org_id, role_before):
        return
    action = "deleting" if doc is None else "deactivating"
    refuse_if_no_admin_left(session, org_id, [(user.id, user.user_name)], action)


def admins_among(session: Session, org_id: int, pks: Sequence[int]) -> list[tuple[str, str]]:
    """(id, userName) of the users among ``pks`` whose effective role is an admin role."""
    found: list[tuple[str, str]] = []
    ordered = sorted(set(pks))
    for start in range(0, len(ordered), CHUNK):
        found += [
            (user_id, user_name)
            for user_id, user_name in session.execute(
                select(User.id, User.user_name)
                .join(UserAccess, UserAccess.user_pk == User.pk)
                .join(Role, Role.pk == UserAccess.role_pk)
                .where(
                    User.org_id == org_id,
                    User.pk.in_(ordered[start : start + CHUNK]),
                    Role.is_admin.is_(true()),
                )
                .order_by(User.pk)
            )
        ]
    return found


# -- ownership -------------------------------------------------------------------------------


def require_owner(session: Session, ctx: RequestContext, kind: str, resource: User | Group) -> None:
    """Refuse a change of ``resource`` by a connection other than the one that owns it."""
    owner = resource.owner_connection_id
    caller = ctx.principal.connection_id
    if owner is None or caller is None or owner == caller:
        return
    names = dict(
        session.execute(
            select(Connection.id, Connection.name).where(Connection.id.in_([owner, caller]))
        ).all()
    )
    raise NotOwner(
        f'{kind} "{resource.id}" belongs to connection "{names.get(owner, "?")}" (id {owner}): '
        f'connection "{names.get(caller, "?")}" (id {caller}) may read it but not change it '
        "(ownership rule); an administrator can move ownership with `scim-server connection "
        f"transfer --org {ctx.principal.org_slug} --from {owner} --to {caller}`"
    )
