"""User lifecycle around SCIM writes (DESIGN §5.3) and the seat limit (§5.4 item 5).

The status rules are the pure :mod:`scim_server.policy.lifecycle`; this module stores what they
decide: invitations (an outbox the mailer drains), users' API keys (revoked on delete), the
seat count, and the admin actions (invitation list/resend/cancel, unlock, purge).

Decisions an admin should know about:

- An invitation's link token is random (256 bits), checked by its SHA-256, valid 24 hours from
  the invitation, and never logged or put in an event. It is made when the mailer takes the
  message (``invitation drain``), which stores its hash and hands the clear token over: no
  clear token is ever at rest (DESIGN §5.3 "stored hashed"). A resend cancels the pending
  invitation and writes a new one, so the old link stops working.
- A user leaving ``invited`` (deactivated, deleted) has its pending invitation cancelled: a link
  in someone's mailbox must not let a deprovisioned user in. Reactivating a user that never
  accepted writes a new invitation.
- Seats: users ``invited`` or ``active``, not deleted, whose seat domain (``userName`` when it
  is an email, else the primary email) is not an exempt domain. A write that makes a user start
  holding a seat (create, reactivation, unlock, an address moving out of an exempt domain) is
  refused with 403 when every seat is taken. Lowering the limit below the current count refuses
  new seats only; nobody is deactivated.
- Counting is race-safe: on PostgreSQL the count runs under a transaction-level advisory lock
  keyed by the organisation, so two creates at 49 of 50 take turns and the second counts the
  first. (Not ``FOR UPDATE`` on the organisation row: access recomputation holds that row
  ``FOR SHARE`` while locking users, and a PATCH holds its user before counting; the two would
  deadlock.) On SQLite a write transaction already excludes every other writer.
"""

from __future__ import annotations

import functools
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from scim_server.policy import lifecycle
from scim_server.policy.domains import DomainSettings, email_domain
from scim_server.scim.errors import Forbidden
from scim_server.services.deprovisioning import GUARD_OFF, Limit
from scim_server.services.errors import ServiceError
from scim_server.services.tokens import hash_token
from scim_server.store.access import shared_rules_turn
from scim_server.store.models import Invitation, Organization, User, UserApiKey
from scim_server.store.text import same_text
from scim_server.store.types import utcnow

INVITATION_TTL = timedelta(hours=24)
#: Namespace of the seat advisory locks (PostgreSQL), the organisation id being the other key.
SEAT_LOCK_NAMESPACE = 0x5EA7
API_KEY_PREFIX = "uak_"
#: Invitations listed at most by ``invitation list``.
MAX_LISTED = 1000


@dataclass(frozen=True)
class UserSettings:
    """The organisation settings every SCIM user write needs, read in one statement."""

    slug: str
    domains: DomainSettings
    seat_limit: int | None
    exempt_domains: tuple[str, ...]
    delete_mode: str
    timezone: str
    #: The role of users nobody gives one (DESIGN §5.2); None: no permissions.
    default_role_pk: int | None = None
    #: The mass-deprovisioning guard's setting (DESIGN §5.4 item 8).
    deprovision: Limit = GUARD_OFF


@functools.cache
def _settings_query(*, hold: bool) -> Select[*tuple[Any, ...]]:
    """Built once with a bound parameter, so SQLAlchemy memoises its cache key (issue #7)."""
    query: Select[*tuple[Any, ...]] = select(
        Organization.slug,
        Organization.sso_domain,
        Organization.allowed_domains,
        Organization.allow_subdomains,
        Organization.seat_limit,
        Organization.exempt_domains,
        Organization.delete_mode,
        Organization.timezone,
        Organization.default_role_pk,
        Organization.deprovision_limit,
        Organization.deprovision_limit_is_percent,
        Organization.deprovision_window_minutes,
    ).where(Organization.id == bindparam("org_id"))
    if not hold:
        return query
    return query.where(shared_rules_turn(bindparam("org_id"))).with_for_update(read=True)


def load_user_settings(session: Session, org_id: int, *, hold: bool = False) -> UserSettings:
    """The organisation's settings; with ``hold``, also hold them and its rules still.

    ``hold`` reads the row ``FOR SHARE``: the same lock as
    :func:`~scim_server.services.access.hold_rules`, taken by the same statement that reads the
    settings (a SCIM user write took one statement for each before issue #7). Like
    ``hold_rules`` it must come before the write locks its user.
    """
    row = session.execute(_settings_query(hold=hold), {"org_id": org_id}).one()
    slug, sso, allowed, subdomains, limit, exempt, mode, timezone, default_role_pk = row[:9]
    return UserSettings(
        slug,
        DomainSettings(sso, tuple(allowed or ()), bool(subdomains)),
        limit,
        tuple(exempt or ()),
        mode,
        timezone,
        default_role_pk,
        Limit(row[9], bool(row[10]), row[11]),
    )


# -- seats -----------------------------------------------------------------------------------


def _lock_seats(session: Session, org_id: int) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :org)"),
            {"namespace": SEAT_LOCK_NAMESPACE, "org": org_id},
        )


def seats_used(
    session: Session, org_id: int, exempt_domains: tuple[str, ...], *, besides: int | None = None
) -> int:
    """Seats taken in the organisation (one COUNT), not counting user ``besides``."""
    conditions = [
        User.org_id == org_id,
        User.deleted_at.is_(None),
        User.status.in_(lifecycle.SEATED),
        # temporary access that has ended: ``expired``, no seat
        User.access_expires_at.is_(None) | (User.access_expires_at > utcnow()),
    ]
    if exempt_domains:
        conditions.append(
            User.seat_domain.is_(None) | User.seat_domain.not_in(list(exempt_domains))
        )
    if besides is not None:
        conditions.append(User.pk != besides)
    return session.scalar(select(func.count()).select_from(User).where(*conditions)) or 0


def seat_refusal(
    session: Session, org_id: int, settings: UserSettings, user_pk: int | None
) -> lifecycle.SeatsFull | None:
    """Lock the organisation's seats and say whether one more would go over the limit."""
    if settings.seat_limit is None:
        return None
    _lock_seats(session, org_id)
    used = seats_used(session, org_id, settings.exempt_domains, besides=user_pk)
    return lifecycle.check_seat(used, settings.seat_limit)


def require_seat(
    session: Session, org_id: int, settings: UserSettings, user_pk: int | None
) -> None:
    """Refuse (403) a SCIM write that would take a seat beyond the limit."""
    full = seat_refusal(session, org_id, settings, user_pk)
    if full is not None:
        raise Forbidden(full.detail(settings.slug))


# -- invitations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedInvitation:
    """A new invitation, waiting for the mailer: its link's token is made when it is sent."""

    invitation: Invitation

    def summary(self) -> dict[str, Any]:
        return invitation_view(self.invitation)


def invitation_view(invitation: Invitation, user: User | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": invitation.id,
        "created": _iso(invitation.created_at),
        "expires": _iso(invitation.expires_at),
        "sent": _iso(invitation.sent_at),
        "cancelled": _iso(invitation.cancelled_at),
        "accepted": _iso(invitation.accepted_at),
    }
    if user is not None:
        view = {"id": invitation.id, "userId": user.id, "userName": user.user_name, **view}
    return view


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


#: Prebuilt (issue #7): the same statements with bound parameters, their cache keys memoised.
_INSERT_INVITATION = insert(Invitation.metadata.tables[Invitation.__tablename__])
_CANCEL_PENDING = (
    update(Invitation)
    .where(
        Invitation.user_pk == bindparam("pending_user_pk"),
        Invitation.cancelled_at.is_(None),
        Invitation.accepted_at.is_(None),
        Invitation.expires_at > bindparam("cancel_time"),
    )
    .values(cancelled_at=bindparam("cancel_time"))
    .execution_options(synchronize_session=False)
)


def issue_invitation(session: Session, user: User, *, new_user: bool = False) -> IssuedInvitation:
    """Cancel the user's pending invitations and put a new one in the outbox.

    ``new_user``: the user was created in this transaction and cannot have an invitation yet,
    so there is nothing to cancel (one statement fewer per create).
    """
    if not new_user:
        cancel_pending(session, user.pk)
    now = utcnow()
    values = {
        "id": str(uuid.uuid4()),
        "org_id": user.org_id,
        "user_pk": user.pk,
        "token_hash": None,  # made when the mailer takes the message (drain_outbox)
        "created_at": now,
        "expires_at": now + INVITATION_TTL,
        "sent_at": None,
        "cancelled_at": None,
        "accepted_at": None,
    }
    # A Core INSERT rather than a unit-of-work flush of a new object: the row is never read
    # back in this transaction; the (transient) object only describes it for the event.
    session.execute(_INSERT_INVITATION, values)
    return IssuedInvitation(Invitation(**values))


def cancel_pending(session: Session, user_pk: int) -> int:
    """Cancel the user's invitations not yet accepted, cancelled or expired; return how many."""
    result = session.execute(_CANCEL_PENDING, {"pending_user_pk": user_pk, "cancel_time": utcnow()})
    return int(getattr(result, "rowcount", 0) or 0)


def accept_invitation(session: Session, token: str) -> User:
    """The host product's sign-up: a valid link makes its invited user ``active``."""
    now = utcnow()
    invitation = session.scalar(
        select(Invitation).where(Invitation.token_hash == hash_token(token)).with_for_update()
    )
    if (
        invitation is None
        or invitation.cancelled_at is not None
        or invitation.accepted_at is not None
        or invitation.expires_at <= now
    ):
        raise ServiceError("this invitation link is not valid (expired, cancelled or used)")
    user = session.get(User, invitation.user_pk)
    if user is None or user.deleted_at is not None or user.status != lifecycle.INVITED:
        raise ServiceError("this invitation link is not valid (the user is no longer invited)")
    invitation.accepted_at = now
    user.status = lifecycle.ACTIVE
    user.activated_at = now
    session.flush()
    return user


def find_user(session: Session, org_id: int, user_name_or_id: str) -> User:
    """A live (not deleted) user of the organisation, by userName (case-insensitive) or id."""
    wanted = user_name_or_id.strip()
    user = session.scalar(
        select(User)
        .where(
            User.org_id == org_id,
            User.deleted_at.is_(None),
            same_text(User.user_name, wanted) | (User.id == wanted),
        )
        .with_for_update()
    )
    if user is None:
        raise NoSuchUser(f"no user {user_name_or_id!r} in this organisation")
    return user


class NoSuchUser(ServiceError):
    """No live user of the organisation has that userName or id (a 404 where it is the target)."""


def list_invitations(
    session: Session, org_id: int, *, pending_only: bool = False
) -> list[dict[str, Any]]:
    query = (
        select(Invitation, User)
        .join(User, User.pk == Invitation.user_pk)
        .where(Invitation.org_id == org_id, User.deleted_at.is_(None))
    )
    if pending_only:
        query = query.where(
            Invitation.cancelled_at.is_(None),
            Invitation.accepted_at.is_(None),
            Invitation.expires_at > utcnow(),
        )
    rows = session.execute(query.order_by(Invitation.created_at, Invitation.id).limit(MAX_LISTED))
    return [invitation_view(invitation, user) for invitation, user in rows]


def resend_invitation(session: Session, org_id: int, user_name_or_id: str) -> IssuedInvitation:
    user = find_user(session, org_id, user_name_or_id)
    if user.status != lifecycle.INVITED:
        raise ServiceError(
            f"user {user.user_name!r} is {user.status}, not invited: there is nothing to resend"
        )
    return issue_invitation(session, user)


def cancel_invitation(session: Session, org_id: int, user_name_or_id: str) -> User:
    user = find_user(session, org_id, user_name_or_id)
    if cancel_pending(session, user.pk) == 0:
        raise ServiceError(f"user {user.user_name!r} has no pending invitation")
    return user


# -- unlock, API keys, purge -----------------------------------------------------------------


def unlock_user(session: Session, org: Organization, user_name_or_id: str) -> tuple[User, str]:
    """Lift a lock (admin only, DESIGN §5.3); the user takes the seat its new status needs."""
    user = find_user(session, org.id, user_name_or_id)
    if user.status != lifecycle.LOCKED:
        raise ServiceError(f"user {user.user_name!r} is {user.status}, not locked")
    settings = load_user_settings(session, org.id)
    status = lifecycle.unlocked_status(
        user.active,
        ever_active=user.activated_at is not None,
        enforces_sso=settings.domains.enforces_sso,
    )
    effective = lifecycle.effective_status(status, user.access_expires_at, utcnow())
    if lifecycle.holds_seat(effective, user.seat_domain, settings.exempt_domains):
        full = seat_refusal(session, org.id, settings, user.pk)
        if full is not None:
            raise ServiceError(full.detail(org.slug))
    user.status = status
    if status == lifecycle.ACTIVE and user.activated_at is None:
        user.activated_at = utcnow()
    user.last_modified = utcnow()
    session.flush()
    if status == lifecycle.INVITED:
        issue_invitation(session, user)
    return user, status


def issue_api_key(session: Session, user: User, name: str) -> str:
    """A new API key owned by ``user`` (the host product's; returned once, stored hashed)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        UserApiKey(
            org_id=user.org_id,
            user_pk=user.pk,
            name=name,
            prefix=key[: len(API_KEY_PREFIX) + 6],
            key_hash=hash_token(key),
        )
    )
    session.flush()
    return key


def revoke_api_keys(session: Session, user_pk: int) -> list[str]:
    """Revoke the user's live API keys; return their prefixes (for the audit event)."""
    keys = session.scalars(
        select(UserApiKey)
        .where(UserApiKey.user_pk == user_pk, UserApiKey.revoked_at.is_(None))
        .order_by(UserApiKey.pk)
    ).all()
    now = utcnow()
    for key in keys:
        key.revoked_at = now
    session.flush()
    return [key.prefix for key in keys]


def organizations_with_users_to_purge(session: Session, days: int | None) -> list[tuple[int, str]]:
    """(id, slug) of the organisations holding a user soft-deleted more than ``days`` ago, or
    more than its own retention period when ``days`` is None: a daily ``users purge --all``
    writes only where there is something to purge. One read."""
    oldest = (
        select(User.org_id, func.min(User.deleted_at).label("oldest"))
        .where(User.deleted_at.is_not(None))
        .group_by(User.org_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Organization.id,
            Organization.slug,
            Organization.soft_delete_retention_days,
            oldest.c.oldest,
        )
        .join(oldest, oldest.c.org_id == Organization.id)
        .order_by(Organization.id)
    ).all()
    now = utcnow()
    return [
        (org_id, slug)
        for org_id, slug, retention, first in rows
        if first < now - timedelta(days=retention if days is None else days)
    ]


def purge_deleted(session: Session, org_id: int, older_than: timedelta) -> list[tuple[str, str]]:
    """Remove soft-deleted users deleted more than ``older_than`` ago; return (id, userName)."""
    cutoff = utcnow() - older_than
    users = session.scalars(
        select(User)
        .where(User.org_id == org_id, User.deleted_at.is_not(None), User.deleted_at < cutoff)
        .order_by(User.pk)
        .with_for_update()
    ).all()
    purged = [(user.id, user.user_name) for user in users]
    for user in users:
        session.delete(user)
    session.flush()
    return purged


def _address(user: User) -> str | None:
    """Where an invitation goes: the primary email, else the first, else an email userName;
    only one valid address (without a domain policy any text is accepted as an email value,
    and "e@evil.com,x@acme.com" would reach evil.com)."""
    emails = [e for e in user.data.get("emails") or [] if isinstance(e, dict)]
    ordered = [e for e in emails if e.get("primary") is True] + emails
    candidates = [e.get("value") for e in ordered] + [user.user_name]
    return next(
        (c.strip() for c in candidates if isinstance(c, str) and email_domain(c) is not None),
        None,
    )


def drain_outbox(
    session: Session, org_id: int | None, link_template: str | None, limit: int
) -> list[dict[str, Any]]:
    """Hand the messages waiting in the outbox to the mailer, oldest first, and mark them sent.

    Each message's link token is made here: the row keeps its SHA-256, and the clear token
    exists only in the message, in the link (``link_template`` with ``{token}`` replaced) or,
    without a template, on its own. ``FOR UPDATE SKIP LOCKED`` lets several mailers drain at
    once without sending a message twice (PostgreSQL).
    """
    now = utcnow()
    query = (
        select(Invitation, User)
        .join(User, User.pk == Invitation.user_pk)
        .where(
            Invitation.sent_at.is_(None),
            Invitation.cancelled_at.is_(None),
            Invitation.accepted_at.is_(None),
            Invitation.expires_at > now,
            User.deleted_at.is_(None),
        )
        .order_by(Invitation.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Invitation)
    )
    if org_id is not None:
        query = query.where(Invitation.org_id == org_id)
    messages: list[dict[str, Any]] = []
    for invitation, user in session.execute(query).all():
        token = "inv_" + secrets.token_urlsafe(32)
        messages.append(
            {
                "invitationId": invitation.id,
                "orgId": invitation.org_id,
                "userId": user.id,
                "userName": user.user_name,
                "to": _address(user),
                "expires": _iso(invitation.expires_at),
                "link": link_template.replace("{token}", token) if link_template else None,
                "token": None if link_template else token,
            }
        )
        invitation.sent_at = now
        invitation.token_hash = hash_token(token)
    session.flush()
    return messages
