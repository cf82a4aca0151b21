"""The pure lifecycle, seat and temporary-access rules (DESIGN §5.3, §5.4 items 4 and 5)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from scim_server.policy import lifecycle, temporary
from scim_server.policy.lifecycle import ACTIVE, DEACTIVATED, EXPIRED, INVITED, LOCKED


@pytest.mark.parametrize(
    ("active", "sso", "expected"),
    [
        (True, True, ACTIVE),
        (True, False, INVITED),
        (False, True, DEACTIVATED),
        (False, False, DEACTIVATED),
    ],
)
def test_initial_status(active: bool, sso: bool, expected: str) -> None:
    assert lifecycle.initial_status(active, sso) == expected


@pytest.mark.parametrize(
    ("status", "was", "now", "ever", "sso", "expected"),
    [
        (INVITED, True, True, False, False, INVITED),
        (INVITED, True, False, False, False, DEACTIVATED),
        (ACTIVE, True, True, True, False, ACTIVE),
        (ACTIVE, True, False, True, False, DEACTIVATED),
        (DEACTIVATED, False, False, True, False, DEACTIVATED),
        (DEACTIVATED, False, True, True, False, ACTIVE),
        (DEACTIVATED, False, True, False, False, INVITED),
        (DEACTIVATED, False, True, False, True, ACTIVE),
        (LOCKED, True, True, True, False, LOCKED),
        (LOCKED, True, False, True, False, LOCKED),
        (LOCKED, False, False, True, False, LOCKED),
    ],
)
def test_next_status(
    status: str, was: bool, now: bool, ever: bool, sso: bool, expected: str
) -> None:
    assert lifecycle.next_status(status, was, now, ever_active=ever, enforces_sso=sso) == expected


def test_scim_cannot_reactivate_a_locked_user() -> None:
    with pytest.raises(lifecycle.LockedUser):
        lifecycle.next_status(LOCKED, False, True, ever_active=True, enforces_sso=True)


@pytest.mark.parametrize(
    ("active", "ever", "sso", "expected"),
    [
        (False, True, True, DEACTIVATED),
        (True, True, False, ACTIVE),
        (True, False, False, INVITED),
        (True, False, True, ACTIVE),
    ],
)
def test_unlocked_status(active: bool, ever: bool, sso: bool, expected: str) -> None:
    assert lifecycle.unlocked_status(active, ever_active=ever, enforces_sso=sso) == expected


def test_effective_status_and_seats() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    past, future = now - timedelta(seconds=1), now + timedelta(days=1)
    assert lifecycle.effective_status(ACTIVE, past, now) == EXPIRED
    assert lifecycle.effective_status(INVITED, past, now) == EXPIRED
    assert lifecycle.effective_status(ACTIVE, future, now) == ACTIVE
    assert lifecycle.effective_status(DEACTIVATED, past, now) == DEACTIVATED
    assert lifecycle.effective_status(LOCKED, past, now) == LOCKED
    assert lifecycle.effective_status(ACTIVE, None, now) == ACTIVE
    assert lifecycle.holds_seat(ACTIVE, "acme.com", ["vendor.com"])
    assert not lifecycle.holds_seat(ACTIVE, "vendor.com", ["vendor.com"])
    assert lifecycle.holds_seat(INVITED, None, ["vendor.com"])
    for status in (DEACTIVATED, LOCKED, EXPIRED):
        assert not lifecycle.holds_seat(status, "acme.com", [])
    assert lifecycle.check_seat(49, 50) is None
    assert lifecycle.check_seat(3, None) is None
    full = lifecycle.check_seat(50, 50)
    assert full is not None
    assert full.detail("acme").startswith('seat limit reached (50 of 50) for organisation "acme"')


NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("requested", "zone", "expected"),
    [
        ("2026-03-10T00:00:00+00:00", "UTC", "2026-03-10T23:59:59Z"),
        ("2026-03-10T00:00:00+00:00", "Europe/Paris", "2026-03-10T22:59:59Z"),
        # after the change to summer time: UTC+2
        ("2026-03-30T08:00:00+02:00", "Europe/Paris", "2026-03-30T21:59:59Z"),
        ("2026-03-10T23:30:00-07:00", "America/Los_Angeles", "2026-03-11T06:59:59Z"),  # PDT
        ("2026-03-10T01:00:00+09:00", "Asia/Tokyo", "2026-03-10T14:59:59Z"),
        # in the past: accepted (access has ended)
        ("2026-02-01T00:00:00Z", "UTC", "2026-02-01T23:59:59Z"),
    ],
)
def test_end_of_access(requested: str, zone: str, expected: str) -> None:
    end = temporary.end_of_access(datetime.fromisoformat(requested), zone, NOW)
    assert isinstance(end, datetime)
    assert temporary.render(end) == expected


def test_at_most_30_days_ahead_in_the_organisation_time_zone() -> None:
    last = datetime(2026, 3, 31, tzinfo=UTC)
    assert isinstance(temporary.end_of_access(last, "UTC", NOW), datetime)
    too_far = temporary.end_of_access(last + timedelta(days=1), "UTC", NOW)
    assert too_far == temporary.TooFar(date(2026, 4, 1), date(2026, 3, 31), "UTC")
    assert isinstance(too_far, temporary.TooFar)
    assert too_far.detail() == (
        "accessExpiresAt 2026-04-01 is more than 30 days ahead: temporary access may end at the "
        "latest on 2026-03-31 (23:59:59, UTC)"
    )
    # late on 1 March in UTC is already 2 March in Tokyo: one more day allowed
    late = datetime(2026, 3, 1, 20, tzinfo=UTC)
    assert isinstance(
        temporary.end_of_access(datetime(2026, 4, 1, tzinfo=UTC), "Asia/Tokyo", late), datetime
    )


def test_the_stored_end_is_kept_when_sent_back() -> None:
    stored = datetime(2026, 3, 11, 6, 59, 59, tzinfo=UTC)  # 10 March, Los Angeles
    assert temporary.end_of_access(stored, "America/Los_Angeles", NOW, stored) == stored
    # the same instant in another offset is the same value
    same = stored.astimezone(temporary.ZoneInfo("Asia/Tokyo"))
    assert temporary.end_of_access(same, "America/Los_Angeles", NOW, stored) == stored
