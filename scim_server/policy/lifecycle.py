"""User status lifecycle and the seat rule (DESIGN §5.3, §5.4 item 5), pure.

Nothing here reads or writes the store; the service layer passes plain values in.

Statuses: ``invited``, ``active``, ``deactivated``, ``locked`` are stored; ``expired`` is read:
an invited or active user whose temporary access (DESIGN §5.4 item 4) has ended. A deleted user
has no status: it is gone.

SCIM drives the status only through ``active``:

- created: ``active`` at once in an organisation that enforces SSO (no invitation), otherwise
  ``invited`` (an invitation is written); created with ``active: false``: ``deactivated``.
- ``active`` true -> false: ``deactivated`` (from ``invited`` or ``active``).
- ``active`` false -> true: ``active`` if the user ever was active or the organisation enforces
  SSO, otherwise ``invited`` again (with a new invitation).
- ``locked`` is set by the host product and only an admin lifts it (``user unlock``). While
  locked, ``active: false`` is accepted (deprovisioning must always work) and the user stays
  locked; ``active`` false -> true is refused (409). ``active: true`` re-sent on a user whose
  ``active`` already is true (every Okta PUT does so) changes nothing and is accepted.
- ``user unlock`` gives the status ``active`` would give: ``deactivated`` when ``active`` is
  false, else ``active`` or ``invited`` as above.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

INVITED = "invited"
ACTIVE = "active"
DEACTIVATED = "deactivated"
LOCKED = "locked"
EXPIRED = "expired"
STATUSES = (INVITED, ACTIVE, DEACTIVATED, LOCKED, EXPIRED)
#: Statuses that hold a seat (DESIGN §5.4 item 5).
SEATED = (INVITED, ACTIVE)


class LockedUser(Exception):
    """SCIM tried to reactivate a locked user: only an admin can unlock it."""


def _enabled(ever_active: bool, enforces_sso: bool) -> str:
    return ACTIVE if ever_active or enforces_sso else INVITED


def initial_status(active: bool, enforces_sso: bool) -> str:
    """The status of a user created through SCIM."""
    if not active:
        return DEACTIVATED
    return _enabled(False, enforces_sso)


def next_status(
    status: str, was_active: bool, active: bool, *, ever_active: bool, enforces_sso: bool
) -> str:
    """The status after a SCIM write that sets ``active`` from ``was_active`` to ``active``.

    Raises :class:`LockedUser` when the write would reactivate a locked user.
    """
    if status == LOCKED:
        if active and not was_active:
            raise LockedUser
        return LOCKED
    if not active:
        return DEACTIVATED
    if status == DEACTIVATED or not was_active:
        return _enabled(ever_active, enforces_sso)
    return status


def unlocked_status(active: bool, *, ever_active: bool, enforces_sso: bool) -> str:
    """The status an admin's unlock gives a locked user."""
    if not active:
        return DEACTIVATED
    return _enabled(ever_active, enforces_sso)


def effective_status(status: str, expires_at: datetime | None, now: datetime) -> str:
    """The status a reader sees: ``expired`` once temporary access has ended."""
    if status in SEATED and expires_at is not None and expires_at < now:
        return EXPIRED
    return status


def seat_exempt(domain: str | None, exempt_domains: Iterable[str]) -> bool:
    """Whether an address in (normalised) ``domain`` is exempt from the seat limit."""
    return domain is not None and domain in set(exempt_domains)


def holds_seat(status: str, domain: str | None, exempt_domains: Iterable[str]) -> bool:
    return status in SEATED and not seat_exempt(domain, exempt_domains)


@dataclass(frozen=True)
class SeatsFull:
    """Taking one more seat would go over the limit."""

    used: int
    limit: int

    def detail(self, org_slug: str) -> str:
        return (
            f"seat limit reached ({self.used} of {self.limit}) for organisation "
            f'"{org_slug}": invited and active users count against it, except addresses in '
            "its exempt domains; deactivate or delete a user, or ask an admin to raise the limit"
        )


def check_seat(used: int, limit: int | None) -> SeatsFull | None:
    """Refusal of one more seat when ``used`` seats (not counting the user) are taken."""
    if limit is None or used + 1 <= limit:
        return None
    return SeatsFull(used, limit)
