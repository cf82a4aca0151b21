"""The mass-deprovisioning guard (DESIGN §5.4 item 8).

A misconfigured assignment in Okta or Entra (a group unassigned from the app, a scoping filter
gone wrong) deactivates or deletes a whole company in one sync cycle. The guard bounds what one
connection may take away before a human looks:

- **Counted:** a SCIM write that deactivates a user who was not deactivated (PATCH or PUT
  ``active: false``), or deletes one (hard or soft). Deleting a user already deactivated takes
  nothing away and is not counted; nor is anything an admin does from the CLI.
- **Limit:** per organisation, ``N`` users or ``P%`` of its users (not deleted; at least 1)
  within a sliding window (default: 50 users in 10 minutes), counted per connection. The
  deprovisioning that reaches the limit still passes and opens a *hold*, in its own transaction
  (its event says so).
- **Held:** while a connection's hold is open, each of its deprovisioning requests answers 503
  with ``Retry-After``, changes nothing and is recorded. The IdP keeps the operation (Entra
  retries it on later cycles, Okta keeps a failed task to retry), so nothing it meant is lost.
  Every other request of the connection passes.
- **Release** (``scim-server deprovisioning release``): the hold ends and the connection's
  deprovisioning passes *uncounted* for a grace period (default 1 hour), so the IdP's retries of
  an intended mass offboarding go through; counting starts afresh after it. Releasing with no
  hold open approves a planned offboarding ahead of time.
- **Reject** (``scim-server deprovisioning reject``): the admin says the wave is a mistake. The
  connection's deprovisioning is refused with 409 (a permanent error, so the IdP stops retrying
  and shows it) for a period (default 24 hours) while the assignments are fixed; ``release``
  ends it early.

Race safety: the count and the hold are decided under a lock of the connection's row (``FOR NO
KEY UPDATE`` on PostgreSQL, which does not wait for writes that only reference the connection;
SQLite has one writer at a time), taken after the user's row, so two deprovisions at 49 of 50
take turns and the second sees the first. Five statements per counted deprovisioning (six with a
percentage: the users are counted); none when the guard is off or the user was already
deactivated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from scim_server.scim.errors import Conflict, ScimError
from scim_server.services.errors import ServiceError
from scim_server.store.models import (
    Connection,
    Deprovision,
    DeprovisioningHold,
    Organization,
    User,
)
from scim_server.store.types import utcnow

if TYPE_CHECKING:
    from scim_server.services.context import RequestContext

HELD = "held"
RELEASED = "released"
REJECTED = "rejected"
#: What a held IdP is told to wait before retrying: about one window of the default setting.
RETRY_AFTER_SECONDS = 600
DEFAULT_RELEASE = timedelta(hours=1)
DEFAULT_REJECTION = timedelta(hours=24)
MAX_WINDOW_MINUTES = 24 * 60
#: Users of a wave a hold remembers (and ``deprovisioning show`` lists).
LISTED_USERS = 1000
#: Holds ``deprovisioning list`` shows.
LISTED_HOLDS = 100

_LIMIT = re.compile(r"^\s*(\d+)\s*(%?)\s*$")


# -- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """An organisation's guard setting; ``value`` None: the guard is off."""

    value: int | None
    is_percent: bool
    window_minutes: int

    def describe(self) -> str:
        if self.value is None:
            return "off"
        amount = f"{self.value}% of the users" if self.is_percent else f"{self.value} users"
        return f"{amount} in {self.window_minutes} minutes"

    def threshold(self, session: Session, org_id: int) -> int:
        """How many deprovisions one connection may make within the window."""
        assert self.value is not None
        if not self.is_percent:
            return self.value
        users = session.scalar(
            select(func.count()).where(User.org_id == org_id, User.deleted_at.is_(None))
        )
        return max(1, math.floor((users or 0) * self.value / 100))


GUARD_OFF = Limit(None, False, 10)


def limit_of(org: Organization) -> Limit:
    is_percent = bool(org.deprovision_limit_is_percent)
    return Limit(org.deprovision_limit, is_percent, org.deprovision_window_minutes)


def parse_limit(text: str) -> tuple[int | None, bool]:
    """``50`` (users), ``10%`` (of the organisation's users) or ``off``."""
    if text.strip().lower() in {"off", "none"}:
        return None, False
    match = _LIMIT.match(text)
    if match is None:
        raise ServiceError(
            f"--deprovision-limit: {text!r} is not a number of users (50), a percentage of the "
            "organisation's users (10%) or 'off'"
        )
    value, is_percent = int(match[1]), bool(match[2])
    if value < 1 or (is_percent and value > 100):
        bound = "between 1% and 100%" if is_percent else "at least 1"
        raise ServiceError(f"--deprovision-limit: must be {bound}, got {text.strip()!r}")
    return value, is_percent


def parse_window(text: str) -> int:
    """The window in whole minutes, 1 to 1440."""
    try:
        minutes = int(text)
    except ValueError:
        raise ServiceError(
            f"--deprovision-window: {text!r} is not a whole number of minutes"
        ) from None
    if not 1 <= minutes <= MAX_WINDOW_MINUTES:
        raise ServiceError(
            f"--deprovision-window: must be between 1 and {MAX_WINDOW_MINUTES} minutes, "
            f"got {minutes}"
        )
    return minutes


# -- the SCIM path ---------------------------------------------------------------------------


class DeprovisioningHeld(ScimError):
    """503: the IdP retries, and the deprovisioning waits for an admin's decision."""

    status = 503


class DeprovisioningRejected(Conflict):
    """409: an admin rejected this connection's deprovisioning; retrying will not help."""


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


# Built once, with bound parameters, so SQLAlchemy memoises their compiled form (issue #7).
_CONNECTION: BindParameter[str] = bindparam("connection")
#: The connection's row ``FOR NO KEY UPDATE``: inserts that only reference it do not wait.
_LOCK_CONNECTION = (
    select(Connection.name).where(Connection.id == _CONNECTION).with_for_update(key_share=True)
)
_NEWEST_HOLD = (
    select(
        DeprovisioningHold.state,
        DeprovisioningHold.opened_at,
        DeprovisioningHold.user_count,
        DeprovisioningHold.rule,
        DeprovisioningHold.decided_at,
        DeprovisioningHold.until,
    )
    .where(DeprovisioningHold.connection_id == _CONNECTION)
    .order_by(DeprovisioningHold.pk.desc())
    .limit(1)
)
_FORGET_BEFORE = delete(Deprovision).where(
    Deprovision.connection_id == _CONNECTION, Deprovision.at < bindparam("since")
)
_RECORD = insert(Deprovision)
_COUNT = select(func.count()).where(Deprovision.connection_id == _CONNECTION)


def _newest_hold(session: Session, connection_id: str) -> DeprovisioningHold | None:
    return session.scalars(
        select(DeprovisioningHold)
        .where(DeprovisioningHold.connection_id == connection_id)
        .order_by(DeprovisioningHold.pk.desc())
        .limit(1)
    ).first()


def _commands(slug: str, connection: str) -> str:
    target = f'--org {slug} --connection "{connection}"'
    return f"scim-server deprovisioning release {target}, or reject {target}"


def admit(session: Session, ctx: RequestContext, limit: Limit, user: User) -> dict[str, Any] | None:
    """Let the request deactivate or delete ``user`` (not deactivated yet), or refuse it.

    Call it before changing anything, after the user's row is locked. Returns what the event
    should say when this deprovisioning reached the limit and opened a hold.
    """
    connection_id = ctx.principal.connection_id
    if limit.value is None or connection_id is None:
        return None
    bound = {"connection": connection_id}
    name = session.scalar(_LOCK_CONNECTION, bound)
    now = utcnow()
    hold = session.execute(_NEWEST_HOLD, bound).first()
    slug = ctx.principal.org_slug
    if hold is not None and hold.state == HELD:
        raise DeprovisioningHeld(
            f'deprovisioning from connection "{name}" is held since {_iso(hold.opened_at)}: it '
            f"deactivated or deleted {hold.user_count} users, the limit of organisation "
            f'"{slug}" ({hold.rule}). Nothing was changed. Retry after an admin of the '
            f"organisation decides ({_commands(slug, str(name))})",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if hold is not None and hold.until is not None and hold.until > now:
        if hold.state == RELEASED:
            return None
        raise DeprovisioningRejected(
            f'deprovisioning from connection "{name}" was rejected by an admin of organisation '
            f'"{slug}" at {_iso(hold.decided_at)}, until {_iso(hold.until)}: fix the '
            "assignments in the identity provider; an admin can end the rejection with "
            f'scim-server deprovisioning release --org {slug} --connection "{name}"'
        )
    since = now - timedelta(minutes=limit.window_minutes)
    if hold is not None and hold.until is not None and hold.until > since:
        since = hold.until
    org_id = ctx.principal.org_id
    session.execute(_FORGET_BEFORE, {**bound, "since": since})
    session.execute(
        _RECORD,
        {
            "org_id": org_id,
            "connection_id": connection_id,
            "user_id": user.id,
            "user_name": user.user_name,
            "at": now,
        },
    )
    count = session.scalar(_COUNT, bound) or 0
    if count < limit.threshold(session, org_id):
        return None
    wave = session.execute(
        select(Deprovision.user_id, Deprovision.user_name, Deprovision.at)
        .where(Deprovision.connection_id == connection_id)
        .order_by(Deprovision.pk)
        .limit(LISTED_USERS)
    ).all()
    rule = limit.describe()
    session.add(
        DeprovisioningHold(
            org_id=org_id,
            connection_id=connection_id,
            state=HELD,
            opened_at=now,
            rule=rule,
            user_count=count,
            users=[{"id": i, "userName": n, "at": _iso(a)} for i, n, a in wave],
        )
    )
    return {"connection": name, "count": count, "limit": rule}


def record_opened(ctx: RequestContext, opened: dict[str, Any] | None) -> None:
    """Say in the request's event that it opened a hold (after the use case set its changes)."""
    if opened is not None:
        changes = ctx.audit.changes if ctx.audit.changes is not None else {}
        changes["deprovisioningHold"] = [None, opened]
        ctx.audit.changes = changes


# -- admin -----------------------------------------------------------------------------------


def hold_view(
    hold: DeprovisioningHold, connection_name: str, *, with_users: bool
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": hold.pk,
        "connection": {"id": hold.connection_id, "name": connection_name},
        "state": hold.state,
        "openedAt": _iso(hold.opened_at),
        "rule": hold.rule,
        "count": hold.user_count,
        "decidedAt": _iso(hold.decided_at),
        "decidedBy": hold.decided_by,
        "until": _iso(hold.until),
    }
    if with_users:
        view["users"] = hold.users
    return view


def list_holds(session: Session, org: Organization, *, open_only: bool) -> list[dict[str, Any]]:
    """The organisation's holds, newest first."""
    query = (
        select(DeprovisioningHold, Connection.name)
        .join(Connection, Connection.id == DeprovisioningHold.connection_id)
        .where(DeprovisioningHold.org_id == org.id)
        .order_by(DeprovisioningHold.pk.desc())
        .limit(LISTED_HOLDS)
    )
    if open_only:
        query = query.where(DeprovisioningHold.state == HELD)
    return [hold_view(hold, name, with_users=False) for hold, name in session.execute(query)]


def show_hold(session: Session, org: Organization, hold_pk: int) -> dict[str, Any]:
    row = session.execute(
        select(DeprovisioningHold, Connection.name)
        .join(Connection, Connection.id == DeprovisioningHold.connection_id)
        .where(DeprovisioningHold.org_id == org.id, DeprovisioningHold.pk == hold_pk)
    ).first()
    if row is None:
        raise ServiceError(f"no deprovisioning hold {hold_pk} in organisation {org.slug!r}")
    return hold_view(row[0], row[1], with_users=True)


@dataclass(frozen=True)
class Decision:
    connection: Connection
    before: str | None
    hold: DeprovisioningHold

    def changes(self) -> dict[str, Any]:
        return {
            "connection": [None, {"id": self.connection.id, "name": self.connection.name}],
            "deprovisioning": [self.before, self.hold.state],
            "until": [None, _iso(self.hold.until)],
            "heldUsers": [None, self.hold.user_count],
        }


def decide(
    session: Session,
    org: Organization,
    connection: Connection,
    state: str,
    duration: timedelta,
    actor: str,
) -> Decision:
    """Release or reject the connection's hold (release also ends a rejection, or approves
    deprovisioning ahead of time when nothing is held)."""
    # The connection's row, as the SCIM path locks it: no deprovisioning is half-decided.
    session.execute(_LOCK_CONNECTION, {"connection": connection.id})
    now = utcnow()
    hold = _newest_hold(session, connection.id)
    ongoing = hold is not None and (
        hold.state == HELD or (hold.until is not None and hold.until > now)
    )
    before = hold.state if hold is not None and ongoing else None
    if state == REJECTED and before != HELD:
        raise ServiceError(
            f"no deprovisioning of connection {connection.name!r} is held"
            + (f" (it is {before})" if before else "")
            + "; nothing to reject"
        )
    if hold is None or before not in {HELD, REJECTED}:
        hold = DeprovisioningHold(
            org_id=org.id,
            connection_id=connection.id,
            opened_at=now,
            rule=limit_of(org).describe(),
            user_count=0,
            users=[],
        )
        session.add(hold)
    hold.state = state
    hold.decided_at = now
    hold.decided_by = actor
    hold.until = now + duration
    session.flush()
    return Decision(connection, before, hold)
