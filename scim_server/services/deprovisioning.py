"""The mass-deprovisioning guard (DESIGN §5.4 item 8).

A misconfigured assignment in Okta or Entra (a group unassigned from the app, a scoping filter
gone wrong) deactivates or deletes a whole company in one sync cycle. The guard bounds what one
connection may take away before a human looks:

- **Counted:** the users a SCIM write deactivates (PATCH or PUT ``active: false``) or deletes
  (hard or soft) while they were not deactivated, each user once per window however often it
  flaps. Deleting a user already deactivated takes nothing away and is not counted; nor is
  anything an admin does from the CLI.
- **Limit:** per organisation, ``N`` users or ``P%`` of its users (those not deleted, plus those
  the connection deleted within the window; at least 1) within a sliding window (default: 50
  users in 10 minutes), counted per connection.
- **Held:** the deprovisioning of one user more than the limit is refused and opens a *hold*
  (written after the refused write rolled back: ``services.transaction``). While it is open,
  each of the connection's deprovisioning requests answers 503 with ``Retry-After``, changes
  nothing and is recorded. The IdP keeps the operation (Entra retries it on later cycles, Okta
  keeps a failed task to retry), so nothing it meant is lost. Every other request of the
  connection passes. A hold lasts until an admin decides.
- **Release** (``scim-server deprovisioning release``): the hold ends and the connection's
  deprovisioning passes *uncounted* for a grace period (default 1 hour), so the IdP's retries of
  an intended mass offboarding go through; counting starts afresh after it. Releasing with no
  hold open approves a planned offboarding ahead of time.
- **Reject** (``scim-server deprovisioning reject``): the admin says the wave is a mistake (held,
  or released and still running). The connection's deprovisioning is refused with 409 (a
  permanent error, so the IdP stops retrying and shows it) for a period (default 24 hours)
  while the assignments are fixed; ``release`` ends it early, counting again at once.

Race safety: the count and the hold are decided under a lock of the connection's row (``FOR NO
KEY UPDATE`` on PostgreSQL, which does not wait for writes that only reference the connection;
SQLite has one writer at a time), so two deprovisions at 49 of 50 take turns and the second sees
the first. It is the last lock a deprovisioning write takes (after its groups, its user and the
last-admin guard's), so it closes no cycle with a membership change. Five statements per counted
deprovisioning (seven with a percentage: the users are counted); none when the guard is off or
the user was already deactivated. A percentage counts the organisation's users on each counted
deprovisioning: a scan that grows with the directory (about 20 ms at 200,000 users, measured in
review), paid only by organisations that choose a percentage.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, distinct, exists, func, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from scim_server.scim.errors import Conflict, ScimError
from scim_server.scim.numbers import ascii_integer
from scim_server.services.errors import ServiceError
from scim_server.services.transaction import RefusalWithConsequence
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

_LIMIT = re.compile(r"^\s*([0-9]+)\s*(%?)\s*$")


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

    def threshold(
        self, session: Session, org_id: int, connection_id: str, since: datetime, deleting: bool
    ) -> int:
        """How many users one connection may deprovision within the window. A percentage is of
        the organisation's users as the window began: those not deleted, and those the
        connection deleted within it or is deleting now (a wave of deletes must not lower its
        own limit)."""
        assert self.value is not None
        if not self.is_percent:
            return self.value
        present = session.scalar(
            select(func.count()).where(User.org_id == org_id, User.deleted_at.is_(None))
        )
        still_here = select(User.pk).where(
            User.org_id == org_id, User.id == Deprovision.user_id, User.deleted_at.is_(None)
        )
        deleted = session.scalar(
            select(func.count(distinct(Deprovision.user_id))).where(
                Deprovision.connection_id == connection_id,
                Deprovision.at >= since,
                ~exists(still_here),
            )
        )
        users = (present or 0) + (deleted or 0) + (1 if deleting else 0)
        return max(1, math.floor(users * self.value / 100))


GUARD_OFF = Limit(None, False, 10)


def limit_of(org: Organization) -> Limit:
    is_percent = bool(org.deprovision_limit_is_percent)
    return Limit(org.deprovision_limit, is_percent, org.deprovision_window_minutes)


def parse_limit(text: str, option: str = "--deprovision-limit") -> tuple[int | None, bool]:
    """``50`` (users), ``10%`` (of the organisation's users) or ``off``."""
    if text.strip().lower() in {"off", "none"}:
        return None, False
    match = _LIMIT.match(text)
    if match is None:
        raise ServiceError(
            f"{option}: {text!r} is not a number of users (50), a percentage of the "
            "organisation's users (10%) or 'off'"
        )
    value, is_percent = ascii_integer(match[1]), bool(match[2])
    assert value is not None  # the pattern matched ASCII digits
    if value < 1 or (is_percent and value > 100) or value > 2**31 - 1:
        bound = "between 1% and 100%" if is_percent else f"between 1 and {2**31 - 1}"
        raise ServiceError(f"{option}: must be {bound}, got {text.strip()!r}")
    return value, is_percent


def parse_window(text: str, option: str = "--deprovision-window") -> int:
    """The window in whole minutes, 1 to 1440."""
    minutes = ascii_integer(text)
    if minutes is None:
        raise ServiceError(f"{option}: {text!r} is not a whole number of minutes")
    if not 1 <= minutes <= MAX_WINDOW_MINUTES:
        raise ServiceError(
            f"{option}: must be between 1 and {MAX_WINDOW_MINUTES} minutes, got {text.strip()}"
        )
    return minutes


# -- the SCIM path ---------------------------------------------------------------------------


class DeprovisioningHeld(ScimError):
    """503: the IdP retries, and the deprovisioning waits for an admin's decision."""

    status = 503


class HoldOpened(DeprovisioningHeld, RefusalWithConsequence):
    """The deprovisioning one past the limit: refused like any held one, and the hold it opens
    is committed after the request's write rolled back (``services.transaction``)."""

    def __init__(self, detail: str, open_hold: Callable[[Session], None]) -> None:
        super().__init__(detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        self._open_hold = open_hold

    def consequence(self, session: Session) -> None:
        self._open_hold(session)


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
#: Users the connection deprovisioned within the window, and whether this one is among them.
_COUNT = select(
    func.count(distinct(Deprovision.user_id)),
    func.count().filter(Deprovision.user_id == bindparam("user_id")),
).where(Deprovision.connection_id == _CONNECTION)


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


def _held_detail(name: str, slug: str, since: datetime | None, count: int, rule: str) -> str:
    return (
        f'deprovisioning from connection "{name}" is held since {_iso(since)}: it deactivated '
        f'or deleted {count} users, as many as organisation "{slug}" allows ({rule}). Nothing '
        f"was changed. Retry after an admin of the organisation decides ({_commands(slug, name)})"
    )


def admit(
    session: Session,
    ctx: RequestContext,
    limit: Limit,
    user_id: str,
    user_name: str,
    *,
    deleting: bool = False,
) -> None:
    """Let the request deactivate or delete a user who was not deactivated, or refuse it.

    Call it last, after every other lock the write takes (its groups, its user, the last-admin
    guard's), just before its event: the connection's lock is then always the last one taken
    and held for the shortest time, so it closes no cycle with a membership change.
    """
    connection_id = ctx.principal.connection_id
    if limit.value is None or connection_id is None:
        return
    bound = {"connection": connection_id}
    name = str(session.scalar(_LOCK_CONNECTION, bound))
    now = utcnow()
    hold = session.execute(_NEWEST_HOLD, bound).first()
    slug = ctx.principal.org_slug
    if hold is not None and hold.state == HELD:
        raise DeprovisioningHeld(
            _held_detail(name, slug, hold.opened_at, hold.user_count, hold.rule),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if hold is not None and hold.until is not None and hold.until > now:
        if hold.state == RELEASED:
            return
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
    counted, again = session.execute(_COUNT, {**bound, "user_id": user_id}).one()
    threshold = limit.threshold(session, org_id, connection_id, since, deleting)
    if again or counted < threshold:
        values = {"org_id": org_id, "connection_id": connection_id, "at": now}
        session.execute(_RECORD, {**values, "user_id": user_id, "user_name": user_name})
        return
    rule = limit.describe()

    def open_hold(fresh: Session) -> None:
        _open_hold(fresh, org_id, connection_id, now, rule)

    raise HoldOpened(_held_detail(name, slug, now, counted, rule), open_hold)


def _open_hold(session: Session, org_id: int, connection_id: str, now: datetime, rule: str) -> None:
    """The hold, with the users of the wave; unless a concurrent refusal opened it already."""
    session.execute(_LOCK_CONNECTION, {"connection": connection_id})
    newest = _newest_hold(session, connection_id)
    if newest is not None and newest.state == HELD:
        return
    wave = session.execute(
        select(Deprovision.user_id, func.min(Deprovision.user_name), func.min(Deprovision.at))
        .where(Deprovision.connection_id == connection_id)
        .group_by(Deprovision.user_id)
        .order_by(func.min(Deprovision.at), Deprovision.user_id)
    ).all()
    session.add(
        DeprovisioningHold(
            org_id=org_id,
            connection_id=connection_id,
            state=HELD,
            opened_at=now,
            rule=rule,
            user_count=len(wave),
            users=[{"id": i, "userName": n, "at": _iso(a)} for i, n, a in wave[:LISTED_USERS]],
        )
    )


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


class NothingToReject(Conflict, ServiceError):
    """``reject`` with nothing held or released: 409 on the admin API, a failed command."""


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
    duration: timedelta | None,
    actor: str,
) -> Decision:
    """Release or reject the connection's deprovisioning; ``duration`` None: the default.

    ``release`` ends a hold (uncounted for an hour by default), ends a rejection (counted again
    at once by default: the IdP was just shown to be wrong), or approves deprovisioning ahead of
    time. ``reject`` refuses a held wave, or stops a release still running (24 hours).
    """
    # The connection's row, as the SCIM path locks it: no deprovisioning is half-decided.
    session.execute(_LOCK_CONNECTION, {"connection": connection.id})
    now = utcnow()
    hold = _newest_hold(session, connection.id)
    ongoing = hold is not None and (
        hold.state == HELD or (hold.until is not None and hold.until > now)
    )
    before = hold.state if hold is not None and ongoing else None
    if state == REJECTED and before not in {HELD, RELEASED}:
        raise NothingToReject(
            f"no deprovisioning of connection {connection.name!r} is held or released"
            + (f" (it is {before})" if before else "")
            + "; nothing to reject"
        )
    if duration is None:
        if state == REJECTED:
            duration = DEFAULT_REJECTION
        else:
            duration = timedelta(0) if before == REJECTED else DEFAULT_RELEASE
    if hold is None or before is None or (state == RELEASED and before == RELEASED):
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
