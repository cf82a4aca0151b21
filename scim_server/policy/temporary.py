"""Temporary access (DESIGN §5.4 item 4), pure.

- **When it ends.** ``accessExpiresAt`` names a day: the calendar date of the value *as written*
  (in its own UTC offset). Access ends at 23:59:59 of that date in the organisation's time zone;
  that instant is what is stored and returned. A value equal (as an instant) to the stored one is
  kept as it is, so an IdP re-sending what it read back never moves the end by a day.
- **How far.** The date may be at most :data:`MAX_DAYS` days after today in the organisation's
  time zone. A date in the past is accepted: access has ended (the user reads ``expired``).
- **Admins.** A user with temporary access cannot hold an admin role, whether the role is sent
  on the user or granted by a mapped group (checked by ``services.access``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_DAYS = 30
END_OF_DAY = time(23, 59, 59)


@dataclass(frozen=True)
class TooFar:
    """The requested end is more than :data:`MAX_DAYS` days ahead."""

    requested: date
    latest: date
    timezone: str

    def detail(self) -> str:
        return (
            f"accessExpiresAt {self.requested.isoformat()} is more than {MAX_DAYS} days ahead: "
            f"temporary access may end at the latest on {self.latest.isoformat()} "
            f"(23:59:59, {self.timezone})"
        )


def end_of_access(
    requested: datetime, timezone: str, now: datetime, stored: datetime | None = None
) -> datetime | TooFar:
    """The UTC instant temporary access ends, or why ``requested`` is refused."""
    if stored is not None and requested == stored:
        return stored
    zone = ZoneInfo(timezone)
    day = requested.date()
    latest = now.astimezone(zone).date() + timedelta(days=MAX_DAYS)
    if day > latest:
        return TooFar(day, latest, timezone)
    return datetime.combine(day, END_OF_DAY, tzinfo=zone).astimezone(UTC)


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at < now


def render(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
