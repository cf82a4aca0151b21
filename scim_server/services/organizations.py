"""Organisation settings and the domain-policy report (DESIGN §5.4 items 2 and 3, issue #5).

The rules are the pure :mod:`scim_server.policy.domains`; this module validates an admin's
input, stores settings, finds the users current or proposed settings would refuse, and
deactivates them on request.

Decisions an admin should know about:

- SSO is enforced exactly when an SSO domain is set (``--sso-domain``; ``--no-sso`` clears it).
- An organisation enforcing SSO has exactly one domain: a whitelist naming another domain is
  refused, not silently ignored (clear it with ``--allowed-domains ""``).
- Setting or changing the SSO domain (or no longer allowing its subdomains) while *active* users
  have an address outside it is refused, naming them, unless ``--deactivate-outside`` is given.
  Deactivated users do not block it: they cannot sign in, and reactivating them re-checks every
  address (``services.users``).
- ``--deactivate-outside`` works with any settings change: it deactivates the active users the
  new settings would refuse, through the same storage path as a SCIM PATCH of ``active``.
- Seat limit, exempt domains, delete mode and the time zone (where temporary access ends) are
  enforced by ``services.users`` and ``services.lifecycle``; the mass-deprovisioning limit and
  window by ``services.deprovisioning``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.policy import domains, lifecycle
from scim_server.policy.domains import DomainSettings, InvalidDomain, Violation
from scim_server.scim.numbers import ascii_integer
from scim_server.scim.schema import default_registry
from scim_server.services import access, guards
from scim_server.services.errors import ServiceError
from scim_server.services.lifecycle import cancel_pending
from scim_server.store.models import Organization, Role, User, UserAttributeValue
from scim_server.store.users import write_user

DELETE_MODES = ("hard", "soft")
#: Users per statement while scanning an organisation.
SCAN_CHUNK = 1000
#: Users named one by one in a refusal message, in an audit event and in JSON output.
LISTED_IN_MESSAGE = 20
MAX_LISTED_USERS = 1000
#: The largest count a setting holds (an INTEGER column).
MAX_COUNT = 2**31 - 1
#: The attribute key of ``emails`` rows in ``user_attribute_values``.
EMAILS = "emails"


# -- input -----------------------------------------------------------------------------------


def parse_domain_list(text: str, option: str) -> tuple[str, ...]:
    """A comma-separated list of domains, normalised, de-duplicated, in the order given;
    the empty string is the empty list."""
    found: list[str] = []
    for part in text.split(","):
        if not part.strip():
            continue
        domain = parse_domain(part, option)
        if domain not in found:
            found.append(domain)
    return tuple(found)


def parse_domain(text: str, option: str) -> str:
    """A domain an admin names in a setting. Not an IP address: no address of a user is at one
    (an email's address literal is bracketed), so the setting could only be a mistake."""
    try:
        domain = domains.normalise_domain(text)
    except InvalidDomain as error:
        raise ServiceError(f"{option}: {error}") from None
    if domain.rpartition(".")[2].isdigit():  # RFC 3696 §2: no top-level domain is all digits
        raise ServiceError(f"{option}: {text.strip()!r} is an IP address, not a domain name")
    return domain


def parse_timezone(text: str, option: str = "--timezone") -> str:
    name = text.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ServiceError(
            f"{option}: {text!r} is not a time zone name (IANA, such as Europe/Paris or UTC)"
        ) from None
    return name


def parse_seat_limit(text: str, option: str = "--seat-limit") -> int | None:
    """A seat limit of 1 or more, or None for ``none`` (no limit)."""
    if text.strip().lower() == "none":
        return None
    limit = ascii_integer(text)
    if limit is None:
        raise ServiceError(f"{option}: {text!r} is not a whole number (or 'none')")
    if not 1 <= limit <= MAX_COUNT:
        raise ServiceError(f"{option}: must be between 1 and {MAX_COUNT}, got {text.strip()}")
    return limit


#: The longest a soft-deleted user may be kept: ten years.
MAX_RETENTION_DAYS = 3650


def parse_retention_days(text: str, option: str = "--soft-delete-retention") -> int:
    """Days a soft-deleted user is kept before it is purged: 0 (the next purge) to 3650."""
    days = ascii_integer(text)
    if days is None:
        raise ServiceError(f"{option}: {text!r} is not a whole number of days")
    if not 0 <= days <= MAX_RETENTION_DAYS:
        raise ServiceError(
            f"{option}: must be between 0 and {MAX_RETENTION_DAYS} days, got {text.strip()}"
        )
    return days


def parse_delete_mode(text: str, option: str = "--delete-mode") -> str:
    mode = text.strip().lower()
    if mode not in DELETE_MODES:
        raise ServiceError(f"{option}: must be one of {', '.join(DELETE_MODES)}, got {text!r}")
    return mode


class _Keep:
    """Leave this setting as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


@dataclass
class SettingsUpdate:
    """Settings to change; fields left at :data:`KEEP` stay as they are."""

    sso_domain: str | None = KEEP
    allowed_domains: tuple[str, ...] = KEEP
    allow_subdomains: bool = KEEP
    seat_limit: int | None = KEEP
    exempt_domains: tuple[str, ...] = KEEP
    timezone: str = KEEP
    delete_mode: str = KEEP
    soft_delete_retention_days: int = KEEP
    deprovision_limit: int | None = KEEP
    deprovision_limit_is_percent: bool = KEEP
    deprovision_window_minutes: int = KEEP

    def is_empty(self) -> bool:
        return all(value is KEEP for value in vars(self).values())


# -- views -----------------------------------------------------------------------------------


def domain_settings(org: Organization) -> DomainSettings:
    return DomainSettings(
        sso_domain=org.sso_domain,
        allowed_domains=tuple(org.allowed_domains or ()),
        allow_subdomains=bool(org.allow_subdomains),
    )


def load_domain_settings(session: Session, org_id: int) -> DomainSettings:
    """The domain settings of an organisation, in one small statement (every SCIM user write)."""
    row = session.execute(
        select(
            Organization.sso_domain, Organization.allowed_domains, Organization.allow_subdomains
        ).where(Organization.id == org_id)
    ).one()
    return DomainSettings(row[0], tuple(row[1] or ()), bool(row[2]))


def settings_of(org: Organization) -> dict[str, Any]:
    """The stored settings, as ``org show --json`` prints them and audit events record them."""
    return {
        "ssoDomain": org.sso_domain,
        "allowedDomains": list(org.allowed_domains or ()),
        "allowSubdomains": bool(org.allow_subdomains),
        "seatLimit": org.seat_limit,
        "exemptDomains": list(org.exempt_domains or ()),
        "timezone": org.timezone,
        "deleteMode": org.delete_mode,
        "softDeleteRetentionDays": org.soft_delete_retention_days,
        "deprovisionLimit": _limit_text(org),
        "deprovisionWindowMinutes": org.deprovision_window_minutes,
    }


def _limit_text(org: Organization) -> str | None:
    """``"50"``, ``"10%"``, or None when the mass-deprovisioning guard is off."""
    if org.deprovision_limit is None:
        return None
    return f"{org.deprovision_limit}{'%' if org.deprovision_limit_is_percent else ''}"


def show(session: Session, org: Organization) -> dict[str, Any]:
    default_role = (
        session.get(Role, org.default_role_pk) if org.default_role_pk is not None else None
    )
    return {
        "slug": org.slug,
        "name": org.name,
        "defaultRole": default_role.name if default_role is not None else None,
        **settings_of(org),
    }


# -- users the settings refuse ---------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    pk: int
    id: str
    user_name: str
    active: bool
    violation: Violation


def refused_users(
    session: Session, org_id: int, settings: DomainSettings, *, active_only: bool = False
) -> Iterator[Refused]:
    """Users of ``org_id`` that ``settings`` would refuse, in creation order.

    Reads the indexed ``emails`` rows, not the documents, a chunk of users at a time: two
    statements per :data:`SCAN_CHUNK` users, memory bounded by the chunk.
    """
    if domains.allowed_set(settings) is None:
        return
    last_pk = 0
    while True:
        query = select(User.pk, User.id, User.user_name, User.active).where(
            User.org_id == org_id, User.pk > last_pk, User.deleted_at.is_(None)
        )
        if active_only:
            query = query.where(User.active.is_(True))
        rows = session.execute(query.order_by(User.pk).limit(SCAN_CHUNK)).all()
        if not rows:
            return
        emails: dict[int, list[str]] = defaultdict(list)
        for user_pk, value in session.execute(
            select(UserAttributeValue.user_pk, UserAttributeValue.value)
            .where(
                UserAttributeValue.org_id == org_id,
                UserAttributeValue.user_pk.in_([row.pk for row in rows]),
                UserAttributeValue.attribute == EMAILS,
            )
            .order_by(UserAttributeValue.pk)
        ):
            if value is not None:
                emails[user_pk].append(value)
        for pk, user_id, user_name, active in rows:
            violation = domains.check(domains.user_addresses(user_name, emails[pk]), settings)
            if violation is not None:
                yield Refused(pk, user_id, user_name, bool(active), violation)
        last_pk = rows[-1].pk


@dataclass
class Report:
    """Users current settings would refuse: all counted, the first ``limit`` listed."""

    org_slug: str
    count: int = 0
    users: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"org": self.org_slug, "count": self.count, "users": self.users}


def policy_report(session: Session, org: Organization, limit: int = MAX_LISTED_USERS) -> Report:
    """Dry run (DESIGN §5.4): users in the store the current settings would refuse. Reads only."""
    report = Report(org.slug)
    for refused in refused_users(session, org.id, domain_settings(org)):
        report.count += 1
        if len(report.users) < limit:
            report.users.append(
                {
                    "id": refused.id,
                    "userName": refused.user_name,
                    "active": refused.active,
                    "address": refused.violation.address,
                    "reason": refused.violation.detail(org.slug),
                }
            )
    return report


# -- update ----------------------------------------------------------------------------------


@dataclass
class SettingsChange:
    before: dict[str, Any]
    after: dict[str, Any]
    #: ``{"count": n, "users": [{"id", "userName", "active": [true, false]}, ...]}`` or None
    deactivated: dict[str, Any] | None = None

    def changes(self) -> dict[str, list[Any]]:
        """Setting -> [before, after], for the settings that changed."""
        return {
            key: [self.before[key], self.after[key]]
            for key in self.after
            if self.before[key] != self.after[key]
        }


def _apply(org: Organization, update: SettingsUpdate) -> None:
    for name, value in vars(update).items():
        if value is not KEEP:
            setattr(org, name, list(value) if isinstance(value, tuple) else value)


@dataclass(frozen=True)
class Spelling:
    """How the admin's surface spells the two remedies a refusal suggests."""

    clear_allowed: str = '--allowed-domains ""'
    deactivate_outside: str = "--deactivate-outside"


CLI = Spelling()
#: The admin API's names (PATCH /admin/v1/organization).
API = Spelling(clear_allowed='"allowedDomains": []', deactivate_outside='"deactivateOutside": true')


def update_settings(
    session: Session,
    org: Organization,
    update: SettingsUpdate,
    *,
    deactivate_outside: bool = False,
    spelling: Spelling = CLI,
) -> SettingsChange:
    """Validate and store ``update``; refuse what breaks the single-domain SSO rule."""
    before = settings_of(org)
    new = DomainSettings(
        sso_domain=org.sso_domain if update.sso_domain is KEEP else update.sso_domain,
        allowed_domains=tuple(
            org.allowed_domains if update.allowed_domains is KEEP else update.allowed_domains
        ),
        allow_subdomains=bool(
            org.allow_subdomains if update.allow_subdomains is KEEP else update.allow_subdomains
        ),
    )
    conflict = domains.sso_conflicts(new)
    if conflict is not None:
        raise ServiceError(
            f"organisation {org.slug!r}: {conflict}; remove them "
            f"({spelling.clear_allowed} clears the list) or do not enforce SSO"
        )
    # SSO turned on, moved to another domain, or narrowed to exclude subdomains.
    sso_narrowed = new.sso_domain is not None and (
        new.sso_domain != org.sso_domain or (org.allow_subdomains and not new.allow_subdomains)
    )
    deactivated = None
    if deactivate_outside:
        deactivated = _deactivate(session, org, new)
    elif sso_narrowed:
        _refuse_if_outside(session, org, new, spelling)
    _apply(org, update)
    session.flush()
    return SettingsChange(before, settings_of(org), deactivated)


def _refuse_if_outside(
    session: Session, org: Organization, settings: DomainSettings, spelling: Spelling
) -> None:
    count = 0
    named: list[str] = []
    for refused in refused_users(session, org.id, settings, active_only=True):
        count += 1
        if len(named) < LISTED_IN_MESSAGE:
            named.append(refused.user_name)
    if count == 0:
        return
    more = f" and {count - len(named)} more" if count > len(named) else ""
    raise ServiceError(
        f"organisation {org.slug!r} cannot enforce SSO for {settings.sso_domain}: "
        f"{count} user{'s' if count != 1 else ''} not deactivated (invited or active) "
        f"{'have' if count != 1 else 'has'} an address outside it: {', '.join(named)}{more}. "
        f"Change or deactivate them first, or give {spelling.deactivate_outside} to deactivate "
        "them now "
        f"(scim-server policy check --org {org.slug} lists the users current settings refuse)"
    )


def _deactivate(session: Session, org: Organization, settings: DomainSettings) -> dict[str, Any]:
    """Deactivate the active users ``settings`` refuse, as a SCIM PATCH ``active: false`` would:
    the document, its promoted columns, ``meta.lastModified`` and the version all change."""
    pks = [refused.pk for refused in refused_users(session, org.id, settings, active_only=True)]
    rt = default_registry().resource_type("User")
    listed: list[dict[str, Any]] = []
    for start in range(0, len(pks), SCAN_CHUNK):
        chunk = pks[start : start + SCAN_CHUNK]
        users = session.scalars(
            select(User)
            .where(User.org_id == org.id, User.pk.in_(chunk))
            .order_by(User.pk)
            .with_for_update()
        ).all()
        for user in users:
            previous = user.data
            was_invited = user.status == lifecycle.INVITED
            user.status = lifecycle.next_status(
                user.status, user.active, False, ever_active=True, enforces_sso=True
            )
            doc = {**previous, "active": False}
            write_user(session, rt, user, doc, previous, seat_domain=domains.seat_domain(doc))
            if was_invited:
                cancel_pending(session, user.pk)
            if len(listed) < MAX_LISTED_USERS:
                listed.append({"id": user.id, "userName": user.user_name, "active": [True, False]})
    guards.refuse_if_no_admin_left(
        session, org.id, guards.admins_among(session, org.id, pks), "deactivating"
    )
    return {"count": len(pks), "users": listed}


# -- the whole change, as `org update` and PATCH /admin/v1/organization make it ---------------


@dataclass
class SettingsOutcome:
    change: SettingsChange
    default_role: tuple[str | None, str | None] | None = None
    #: ``access.affected_users`` of a default-role change
    affected: dict[str, Any] | None = None

    def event_changes(self) -> dict[str, Any]:
        changes: dict[str, Any] = self.change.changes()
        if self.change.deactivated is not None:
            changes["deactivatedUsers"] = self.change.deactivated
        if self.default_role is not None:
            changes["defaultRole"] = list(self.default_role)
            changes["affectedUsers"] = self.affected
        return changes

    def result(self, slug: str) -> dict[str, Any]:
        """What ``org update --json`` prints and the admin API answers."""
        result: dict[str, Any] = {"org": slug}
        if self.default_role is not None:
            result.update(defaultRole=self.default_role[1], affectedUsers=self.affected)
        result["settings"] = self.change.after
        if self.change.deactivated is not None:
            result["deactivatedUsers"] = self.change.deactivated
        return result


def change_settings(
    session: Session,
    org: Organization,
    update: SettingsUpdate,
    *,
    default_role: str | None = KEEP,
    deactivate_outside: bool = False,
    spelling: Spelling = CLI,
) -> SettingsOutcome:
    """Settings and the default role in one change; the users whose access changes are
    recomputed. The organisation's rules first, as every other path takes them, before any
    deactivation takes the last-admin guard's lock: one order, no deadlock."""
    access.lock_rules(session, org.id)
    # The row as the previous holder of the rules left it: read before the lock, a concurrent
    # change (another admin's SSO domain, default role) would be judged and overwritten stale.
    session.refresh(org)
    outcome = SettingsOutcome(
        update_settings(
            session, org, update, deactivate_outside=deactivate_outside, spelling=spelling
        )
    )
    if default_role is not KEEP:
        role_change = access.set_default_role(session, org, default_role)
        outcome.default_role = (role_change.before, role_change.after)
        outcome.affected = access.affected_users(session, role_change.changes)
    return outcome
