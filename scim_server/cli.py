"""The ``scim-server`` command (DESIGN §8). Its output formats are a contract scripts rely on."""

from __future__ import annotations

import csv
import getpass
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import click
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from scim_server.audit.chain import SignedCheckpoint, Verification, append
from scim_server.audit.events import EventDraft
from scim_server.audit.query import EXPORT_FORMATS
from scim_server.audit.signing import SigningKey, signing_keys
from scim_server.config import ConfigError, Settings, audit_signing_keys
from scim_server.policy import lifecycle as policy_lifecycle
from scim_server.project_files import gunicorn_config
from scim_server.scim import discovery
from scim_server.scim.errors import ScimError
from scim_server.scim.numbers import ascii_integer
from scim_server.scim.schema import ACCESS_USER, default_registry
from scim_server.services import (
    access,
    audit_log,
    connections,
    deprovisioning,
    lifecycle,
    oauth,
    organizations,
    tokens,
    user_csv,
)
from scim_server.store.db import Database, case_folding_warning, statistics_warning
from scim_server.store.migrate import MigrationBlocked, upgrade
from scim_server.store.models import SYSTEM_CHAIN, Connection, Organization, User
from scim_server.store.revision import head_revision, is_ahead
from scim_server.store.types import utcnow

DEFAULT_PORT = 8000
#: The connection `scim-server demo` creates once and gives a new token on every run.
DEMO_CONNECTION = "demo connection"


class WholeNumber(click.types.IntParamType):
    """An integer option or argument in ASCII digits, within ``low``..``high``: click's ``int``
    reads other scripts' digits and "1_0" (``scim.numbers``)."""

    name = "integer"

    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number: int | None = value
        else:
            number = ascii_integer(str(value))
        if number is None:
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            bounds = "<=".join(
                part
                for part in (
                    None if self.low is None else str(self.low),
                    "x",
                    None if self.high is None else str(self.high),
                )
                if part is not None
            )  # as click's IntRange says it: 0<=x<=3650, 1<=x
            self.fail(f"{str(value).strip()} is not in the range {bounds}.", param, ctx)
        return number


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


def _database() -> Database:
    return Database(_settings().database_url)


def _signing_keys() -> tuple[SigningKey, ...]:
    """SCIM_AUDIT_SIGNING_KEY's keys, the signing one first (none when it is unset)."""
    try:
        return signing_keys(audit_signing_keys(_settings()))
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


def _signing_key(purpose: str) -> SigningKey:
    keys = _signing_keys()
    if not keys:
        raise click.UsageError(
            f"{purpose} needs SCIM_AUDIT_SIGNING_KEY: a key kept outside the database "
            "(e.g. `openssl rand -hex 32`), so that a database writer cannot forge a checkpoint"
        )
    return keys[0]


def _scim_base_url(host: str, port: int) -> str:
    configured = _settings().base_url
    if configured:
        return configured.rstrip("/")
    shown = "localhost" if host in ("0.0.0.0", "127.0.0.1", "::") else host  # noqa: S104
    return f"http://{shown}:{port}/scim/v2"


#: What ``connection create``, ``rotate`` and ``oauth`` say on stderr when the base URL they
#: printed is this machine's (``demo`` serves on this machine: its local URL is the right one).
LOCAL_BASE_URL_WARNING = (
    "warning: SCIM_BASE_URL is not set: the URL above is this machine's local address; "
    "give the IdP the public one (set SCIM_BASE_URL where the CLI runs too)"
)


_PORT_HELP = "The port of the local URL printed when SCIM_BASE_URL is not set."


def _warn_unless_public_base_url() -> None:
    """One line on stderr when the printed base URL is the local one: an operator who pastes it
    into an IdP gets a connection test that cannot reach this server. stdout stays as it was, so
    ``--json`` output still parses."""
    if not _settings().base_url:
        click.echo(LOCAL_BASE_URL_WARNING, err=True)


def _fail(error: tokens.ServiceError | ScimError) -> NoReturn:
    raise click.ClickException(str(error))


def _cli_event(operation: str, org_id: int, **fields: Any) -> EventDraft:
    """The audit event of a CLI action, attributed to the operating-system user who ran it."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return EventDraft(operation=operation, org_id=org_id, actor_type="cli", actor=who, **fields)


def _organization_id(database: Database, slug: str) -> tuple[int, str]:
    with database.transaction(write=False) as session:
        try:
            organization = tokens.get_organization(session, slug)
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        return organization.id, organization.slug


class _Commands(click.Group):
    """The command group, which answers a database it cannot reach in one line, not with a
    driver's traceback (the URL is not repeated: it may hold a password)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OperationalError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            raise click.ClickException(
                f"the database (SCIM_DATABASE_URL) cannot be used: {reason}"
            ) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """SCIM 2.0 provisioning connector: configure organisations and connections, run the server."""


@main.command()
def init() -> None:
    """Create or upgrade the database schema at SCIM_DATABASE_URL.

    Safe to run at every start: a current schema is only read, and concurrent runs take turns.
    On PostgreSQL with autovacuum or track_counts off, or a database folding only ASCII
    letters (LC_CTYPE C), a warning goes to stderr.
    """
    database = _database()
    try:
        revision = upgrade(database.engine)
    except MigrationBlocked as error:
        raise click.ClickException(str(error)) from None
    where = database.engine.url.render_as_string(hide_password=True)
    if is_ahead(revision):
        click.echo(
            f"database ready: {where} (schema {revision} is newer than this release's "
            f"{head_revision()}: left as it is)"
        )
        return
    click.echo(f"database ready: {where}")
    for warning in (statistics_warning(database.engine), case_folding_warning(database.engine)):
        if warning:
            click.echo(f"warning: {warning}", err=True)


@main.group()
def org() -> None:
    """Organisations (tenants)."""


def _settings_options(function: Any) -> Any:
    options = [
        click.option(
            "--sso-domain",
            metavar="DOMAIN",
            help="Enforce SSO: users' addresses must be in this one domain.",
        ),
        click.option("--no-sso", is_flag=True, help="Stop enforcing SSO (clears the SSO domain)."),
        click.option(
            "--allowed-domains",
            metavar="A,B",
            help='Domain whitelist, comma-separated ("" clears it: any domain).',
        ),
        click.option(
            "--allow-subdomains/--no-subdomains",
            default=None,
            help="Whether subdomains of the allowed domains are allowed too.",
        ),
        click.option(
            "--seat-limit",
            metavar="N|none",
            help="Invited and active users allowed, outside the exempt domains.",
        ),
        click.option(
            "--exempt-domains",
            metavar="A,B",
            help='Domains exempt from the seat limit ("" clears them).',
        ),
        click.option(
            "--timezone",
            metavar="AREA/CITY",
            help="IANA time zone, e.g. Europe/Paris: temporary access ends at 23:59:59 there.",
        ),
        click.option(
            "--delete-mode",
            type=click.Choice(organizations.DELETE_MODES, case_sensitive=False),
            help="What a SCIM DELETE does: hard removes the user, soft hides it until purged.",
        ),
        click.option(
            "--soft-delete-retention",
            metavar="DAYS",
            help="Days a soft-deleted user is kept before `users purge` removes it (default 30).",
        ),
        click.option(
            "--deprovision-limit",
            metavar="N|P%|off",
            help="Users one connection may deactivate or delete within the window before its "
            "deprovisioning is held for an admin: a number, a percentage of the users, or off.",
        ),
        click.option(
            "--deprovision-window",
            metavar="MINUTES",
            help="The mass-deprovisioning guard's sliding window, in minutes (1 to 1440).",
        ),
        click.option(
            "--deactivate-outside",
            is_flag=True,
            help="Deactivate the active users the new settings refuse (otherwise enabling SSO "
            "while such users exist is refused).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _settings_update(
    sso_domain: str | None,
    no_sso: bool,
    allowed_domains: str | None,
    allow_subdomains: bool | None,
    seat_limit: str | None,
    exempt_domains: str | None,
    timezone: str | None,
    delete_mode: str | None,
    soft_delete_retention: str | None,
    deprovision_limit: str | None,
    deprovision_window: str | None,
) -> organizations.SettingsUpdate:
    if sso_domain is not None and no_sso:
        raise click.UsageError("--sso-domain and --no-sso are mutually exclusive")
    update = organizations.SettingsUpdate()
    try:
        if sso_domain is not None:
            update.sso_domain = organizations.parse_domain(sso_domain, "--sso-domain")
        if no_sso:
            update.sso_domain = None
        if allowed_domains is not None:
            update.allowed_domains = organizations.parse_domain_list(
                allowed_domains, "--allowed-domains"
            )
        if allow_subdomains is not None:
            update.allow_subdomains = allow_subdomains
        if seat_limit is not None:
            update.seat_limit = organizations.parse_seat_limit(seat_limit)
        if exempt_domains is not None:
            update.exempt_domains = organizations.parse_domain_list(
                exempt_domains, "--exempt-domains"
            )
        if timezone is not None:
            update.timezone = organizations.parse_timezone(timezone)
        if delete_mode is not None:
            update.delete_mode = organizations.parse_delete_mode(delete_mode)
        if soft_delete_retention is not None:
            update.soft_delete_retention_days = organizations.parse_retention_days(
                soft_delete_retention
            )
        if deprovision_limit is not None:
            limit, is_percent = deprovisioning.parse_limit(deprovision_limit)
            update.deprovision_limit = limit
            update.deprovision_limit_is_percent = is_percent
        if deprovision_window is not None:
            update.deprovision_window_minutes = deprovisioning.parse_window(deprovision_window)
    except tokens.ServiceError as error:
        _fail(error)
    return update


def _echo_settings(slug: str, change: organizations.SettingsChange) -> None:
    for key, (before, after) in change.changes().items():
        click.echo(f"{key} of {slug}: {_shown(after)} (was {_shown(before)})")
    if change.deactivated is not None:
        count = change.deactivated["count"]
        click.echo(f"deactivated {count} user{'s' if count != 1 else ''} outside the new policy")
        for entry in change.deactivated["users"][:SHOWN_USERS]:
            click.echo(f"  {entry['userName']} ({entry['id']})")
        if count > SHOWN_USERS:
            click.echo(f"  ... and {count - SHOWN_USERS} more (the audit event lists them)")


def _shown(value: Any) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@org.command("create")
@click.argument("slug")
@click.option("--name", default=None, help="Display name of the organisation (default: SLUG).")
@_settings_options
def org_create(slug: str, name: str | None, deactivate_outside: bool, **settings: Any) -> None:
    """Create an organisation, optionally with its settings."""
    name = name or slug
    update = _settings_update(**settings)
    with _database().transaction(write=True) as session:
        try:
            created = tokens.create_organization(session, slug, name)
            change = organizations.update_settings(
                session, created, update, deactivate_outside=deactivate_outside
            )
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        append(
            session,
            _cli_event(
                "org.create",
                created.id,
                resource_type="Organization",
                resource_id=created.slug,
                changes={
                    "slug": [None, created.slug],
                    "name": [None, created.name],
                    **organizations.SettingsOutcome(change).event_changes(),
                },
            ),
        )
    click.echo(f"organisation {slug} created")


@org.command("update")
@click.argument("slug")
@click.option(
    "--default-role",
    metavar="ROLE|none",
    help="Role of users no direct role or mapped group gives one; 'none': no permissions.",
)
@_settings_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def org_update(
    slug: str,
    default_role: str | None,
    deactivate_outside: bool,
    as_json: bool,
    **settings: Any,
) -> None:
    """Change an organisation's settings; users whose access changes are recomputed."""
    update = _settings_update(**settings)
    if default_role is None and update.is_empty() and not deactivate_outside:
        raise click.UsageError("nothing to change: give --default-role or a setting to change")
    with _database().transaction(write=True) as session:
        organization = _org(session, slug)
        role: str | None = organizations.KEEP
        if default_role is not None:
            role = None if default_role.strip().lower() == "none" else default_role
        try:
            outcome = organizations.change_settings(
                session,
                organization,
                update,
                default_role=role,
                deactivate_outside=deactivate_outside,
            )
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        append(
            session,
            _cli_event(
                "org.update",
                organization.id,
                resource_type="Organization",
                resource_id=organization.slug,
                changes=outcome.event_changes(),
            ),
        )
    if as_json:
        click.echo(json.dumps(outcome.result(slug)))
        return
    if outcome.default_role is not None and outcome.affected is not None:
        before, after = outcome.default_role
        click.echo(f"default role of {slug}: {after or 'none'} (was {before or 'none'})")
        _echo_affected(outcome.affected)
    _echo_settings(slug, outcome.change)


@org.command("show")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as one JSON object.")
def org_show(slug: str, as_json: bool) -> None:
    """Show an organisation and its settings."""
    with _database().transaction(write=False) as session:
        shown = organizations.show(session, _org(session, slug))
    if as_json:
        click.echo(json.dumps(shown))
        return
    labels = {
        "slug": "slug",
        "name": "name",
        "defaultRole": "default role",
        "ssoDomain": "SSO domain",
        "allowedDomains": "allowed domains",
        "allowSubdomains": "allow subdomains",
        "seatLimit": "seat limit",
        "exemptDomains": "seat-exempt domains",
        "timezone": "time zone",
        "deleteMode": "delete mode",
        "softDeleteRetentionDays": "purge after",
        "deprovisionLimit": "deprovision limit",
        "deprovisionWindowMinutes": "deprovision window",
    }
    width = max(len(label) for label in labels.values())
    for key, label in labels.items():
        value = shown[key]
        if key == "ssoDomain" and value is None:
            text = "none (SSO not enforced)"
        elif key == "allowedDomains" and not value:
            text = "any" if shown["ssoDomain"] is None else "none"
        elif key == "deprovisionLimit":
            text = (
                "off (no mass-deprovisioning guard)"
                if value is None
                else f"{value} of the users"
                if value.endswith("%")
                else f"{value} users"
            )
        elif key == "deprovisionWindowMinutes":
            text = f"{value} minutes"
        elif key == "softDeleteRetentionDays":
            text = f"{value} days (soft-deleted users, by users purge)"
        else:
            text = _shown(value)
        click.echo(f"{label + ':':<{width + 1}} {text}")


def _org(session: Session, slug: str) -> Organization:
    try:
        return tokens.get_organization(session, slug)
    except tokens.ServiceError as error:
        _fail(error)


#: Users listed one per line in text output; --json lists up to access.MAX_LISTED_USERS.
SHOWN_USERS = 20


def _echo_affected(users: dict[str, Any]) -> None:
    count = users["count"]
    click.echo(f"access changed for {count} user{'s' if count != 1 else ''}")
    for entry in users["users"][:SHOWN_USERS]:
        role_before, role_after = entry["role"]
        groups_before, groups_after = entry["accessGroups"]
        parts = []
        if role_before != role_after:
            parts.append(f"role {role_before or 'none'} -> {role_after or 'none'}")
        if groups_before != groups_after:
            shown_before = ", ".join(groups_before) or "none"
            shown_after = ", ".join(groups_after) or "none"
            parts.append(f"access groups {shown_before} -> {shown_after}")
        click.echo(f"  {entry['userName']} ({entry['id']}): {'; '.join(parts)}")
    if count > SHOWN_USERS:
        click.echo(
            f"  ... and {count - SHOWN_USERS} more (--json lists up to "
            f"{access.MAX_LISTED_USERS}; the audit event records them too)"
        )


@main.group()
def role() -> None:
    """Roles of an organisation; the highest rank a user gets wins."""


@role.command("list")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def role_list(org_slug: str, as_json: bool) -> None:
    """List roles, highest rank first."""
    with _database().transaction(write=False) as session:
        roles = access.list_roles(session, _org(session, org_slug))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in roles]))
        return
    for r in roles:
        flags = [
            f
            for f, on in (("admin", r.is_admin), ("built-in", r.built_in), ("default", r.default))
            if on
        ]
        suffix = f"  [{', '.join(flags)}]" if flags else ""
        click.echo(f"{r.rank:>5}  {r.name}{suffix}")


@role.command("create")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("name")
@click.option(
    "--rank", type=WholeNumber(), required=True, help="Higher wins; unique per organisation."
)
@click.option("--permission", "permissions", multiple=True, help="A permission (repeatable).")
@click.option("--admin", "is_admin", is_flag=True, help="The role administers the organisation.")
def role_create(
    org_slug: str, name: str, rank: int, permissions: tuple[str, ...], is_admin: bool
) -> None:
    """Create a custom role."""
    with _database().transaction(write=True) as session:
        organization = _org(session, org_slug)
        try:
            created = access.create_role(
                session,
                organization,
                name,
                rank=rank,
                permissions=permissions,
                is_admin=is_admin,
            )
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        append(
            session,
            _cli_event(
                "role.create",
                organization.id,
                resource_type="Role",
                resource_id=created.name[:64],
                changes=access.role_created_changes(created),
            ),
        )
    click.echo(f"role {created.name} (rank {created.rank}) created in {org_slug}")


@role.command("delete")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def role_delete(org_slug: str, name: str, as_json: bool) -> None:
    """Delete a custom role and the mappings granting it; its holders are recomputed."""
    _delete_and_report(org_slug, name, as_json, access.delete_role, "role.delete", "Role", "role")


def _delete_and_report(
    org_slug: str,
    name: str,
    as_json: bool,
    delete: Callable[[Session, Organization, str], access.Removal],
    operation: str,
    resource_type: str,
    kind: str,
) -> None:
    """Delete a role or access group with its mappings; one audited event, same transaction."""
    with _database().transaction(write=True) as session:
        organization = _org(session, org_slug)
        try:
            removed = delete(session, organization, name)
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        users = access.affected_users(session, removed.changes)
        append(
            session,
            _cli_event(
                operation,
                organization.id,
                resource_type=resource_type,
                resource_id=removed.name[:64],
                changes=removed.event_changes(users),
            ),
        )
    _echo_removal(kind, removed, users, as_json)


def _echo_removal(kind: str, removed: access.Removal, users: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(removed.result(users)))
        return
    click.echo(f"{kind} {removed.name} deleted, with {removed.mappings_removed} mapping(s)")
    _echo_affected(users)


@main.group("access-group")
def access_group() -> None:
    """Access groups: sets of campaigns that mapped IdP groups grant."""


@access_group.command("create")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("name")
@click.option("--campaign", "campaigns", multiple=True, help="A campaign id (repeatable).")
def access_group_create(org_slug: str, name: str, campaigns: tuple[str, ...]) -> None:
    """Create an access group."""
    with _database().transaction(write=True) as session:
        organization = _org(session, org_slug)
        try:
            created = access.create_access_group(session, organization, name, campaigns)
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        append(
            session,
            _cli_event(
                "access_group.create",
                organization.id,
                resource_type="AccessGroup",
                resource_id=created.name[:64],
                changes={"name": [None, created.name], "campaignIds": [None, created.campaign_ids]},
            ),
        )
    click.echo(
        f"access group {created.name} created in {org_slug} "
        f"({len(created.campaign_ids)} campaign(s))"
    )


@access_group.command("list")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def access_group_list(org_slug: str, as_json: bool) -> None:
    """List access groups and their campaigns."""
    with _database().transaction(write=False) as session:
        groups = access.list_access_groups(session, _org(session, org_slug))
    if as_json:
        click.echo(json.dumps([g.to_dict() for g in groups]))
        return
    for g in groups:
        click.echo(f"{g.name}: {', '.join(g.campaign_ids) or '(no campaigns)'}")


@access_group.command("delete")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def access_group_delete(org_slug: str, name: str, as_json: bool) -> None:
    """Delete an access group and the mappings granting it; users are recomputed."""
    _delete_and_report(
        org_slug,
        name,
        as_json,
        access.delete_access_group,
        "access_group.delete",
        "AccessGroup",
        "access group",
    )


@main.group()
def mapping() -> None:
    """Group mappings: which IdP groups grant which role or access group."""


def _mapping_options(function: Any) -> Any:
    options = [
        click.option(
            "--group-name", help="Match the group with this displayName (exact, case-insensitive)."
        ),
        click.option(
            "--group-prefix",
            help="Match groups whose displayName starts with this (case-insensitive).",
        ),
        click.option("--group-external-id", help="Match the group with this externalId (exact)."),
        click.option("--role", "role_name", help="Grant this role."),
        click.option("--access-group", "access_group_name", help="Grant this access group."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@mapping.command("add")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@_mapping_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def mapping_add(
    org_slug: str,
    group_name: str | None,
    group_prefix: str | None,
    group_external_id: str | None,
    role_name: str | None,
    access_group_name: str | None,
    as_json: bool,
) -> None:
    """Map IdP groups to a role or an access group; their members are recomputed."""
    with _database().transaction(write=True) as session:
        organization = _org(session, org_slug)
        try:
            change = access.add_mapping(
                session,
                organization,
                group_name=group_name,
                group_prefix=group_prefix,
                group_external_id=group_external_id,
                role=role_name,
                access_group=access_group_name,
            )
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        users = access.affected_users(session, change.changes)
        append(
            session,
            _cli_event(
                "mapping.add",
                organization.id,
                resource_type="GroupMapping",
                resource_id=str(change.mapping.id),
                changes={**change.mapping.event_changes(True), "affectedUsers": users},
            ),
        )
    _echo_mapping("added", change, users, as_json)


def _echo_mapping(
    verb: str, change: access.MappingChange, users: dict[str, Any], as_json: bool
) -> None:
    if as_json:
        click.echo(json.dumps({"mapping": change.mapping.to_dict(), "affectedUsers": users}))
        return
    click.echo(f"mapping {change.mapping.id} {verb}: {change.mapping.describe()}")
    _echo_affected(users)


@mapping.command("list")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def mapping_list(org_slug: str, as_json: bool) -> None:
    """List mappings with their ids (for `mapping remove`)."""
    with _database().transaction(write=False) as session:
        mappings = access.list_mappings(session, _org(session, org_slug))
    if as_json:
        click.echo(json.dumps([m.to_dict() for m in mappings]))
        return
    for m in mappings:
        click.echo(f"{m.id:>5}  {m.describe()}")


@mapping.command("remove")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("mapping_id", type=WholeNumber(), required=False)
@_mapping_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def mapping_remove(
    org_slug: str,
    mapping_id: int | None,
    group_name: str | None,
    group_prefix: str | None,
    group_external_id: str | None,
    role_name: str | None,
    access_group_name: str | None,
    as_json: bool,
) -> None:
    """Remove a mapping, by id or by the options it was added with; members are recomputed."""
    with _database().transaction(write=True) as session:
        organization = _org(session, org_slug)
        try:
            change = access.remove_mapping(
                session,
                organization,
                mapping_id,
                group_name=group_name,
                group_prefix=group_prefix,
                group_external_id=group_external_id,
                role=role_name,
                access_group=access_group_name,
            )
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        users = access.affected_users(session, change.changes)
        append(
            session,
            _cli_event(
                "mapping.remove",
                organization.id,
                resource_type="GroupMapping",
                resource_id=str(change.mapping.id),
                changes={**change.mapping.event_changes(False), "affectedUsers": users},
            ),
        )
    _echo_mapping("removed", change, users, as_json)


@main.group()
def connection() -> None:
    """IdP connections and their tokens."""


@connection.command("create")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--name", required=True, help="Name of the connection, e.g. 'Okta production'.")
@click.option("--idp", type=click.Choice(tokens.IDPS), default="generic", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help=_PORT_HELP)
def connection_create(org_slug: str, name: str, idp: str, as_json: bool, port: int) -> None:
    """Create a connection and print the SCIM base URL and its token (shown once)."""
    with _database().transaction(write=True) as session:
        try:
            organization = tokens.get_organization(session, org_slug)
            created, token = tokens.create_connection(session, organization, name, idp)
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        connection_id = created.id
        append(
            session,
            _cli_event(
                "connection.create",
                organization.id,
                resource_type="Connection",
                resource_id=connection_id,
                token_prefix=tokens.token_prefix(token),
                changes={"name": [None, name], "idp": [None, idp]},
            ),
        )
    base_url = _scim_base_url("localhost", port)
    if as_json:
        click.echo(
            json.dumps({"connection_id": connection_id, "base_url": base_url, "token": token})
        )
    else:
        click.echo(f"connection {connection_id} created for organisation {org_slug}")
        click.echo(f"SCIM base URL: {base_url}")
        click.echo(f"Bearer token:  {token}")
        click.echo("The token is shown only this once; store it in your IdP now.")
    _warn_unless_public_base_url()


def _token_changes(changes: list[tokens.TokenChange]) -> list[dict[str, Any]]:
    return [change.view() for change in changes]


def _describe_changes(changes: list[dict[str, Any]]) -> None:
    for change in changes:
        state = "revoked now" if change["revoked"] else f"valid until {change['expires']}"
        kind = "client secret" if change["scope"] == tokens.CLIENT_SCOPE else "token"
        click.echo(f"  old {kind} {change['prefix']}...: {state}")


def _renew_credential(
    org_slug: str,
    connection_ref: str,
    overlap: str,
    operation: str,
    changed: str,
    renew: tokens.Renewal,
) -> tuple[str, str, list[dict[str, Any]]]:
    """A new credential of a connection (``renew``: a bearer token, an OAuth client secret) whose
    previous ones end after ``overlap``, audited as ``operation`` with the prefixes only."""
    with _database().transaction(write=True) as session:
        try:
            organization = tokens.get_organization(session, org_slug)
            found = connections.find_connection(session, organization, connection_ref)
            secret, ended = renew(session, organization, found, tokens.parse_duration(overlap))
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        changes = _token_changes(ended)
        append(
            session,
            _cli_event(
                operation,
                organization.id,
                resource_type="Connection",
                resource_id=found.id,
                token_prefix=tokens.token_prefix(secret),
                changes={changed: [None, tokens.token_prefix(secret)], "oldTokens": changes},
            ),
        )
        return found.id, secret, changes


@connection.command("rotate")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("connection_ref", metavar="CONNECTION")
@click.option(
    "--overlap",
    default="24h",
    show_default=True,
    help="How long the old token keeps working (0: revoked at once; at most 30d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help=_PORT_HELP)
def connection_rotate(
    org_slug: str, connection_ref: str, overlap: str, as_json: bool, port: int
) -> None:
    """Give a connection a new token (shown once); its old ones end after --overlap."""
    connection_id, secret, changes = _renew_credential(
        org_slug, connection_ref, overlap, "connection.rotate", "newToken",
        tokens.rotate_connection_token,
    )  # fmt: skip
    base_url = _scim_base_url("localhost", port)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "connection_id": connection_id,
                    "base_url": base_url,
                    "token": secret,
                    "previous_tokens": changes,
                }
            )
        )
    else:
        click.echo(f"connection {connection_id} of organisation {org_slug} has a new token")
        click.echo(f"SCIM base URL: {base_url}")
        click.echo(f"Bearer token:  {secret}")
        _describe_changes(changes)
        click.echo("The token is shown only this once; paste it into your IdP now.")
    _warn_unless_public_base_url()


@connection.command("oauth")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("connection_ref", metavar="CONNECTION")
@click.option(
    "--overlap",
    default="24h",
    show_default=True,
    help="How long a previous client secret keeps working (0: revoked at once; at most 30d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help=_PORT_HELP)
def connection_oauth(
    org_slug: str, connection_ref: str, overlap: str, as_json: bool, port: int
) -> None:
    """Give a connection an OAuth 2.0 client secret (shown once), for IdPs that use the client
    credentials grant; a previous secret, and the access tokens issued for it, end after
    --overlap. The connection's bearer tokens are not touched."""
    connection_id, secret, changes = _renew_credential(
        org_slug, connection_ref, overlap, "connection.oauth", "newSecret",
        oauth.issue_client_secret,
    )  # fmt: skip
    base_url = _scim_base_url("localhost", port)
    token_url = discovery.token_endpoint(base_url)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "connection_id": connection_id,
                    "base_url": base_url,
                    "token_endpoint": token_url,
                    "client_id": connection_id,
                    "client_secret": secret,
                    "previous_tokens": changes,
                }
            )
        )
    else:
        click.echo(f"connection {connection_id} of organisation {org_slug} has a new client secret")
        click.echo(f"SCIM base URL:  {base_url}")
        click.echo(f"Token endpoint: {token_url}")
        click.echo(f"Client id:      {connection_id}")
        click.echo(f"Client secret:  {secret}")
        _describe_changes(changes)
        click.echo("The secret is shown only this once; paste it into your IdP now.")
    _warn_unless_public_base_url()


@connection.command("revoke")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("connection_ref", metavar="CONNECTION")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def connection_revoke(org_slug: str, connection_ref: str, as_json: bool) -> None:
    """Revoke every token of a connection now (it keeps what it owns; rotate to get a new one)."""
    with _database().transaction(write=True) as session:
        try:
            organization = tokens.get_organization(session, org_slug)
            found = connections.find_connection(session, organization, connection_ref)
            ended = tokens.revoke_connection_tokens(session, organization, found)
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        connection_id = found.id
        changes = _token_changes(ended)
        append(
            session,
            _cli_event(
                "connection.revoke",
                organization.id,
                resource_type="Connection",
                resource_id=connection_id,
                changes={"oldTokens": changes},
            ),
        )
    if as_json:
        click.echo(json.dumps({"connection_id": connection_id, "revoked": changes}))
        return
    click.echo(
        f"revoked {len(changes)} token{'s' if len(changes) != 1 else ''} of connection "
        f"{connection_id}"
    )
    _describe_changes(changes)


@connection.command("list")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def connection_list(org_slug: str, as_json: bool) -> None:
    """List connections (oldest first) and how many users and groups each owns."""
    with _database().transaction(write=False) as session:
        found = connections.list_connections(session, _org(session, org_slug))
    if as_json:
        click.echo(json.dumps([c.to_dict() for c in found]))
        return
    for c in found:
        created = c.created_at.strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{c.id}  {c.name}  [{c.idp}]  created {created} UTC  "
            f"owns {c.users} user{'s' if c.users != 1 else ''}, "
            f"{c.groups} group{'s' if c.groups != 1 else ''}"
        )


@connection.command("transfer")
@click.option(
    "--org", "org_slug", default=None, help="Organisation slug (optional when --from is an id)."
)
@click.option("--from", "source", required=True, help="Connection id or name now owning them.")
@click.option("--to", "target", required=True, help="Connection id or name to own them.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def connection_transfer(org_slug: str | None, source: str, target: str, as_json: bool) -> None:
    """Move ownership of every user and group of one connection to another (IdP migration)."""
    with _database().transaction(write=True) as session:
        if org_slug is None:
            owner = session.get(Connection, source.strip())
            if owner is None:
                raise click.UsageError(
                    f"no connection with id {source!r}: give connection ids, or --org SLUG "
                    "to name connections by name"
                )
            organization = owner.organization
        else:
            organization = _org(session, org_slug)
        try:
            moved = connections.transfer_ownership(session, organization, source, target)
        except tokens.ServiceError as error:
            _fail(error)
        result = {
            "from": {"id": moved.source.id, "name": moved.source.name},
            "to": {"id": moved.target.id, "name": moved.target.name},
            "users": moved.users,
            "groups": moved.groups,
        }
        append(
            session,
            _cli_event(
                "connection.transfer",
                organization.id,
                resource_type="Connection",
                resource_id=moved.source.id,
                changes={
                    "owner": [moved.source.id, moved.target.id],
                    "usersMoved": moved.users,
                    "groupsMoved": moved.groups,
                },
            ),
        )
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"moved ownership of {moved.users} user{'s' if moved.users != 1 else ''} and "
        f"{moved.groups} group{'s' if moved.groups != 1 else ''} from {moved.source.name} "
        f"({moved.source.id}) to {moved.target.name} ({moved.target.id})"
    )


@main.group("deprovisioning")
def deprovisioning_group() -> None:
    """The mass-deprovisioning guard: holds, and an admin's release or rejection."""


@deprovisioning_group.command("list")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--all", "show_all", is_flag=True, help="Decided holds too, not only open ones.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def deprovisioning_list(org_slug: str, show_all: bool, as_json: bool) -> None:
    """Connections whose deprovisioning is held (newest first)."""
    with _database().transaction(write=False) as session:
        holds = deprovisioning.list_holds(session, _org(session, org_slug), open_only=not show_all)
    if as_json:
        click.echo(json.dumps(holds))
        return
    if not holds:
        click.echo(f"no deprovisioning {'hold' if show_all else 'held'} in {org_slug}")
        return
    for hold in holds:
        decided = (
            f", {hold['state']} by {hold['decidedBy']} at {hold['decidedAt']} until {hold['until']}"
            if hold["decidedAt"]
            else ""
        )
        wave = (
            f"{hold['count']} users since {hold['openedAt']} (limit {hold['rule']})"
            if hold["count"]
            else "no wave (approved ahead)"
        )
        click.echo(
            f"hold {hold['id']}: {hold['connection']['name']} ({hold['connection']['id']}) "
            f"{wave}{decided}"
        )


@deprovisioning_group.command("show")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("hold_id", type=WholeNumber())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def deprovisioning_show(org_slug: str, hold_id: int, as_json: bool) -> None:
    """One hold, with the users deprovisioned in the wave that opened it."""
    with _database().transaction(write=False) as session:
        try:
            hold = deprovisioning.show_hold(session, _org(session, org_slug), hold_id)
        except tokens.ServiceError as error:
            _fail(error)
    if as_json:
        click.echo(json.dumps(hold))
        return
    connection_shown = f"{hold['connection']['name']} ({hold['connection']['id']})"
    click.echo(f"hold {hold['id']} of {connection_shown}: {hold['state']}")
    click.echo(f"opened {hold['openedAt']}, limit {hold['rule']}")
    if hold["decidedAt"]:
        click.echo(f"{hold['state']} by {hold['decidedBy']} at {hold['decidedAt']}")
        click.echo(f"until {hold['until']}")
    click.echo(f"users deactivated or deleted in the wave ({hold['count']}):")
    for user in hold["users"]:
        click.echo(f"  {user['at']}  {user['userName']} ({user['id']})")


def _decide(
    org_slug: str, connection_ref: str, state: str, duration: str | None, as_json: bool
) -> None:
    with _database().transaction(write=True) as session:
        organization = _org(session, org_slug)
        operation = {deprovisioning.RELEASED: "release", deprovisioning.REJECTED: "reject"}[state]
        event = _cli_event(f"deprovisioning.{operation}", organization.id)
        try:
            target = connections.find_connection(session, organization, connection_ref)
            decision = deprovisioning.decide(
                session,
                organization,
                target,
                state,
                None if duration is None else tokens.parse_duration(duration, "--for"),
                f"{event.actor_type}:{event.actor}",
            )
        except tokens.ServiceError as error:
            _fail(error)
        event.resource_type = "Connection"
        event.resource_id = target.id
        event.changes = decision.changes()
        append(session, event)
        view = deprovisioning.hold_view(decision.hold, target.name, with_users=False)
    if as_json:
        click.echo(json.dumps(view))
        return
    if state == deprovisioning.RELEASED:
        click.echo(
            f"deprovisioning from {target.name} released: it passes uncounted until "
            f"{view['until']}, then the limit applies again"
        )
    else:
        click.echo(
            f"deprovisioning from {target.name} rejected: refused (409) until {view['until']}, "
            "or until released; fix the assignments in the identity provider"
        )


@deprovisioning_group.command("release")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--connection", "connection_ref", required=True, help="Connection id or name.")
@click.option(
    "--for",
    "duration",
    default=None,
    help="How long its deprovisioning then passes uncounted (e.g. 30m, 4h, 0; at most 30d). "
    "Default: 1h, or 0 when it ends a rejection (counted again at once).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def deprovisioning_release(
    org_slug: str, connection_ref: str, duration: str | None, as_json: bool
) -> None:
    """Let a held (or rejected, or planned) mass deprovisioning go through."""
    _decide(org_slug, connection_ref, deprovisioning.RELEASED, duration, as_json)


@deprovisioning_group.command("reject")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--connection", "connection_ref", required=True, help="Connection id or name.")
@click.option(
    "--for",
    "duration",
    default=None,
    help="How long its deprovisioning is then refused with 409 (e.g. 4h, 7d; at most 30d). "
    "Default: 24h.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def deprovisioning_reject(org_slug: str, connection_ref: str, duration: str, as_json: bool) -> None:
    """Refuse a held (or released) mass deprovisioning: the IdP gets a permanent error."""
    _decide(org_slug, connection_ref, deprovisioning.REJECTED, duration, as_json)


@main.group()
def policy() -> None:
    """Domain policy: what the organisation's settings allow."""


@policy.command("check")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def policy_check(org_slug: str, as_json: bool) -> None:
    """List users in the store the current settings would refuse (changes nothing)."""
    with _database().transaction(write=False) as session:
        report = organizations.policy_report(session, _org(session, org_slug))
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    count = report.count
    click.echo(
        f"{count} user{'s' if count != 1 else ''} of {org_slug} "
        f"{'are' if count != 1 else 'is'} outside the current domain policy"
    )
    for entry in report.users[:SHOWN_USERS]:
        state = "" if entry["active"] else " [inactive]"
        click.echo(f"  {entry['userName']} ({entry['id']}){state}: {entry['reason']}")
    if count > SHOWN_USERS:
        click.echo(
            f"  ... and {count - SHOWN_USERS} more (--json lists up to "
            f"{organizations.MAX_LISTED_USERS})"
        )


@main.group()
def invitation() -> None:
    """Invitations of invited users (DESIGN §5.3); link tokens are never shown."""


@invitation.command("list")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option(
    "--pending", is_flag=True, help="Only invitations not accepted, cancelled or expired."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def invitation_list(org_slug: str, pending: bool, as_json: bool) -> None:
    """List invitations, oldest first."""
    with _database().transaction(write=True) as session:
        organization = _org(session, org_slug)
        listed = lifecycle.list_invitations(session, organization.id, pending_only=pending)
        append(
            session,
            _cli_event(
                "invitation.list",
                organization.id,
                resource_type="Invitation",
                detail=f"{len(listed)} listed" + (" (pending only)" if pending else ""),
            ),
        )
    if as_json:
        click.echo(json.dumps(listed))
        return
    for entry in listed:
        state = (
            "accepted"
            if entry["accepted"]
            else "cancelled"
            if entry["cancelled"]
            else f"expires {entry['expires']}"
        )
        sent = f", sent {entry['sent']}" if entry["sent"] else ", not sent yet"
        click.echo(f"{entry['id']}  {entry['userName']}  {state}{sent}")


def _user_event(
    session: Session, operation: str, organization: Organization, user: Any, changes: Any
) -> None:
    append(
        session,
        _cli_event(
            operation,
            organization.id,
            resource_type="User",
            resource_id=user.id,
            user_name=user.user_name,
            changes=changes,
        ),
    )


@invitation.command("resend")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("user_name")
def invitation_resend(org_slug: str, user_name: str) -> None:
    """Write a new invitation (a new link) for an invited user; the old link stops working."""
    with _database().transaction(write=True) as session:
        organization = _org(session, org_slug)
        try:
            issued = lifecycle.resend_invitation(session, organization.id, user_name)
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        user = session.get(User, issued.invitation.user_pk)
        _user_event(
            session,
            "invitation.resend",
            organization,
            user,
            {"invitation": [None, issued.summary()]},
        )
        shown = issued.summary()
    click.echo(
        f"invitation {shown['id']} queued for {user_name} (expires {shown['expires']}); "
        "the previous link no longer works"
    )


@invitation.command("cancel")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("user_name")
def invitation_cancel(org_slug: str, user_name: str) -> None:
    """Cancel a user's pending invitation (the user stays invited; resend to invite again)."""
    with _database().transaction(write=True) as session:
        organization = _org(session, org_slug)
        try:
            user = lifecycle.cancel_invitation(session, organization.id, user_name)
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        _user_event(
            session, "invitation.cancel", organization, user, {"invitation": ["pending", None]}
        )
    click.echo(f"invitation of {user_name} cancelled")


@invitation.command("drain")
@click.option("--org", "org_slug", default=None, help="Only this organisation (default: all).")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=WholeNumber(low=1),
    help="Messages to take at most.",
)
def invitation_drain(org_slug: str | None, limit: int) -> None:
    """Hand waiting invitation messages to your mailer: one JSON object per line on stdout,
    each marked sent. The link is built from SCIM_INVITATION_URL ({token} replaced); without
    it the message carries the token. Run it from the mailer's job and send what it prints."""
    settings = _settings()
    with _database().transaction(write=True) as session:
        organization = _org(session, org_slug) if org_slug else None
        messages = lifecycle.drain_outbox(
            session, organization.id if organization else None, settings.invitation_url, limit
        )
        by_org: dict[int, list[str]] = {}
        for message in messages:
            by_org.setdefault(message["orgId"], []).append(message["invitationId"])
        for org_id, ids in sorted(by_org.items()):  # heads in organisation order (chain.append_all)
            append(
                session,
                _cli_event(
                    "invitation.send",
                    org_id,
                    resource_type="Invitation",
                    changes={"sent": ids, "count": len(ids)},
                ),
            )
    for message in messages:
        click.echo(json.dumps(message))


@click.group()
def users() -> None:
    """Users: export and import as CSV, unlock, purge soft-deleted users."""


@users.command("unlock")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("user_name")
def users_unlock(org_slug: str, user_name: str) -> None:
    """Unlock a locked user (SCIM cannot); it becomes active, invited or deactivated."""
    with _database().transaction(write=True) as session:
        organization = _org(session, org_slug)
        try:
            user, status = lifecycle.unlock_user(session, organization, user_name)
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        _user_event(
            session,
            "user.unlock",
            organization,
            user,
            {f"{ACCESS_USER}:status": [policy_lifecycle.LOCKED, status]},
        )
    click.echo(f"user {user_name} unlocked: now {status}")


def _admin() -> user_csv.Admin:
    draft = _cli_event("users.import", 0)
    return user_csv.Admin(draft.actor_type, draft.actor or "unknown")


@users.command("export")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--output", type=click.Path(dir_okay=False), help="File to write (default: stdout).")
def users_export(org_slug: str, output: str | None) -> None:
    """Every user of the organisation as CSV, one column per attribute (from the schemas)."""
    database = _database()
    with database.transaction(write=False) as session:
        organization = _org(session, org_slug)
    count = -1  # the header
    base_url = _settings().base_url or "http://localhost/scim/v2"
    rows = user_csv.export_rows(database, default_registry(), organization, base_url)
    complete = False
    try:
        with click.open_file(output or "-", "w", encoding="utf-8") as handle:
            for line in user_csv.csv_text(rows):
                handle.write(line)
                count += 1
        complete = True
    finally:  # what was written is on record, even when the reader went away half-way
        with database.transaction(write=True) as session:
            append(
                session,
                _cli_event(
                    "users.export",
                    organization.id,
                    resource_type="User",
                    status=200 if complete else 500,
                    detail=f"{max(count, 0)} users exported as CSV"
                    + ("" if complete else " before the output was closed"),
                    changes={"exported": max(count, 0), "file": output or "stdout"},
                ),
            )
    if output:
        click.echo(f"exported {count} users of {org_slug} to {output}", err=True)


@users.command("import")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
@click.option(
    "--deactivate-missing",
    is_flag=True,
    help="Deactivate the active users the file does not name.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def users_import(
    org_slug: str, path: str, dry_run: bool, deactivate_missing: bool, as_json: bool
) -> None:
    """Create and update users from a CSV file (the columns of `users export`), all or nothing."""
    database = _database()
    with database.transaction(write=False) as session:
        _org(session, org_slug)
    with open(path, encoding="utf-8-sig", newline="") as handle:  # utf-8-sig: Excel's BOM
        reader = csv.DictReader(handle)
        try:
            header = list(reader.fieldnames or [])
            rows = [(reader.line_num, row) for row in reader]
        except (csv.Error, UnicodeDecodeError) as error:
            detail = (
                f'{path} is not UTF-8 text: save it as "CSV UTF-8" (Excel) or convert it'
                if isinstance(error, UnicodeDecodeError)
                else f"{path}: not a CSV file (line {reader.line_num}: {error})"
            )
            user_csv.refuse_file(database, org_slug, _admin(), os.path.basename(path), detail)
            raise click.ClickException(detail) from None
    with click.progressbar(
        length=len(rows),
        label="importing",
        file=sys.stderr,
        show_pos=True,
        hidden=not sys.stderr.isatty(),  # a bar for a person, not for a log file
    ) as bar:
        try:
            report = user_csv.import_rows(
                database,
                default_registry(),
                org_slug,
                os.path.basename(path),
                header,
                rows,
                admin=_admin(),
                base_url=_settings().base_url or "http://localhost/scim/v2",
                dry_run=dry_run,
                deactivate_missing=deactivate_missing,
                progress=bar.update,
            )
        except tokens.ServiceError as error:
            _fail(error)
    summary = report.to_dict()
    if as_json:
        click.echo(json.dumps(summary))
    else:
        verb = "would be" if dry_run else ("were" if report.applied else "would have been")
        click.echo(
            f"{report.rows} rows: {summary['created']} users {verb} created, "
            f"{summary['updated']} updated, {summary['deactivated']} deactivated; "
            f"{report.unchanged} unchanged"
        )
        for refused in report.errors:
            where = f"line {refused['line']}" if refused["line"] else "deactivating"
            click.echo(f"  {where} ({refused['userName']}): {refused['detail']}", err=True)
    if report.errors:
        raise click.ClickException(
            f"{len(report.errors)} row{'s' if len(report.errors) != 1 else ''} refused: "
            "nothing was written"
        )


@users.command("purge")
@click.option("--org", "org_slug", help="Organisation slug.")
@click.option(
    "--all",
    "all_orgs",
    is_flag=True,
    help="Every organisation, each by its own retention period (run it daily from a scheduler).",
)
@click.option(
    "--older-than",
    "days",
    type=WholeNumber(0, organizations.MAX_RETENTION_DAYS),
    metavar="DAYS",
    help="Remove users soft-deleted more than DAYS days ago. Default: the organisation's "
    "soft-delete retention (org update --soft-delete-retention).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def users_purge(org_slug: str | None, all_orgs: bool, days: int | None, as_json: bool) -> None:
    """Remove soft-deleted users for good, after the retention period."""
    if all_orgs == (org_slug is not None):
        raise click.UsageError("give either --org SLUG or --all")
    database = _database()
    if org_slug is not None:
        with database.transaction(write=True) as session:
            result = _purge(session, _org(session, org_slug), days, record_nothing=True)
        if as_json:
            click.echo(json.dumps(result))
            return
        count = result["purged"]
        click.echo(f"purged {count} user{'s' if count != 1 else ''} of {org_slug}")
        return
    with database.transaction(write=False) as session:
        due = lifecycle.organizations_with_users_to_purge(session, days)
    results = []
    failed = []
    for org_id, slug in due:  # one transaction each: short locks, and one failure stops no other
        try:
            with database.transaction(write=True) as session:
                organization = session.get(Organization, org_id)
                if organization is None:  # deleted meanwhile
                    continue
                result = _purge(session, organization, days, record_nothing=False)
        except Exception as error:  # reported, and the exit status says so; the others go on
            click.echo(f"could not purge {slug}: {type(error).__name__}: {error}", err=True)
            failed.append(slug)
            continue
        if result["purged"]:
            results.append(result)
    if as_json:
        click.echo(json.dumps({"purged": results, "failed": failed}))
    else:
        for result in results:
            count = result["purged"]
            click.echo(f"purged {count} user{'s' if count != 1 else ''} of {result['org']}")
        total = sum(result["purged"] for result in results)
        orgs = len(results)
        click.echo(
            f"purged {total} user{'s' if total != 1 else ''} "
            f"of {orgs} organisation{'s' if orgs != 1 else ''}"
        )
    if failed:
        sys.exit(1)


def _purge(
    session: Session, organization: Organization, days: int | None, *, record_nothing: bool
) -> dict[str, Any]:
    """Purge one organisation's soft-deleted users past ``days`` (else its retention period);
    audited as users.purge, and when nothing was purged only if ``record_nothing`` (a daily
    ``--all`` would otherwise fill every log with events of nothing)."""
    kept = organization.soft_delete_retention_days if days is None else days
    purged = lifecycle.purge_deleted(session, organization.id, timedelta(days=kept))
    listed = [{"id": i, "userName": n} for i, n in purged[: access.MAX_LISTED_USERS]]
    if purged or record_nothing:
        append(
            session,
            _cli_event(
                "users.purge",
                organization.id,
                resource_type="User",
                detail=f"soft-deleted more than {kept} days ago",
                changes={"purgedUsers": {"count": len(purged), "users": listed}},
            ),
        )
    return {"org": organization.slug, "purged": len(purged), "users": listed}


main.add_command(users)
#: ``user unlock`` reads better for one user; both spellings are the same commands.
main.add_command(click.Group("user", commands=users.commands, hidden=True))


@main.group()
def token() -> None:
    """Tokens: create admin and audit tokens; list and revoke any token of an organisation."""


@token.command("create")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option(
    "--scope",
    type=click.Choice(["admin", "audit"]),
    required=True,
    help="audit: /audit/v1 only. SCIM tokens come with `connection create`.",
)
@click.option(
    "--expires",
    metavar="DURATION",
    help="End the token after this long: e.g. 12h, 90d (at most 366d). Default: no expiry.",
)
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"token": ..., "expires": ...} on stdout.'
)
def token_create(org_slug: str, scope: str, expires: str | None, as_json: bool) -> None:
    """Create a token (shown once)."""
    with _database().transaction(write=True) as session:
        try:
            organization = tokens.get_organization(session, org_slug)
            expires_at = None if expires is None else utcnow() + tokens.parse_lifetime(expires)
            secret = tokens.issue_token(session, organization, scope, expires_at=expires_at)
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        shown = None if expires_at is None else expires_at.isoformat().replace("+00:00", "Z")
        changes: dict[str, Any] = {"scope": [None, scope]}
        if shown is not None:
            changes["expires"] = [None, shown]
        append(
            session,
            _cli_event(
                "token.create",
                organization.id,
                resource_type="Token",
                resource_id=tokens.token_prefix(secret),
                token_prefix=tokens.token_prefix(secret),
                changes=changes,
            ),
        )
    if as_json:
        click.echo(json.dumps({"token": secret, "expires": shown}))
        return
    click.echo(f"{scope} token for organisation {org_slug}: {secret}")
    click.echo(f"It expires {shown}." if shown else "It does not expire; revoke it when done.")
    click.echo("The token is shown only this once.")


@token.command("list")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--all", "ended", is_flag=True, help="Expired and revoked tokens too.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def token_list(org_slug: str, ended: bool, as_json: bool) -> None:
    """The organisation's live tokens, oldest first, by prefix (never the tokens): connections'
    bearer tokens, OAuth client secrets and the access tokens issued for them, admin and audit
    tokens. Revoke one with `token revoke PREFIX`."""
    with _database().transaction(write=False) as session:
        listed = tokens.list_tokens(session, _org(session, org_slug), ended=ended)
    if as_json:
        click.echo(json.dumps([view.to_dict() for view in listed]))
        return
    for view in listed:
        shown = view.to_dict()
        owner = f"  {view.connection_name} ({view.connection_id})" if view.connection_id else ""
        state = (
            f"revoked {shown['revoked']}"
            if view.revoked_at
            else f"expires {shown['expires']}"
            if view.expires_at
            else "no expiry"
        )
        issued = f"  issued for {view.issued_for}..." if view.issued_for else ""
        click.echo(
            f"{view.prefix}...  {view.kind}{owner}  created {shown['created']}  {state}{issued}"
        )


@token.command("revoke")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("prefix")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def token_revoke(org_slug: str, prefix: str, as_json: bool) -> None:
    """Revoke one token now, named by its prefix (as the provisioning log shows it)."""
    with _database().transaction(write=True) as session:
        try:
            organization = tokens.get_organization(session, org_slug)
            ended, *issued = tokens.revoke_token(session, organization, prefix)
        except (tokens.ServiceError, ScimError) as error:
            _fail(error)
        append(
            session,
            _cli_event(
                "token.revoke",
                organization.id,
                resource_type="Token",
                resource_id=ended.prefix,
                token_prefix=ended.prefix,
                changes=tokens.revocation_changes(ended, issued),
            ),
        )
    if as_json:
        click.echo(json.dumps({**ended.view(), "issuedTokens": _token_changes(issued)}))
        return
    click.echo(f"token {ended.prefix}... ({ended.scope}) of organisation {org_slug} revoked")
    for change in issued:
        click.echo(f"  access token {change.prefix}... issued for it: revoked now")


@main.group()
def audit() -> None:
    """The provisioning log: query, export, verify, checkpoint, prune."""


def _chain_options(function: Any) -> Any:
    """``--org SLUG``, or ``--system`` for the log of requests that belong to no organisation."""
    function = click.option(
        "--system",
        is_flag=True,
        help="The server's own log instead: requests no organisation can be told of "
        "(unknown tokens, requests without one).",
    )(function)
    return click.option("--org", "org_slug", help="Organisation slug.")(function)


def _chain(database: Database, org_slug: str | None, system: bool) -> tuple[int, str | None]:
    """The chain a command works on, and the organisation's slug (None for the system log)."""
    if system == (org_slug is not None):
        raise click.UsageError("give either --org SLUG or --system")
    if system:
        return SYSTEM_CHAIN, None
    return _organization_id(database, org_slug or "")


def _record_log_read(
    database: Database,
    org_id: int,
    operation: str,
    filter_text: str | None,
    *,
    refused: ScimError | None = None,
    status: int = 200,
    detail: str | None = None,
    changes: dict[str, Any] | None = None,
) -> None:
    """The event of an auditor's read of a log, in that log (DESIGN §6: every audit request is
    an event), as the audit API records its queries and exports.

    A read the database will not record (a read-only replica or role; a damaged chain head)
    still answers, with a warning on stderr: an auditor's read is not refused for its event.
    """
    if refused is not None:
        detail, status = refused.detail, refused.status
    elif detail is None and filter_text:
        detail = f"filter: {filter_text}"
    try:
        with database.transaction(write=True) as session:
            append(
                session,
                _cli_event(
                    operation,
                    org_id,
                    resource_type="AuditLog",
                    status=status,
                    scim_type=refused.scim_type if refused is not None else None,
                    detail=detail,
                    changes=changes,
                ),
            )
    except Exception as error:
        click.echo(f"warning: the {operation} event was not recorded: {error}", err=True)


def _logs(
    database: Database, org_slug: str | None, system: bool, every: bool
) -> list[tuple[int, str | None]]:
    """The logs a command works on: ``--all`` (every one), or the one of :func:`_chain`."""
    if not every:
        return [_chain(database, org_slug, system)]
    if system or org_slug is not None:
        raise click.UsageError("give --all alone, or --org SLUG or --system")
    return audit_log.every_log(database)


def _log_name(slug: str | None) -> str:
    return "the system log" if slug is None else f"the audit log of {slug}"


def _anchor(context: click.Context, option: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    seq, _, kept = value.partition(":")
    if not (seq.isascii() and seq.isdigit() and int(seq) >= 1 and _HASH.fullmatch(kept)):
        raise click.BadParameter(f"{value[:80]!r}: give SEQ:HASH as verify printed them")
    return int(seq), kept


_HASH = re.compile(r"[0-9a-f]{64}")


@audit.command("verify")
@_chain_options
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Every organisation's log and the system log (for a daily auditor's job).",
)
@click.option(
    "--anchor",
    metavar="SEQ:HASH",
    callback=_anchor,
    help="Also check that event SEQ still has the hash an earlier verify printed (kept "
    "outside the database): a rewrite resealed by someone with write access shows there.",
)
@click.option(
    "--max-age",
    metavar="DURATION",
    help="With SCIM_AUDIT_SIGNING_KEY: also exit 1 unless the last checkpoint whose signature "
    "holds was signed within DURATION (e.g. 2d for a daily job): a log cut at its end, newest "
    "checkpoints included, shows there.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def audit_verify(
    org_slug: str | None,
    system: bool,
    every: bool,
    anchor: tuple[int, str] | None,
    max_age: str | None,
    as_json: bool,
) -> None:
    """Recompute the hash chain; exit 1 and name the first broken link if it does not hold."""
    database = _database()
    keys = _signing_keys()
    oldest = None if max_age is None else _oldest_signature(max_age, keys)
    if every and anchor is not None:
        raise click.UsageError("--anchor names an event of one log: give --org SLUG or --system")
    verdicts = [
        _verify_log(database, org_id, slug, anchor, keys, max_age, oldest)
        for org_id, slug in _logs(database, org_slug, system, every)
    ]
    if as_json:
        shown = [verdict.shown for verdict in verdicts]
        failed = [verdict.slug for verdict in verdicts if verdict.failed]
        click.echo(json.dumps({"logs": shown, "failed": failed} if every else shown[0]))
    else:
        for verdict in verdicts:
            for line in verdict.lines:
                click.echo(line)
        if every:
            failed_count = sum(verdict.failed for verdict in verdicts)
            click.echo(f"{len(verdicts)} logs verified, {failed_count} failed")
    if any(verdict.failed for verdict in verdicts):
        sys.exit(1)


@dataclass(frozen=True)
class _Verdict:
    """What ``audit verify`` says of one log."""

    slug: str | None
    failed: bool
    shown: dict[str, Any]  # the JSON object
    lines: list[str]  # the text


def _verify_log(
    database: Database,
    org_id: int,
    slug: str | None,
    anchor: tuple[int, str] | None,
    keys: tuple[SigningKey, ...],
    max_age: str | None,
    oldest: datetime | None,
) -> _Verdict:
    """Verify one log and record the audit.verify event in it."""
    result = audit_log.verify_chain(database, org_id, anchor, keys)
    signed = result.signed_checkpoint
    stale = (
        _staleness(signed, oldest, max_age)
        if result.ok and oldest is not None and max_age is not None
        else None
    )
    outcome = (
        f"broken at seq {result.broken.seq}: {result.broken.reason}"
        if result.broken is not None
        else f"stale: {stale}"
        if stale is not None
        else f"verified events {result.first_seq}..{result.last_seq}"
    )
    _record_log_read(
        database,
        org_id,
        "audit.verify",
        None,
        detail=outcome,
        changes={
            "ok": result.ok,
            "events": result.events,
            "brokenAt": result.broken.seq if result.broken else None,
            **({"anchorSeq": anchor[0]} if anchor else {}),
            "signaturesChecked": result.signatures_checked,
            "signedCheckpoint": signed.seq if signed else None,
            **({"maxAge": max_age, "stale": stale is not None} if oldest is not None else {}),
        },
    )
    anchored = anchor[0] if anchor and result.ok else None  # an anchor given and holding
    shown: dict[str, Any] = {"org": slug, **result.to_dict()}
    if anchor:
        shown["anchor_seq"] = anchored  # given: was it checked, and did it hold
    if oldest is not None:
        shown["stale"] = stale
    if stale is not None:
        lines = [f"{_log_name(slug)} is STALE: {stale}"]
    elif result.broken is None:
        lines = [
            f"{_log_name(slug)} verified: {result.events} events "
            f"(seq {result.first_seq}..{result.last_seq})"
            + (f"; event {anchored} still has the kept hash" if anchored else "")
            + (f"; last hash (keep it): {result.last_hash}" if result.last_hash else ""),
            _signatures_line(result),
        ]
    else:
        lines = [f"{_log_name(slug)} is BROKEN at seq {result.broken.seq}: {result.broken.reason}"]
    return _Verdict(slug, result.broken is not None or stale is not None, shown, lines)


def _oldest_signature(max_age: str, keys: tuple[SigningKey, ...]) -> datetime:
    """The oldest time a checkpoint may have been signed at for ``--max-age``."""
    if not keys:
        raise click.UsageError("--max-age checks signatures: it needs SCIM_AUDIT_SIGNING_KEY")
    try:
        age = tokens.parse_duration(max_age, "--max-age", timedelta(days=366))
    except tokens.ServiceError as error:
        raise click.BadParameter(str(error)) from None
    return utcnow() - age


def _staleness(signed: SignedCheckpoint | None, oldest: datetime, max_age: str) -> str | None:
    """Why the log is not vouched for recently enough, or None when it is."""
    if signed is None:
        return "no checkpoint signed with a given key holds"
    signed_at = _signed_time(signed)
    if signed_at is None or signed_at < oldest:
        return (
            f"the last checkpoint whose signature holds (event {signed.seq}) was signed at "
            f"{signed.time}, more than {max_age} ago: the log may have been cut at its end"
        )
    if signed_at > utcnow() + _CLOCK_SKEW:
        # only a key holder's clock can do this, but such a checkpoint would never grow old
        return (
            f"the last checkpoint whose signature holds (event {signed.seq}) says it was "
            f"signed at {signed.time}, in the future: check the clock of the signing job"
        )
    return None


#: How far ahead of this machine's clock a signing job's clock may be.
_CLOCK_SKEW = timedelta(minutes=5)


def _signed_time(signed: SignedCheckpoint) -> datetime | None:
    """``signedAt`` as an aware time; None when it is not one (never written so by us)."""
    try:
        moment = datetime.fromisoformat((signed.time or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _signatures_line(result: Verification) -> str:
    """What the signatures of checkpoints vouch for, in a sentence."""
    unchecked = result.unchecked_checkpoints
    if not result.signatures_checked:
        return (
            "signatures not checked (SCIM_AUDIT_SIGNING_KEY is not set): the chain holds, "
            "but a database writer could have rewritten and resealed it"
        )
    signed = result.signed_checkpoint
    if signed is None:
        return (
            "no checkpoint signed with a given key: run `scim-server audit checkpoint` "
            "so that later rewrites show"
            + (f" (checkpoints not vouched for: {_seq_list(unchecked)})" if unchecked else "")
        )
    after = (result.last_seq or signed.seq) - signed.seq
    return (
        f"signed checkpoint at event {signed.seq} ({signed.to_dict()['time']}, key "
        f"{signed.key_id}) holds: no event before it was rewritten, nor its own changes; "
        f"{after} event{'s' if after != 1 else ''} after it rest on the hash chain alone"
        + (f" (checkpoints not vouched for: {_seq_list(unchecked)})" if unchecked else "")
    )


def _seq_list(seqs: tuple[int, ...]) -> str:
    shown = ", ".join(str(seq) for seq in seqs[:10])
    return shown + (f" and {len(seqs) - 10} more" if len(seqs) > 10 else "")


@audit.command("checkpoint")
@_chain_options
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Every organisation's log and the system log (for a daily job).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def audit_checkpoint(org_slug: str | None, system: bool, every: bool, as_json: bool) -> None:
    """Sign the log as it stands with SCIM_AUDIT_SIGNING_KEY: a rewrite of any earlier event,
    even resealed by someone who can write to the database, then fails `audit verify`."""
    key = _signing_key("audit checkpoint")
    database = _database()
    logs = _logs(database, org_slug, system, every)
    signed: list[dict[str, Any]] = []
    failed: list[str | None] = []
    for org_id, slug in logs:
        draft = _cli_event(
            "audit.checkpoint",
            org_id,
            resource_type="AuditLog",
            detail="signed checkpoint of the log as it stands",
            changes={},
        )
        try:
            sealed = audit_log.sign_checkpoint(database, draft, key)
        except Exception as error:  # reported, and the exit status says so; the others go on
            if not every:
                raise
            click.echo(
                f"could not sign {_log_name(slug)}: {type(error).__name__}: {error}", err=True
            )
            failed.append(slug)
            continue
        signed.append({"org": slug, "seq": sealed.seq, "key_id": key.key_id})
        if not as_json:
            vouched = (
                f"events up to {sealed.seq - 1} are vouched for"
                if sealed.seq > 1
                else "the log was empty: it starts here"
            )
            click.echo(
                f"signed {_log_name(slug)} at event {sealed.seq} (key {key.key_id}): {vouched}"
            )
    if as_json:
        click.echo(json.dumps({"signed": signed, "failed": failed} if every else signed[0]))
    if failed:
        sys.exit(1)


def _query_options(function: Any) -> Any:
    function = click.option("--filter", "filter_text", help='e.g. operation eq "user.delete"')(
        function
    )
    return _chain_options(function)


@audit.command("query")
@_query_options
@click.option("--count", default=100, show_default=True, help="Events per page.")
@click.option("--cursor", help="Continue after the page that printed this cursor.")
def audit_query(
    org_slug: str | None, system: bool, filter_text: str | None, count: int, cursor: str | None
) -> None:
    """Print matching events as JSON lines; the next page's cursor goes to stderr."""
    database = _database()
    org_id, _ = _chain(database, org_slug, system)
    try:
        page = audit_log.page_events(
            database,
            default_registry(),
            org_id,
            filter_text=filter_text,
            cursor=cursor,
            count=count,
        )
    except ScimError as error:
        _record_log_read(database, org_id, "audit.query", filter_text, refused=error)
        raise click.ClickException(error.detail) from None
    _record_log_read(
        database, org_id, "audit.query", filter_text, changes={"events": len(page.events)}
    )
    for event in page.events:
        click.echo(json.dumps(event, ensure_ascii=False))
    if page.next_cursor:
        click.echo(f"next cursor: {page.next_cursor}", err=True)


@audit.command("export")
@_query_options
@click.option(
    "--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="csv", show_default=True
)
@click.option("--output", type=click.Path(dir_okay=False), help="File to write (default: stdout).")
def audit_export(
    org_slug: str | None, system: bool, filter_text: str | None, fmt: str, output: str | None
) -> None:
    """Export matching events as CSV or JSON Lines, streamed."""
    database = _database()
    org_id, _ = _chain(database, org_slug, system)
    try:
        chunks = audit_log.export_events(database, default_registry(), org_id, filter_text, fmt)
    except ScimError as error:
        _record_log_read(database, org_id, "audit.export", filter_text, refused=error)
        raise click.ClickException(error.detail) from None
    complete = False
    try:
        with click.open_file(output or "-", "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(chunk)
        complete = True
    finally:  # what was written is on record, even when the reader went away half-way
        changes = {"format": fmt, "file": output or "stdout", "complete": complete}
        _record_log_read(
            database,
            org_id,
            "audit.export",
            filter_text,
            status=200 if complete else 500,
            changes=changes,
        )


@audit.command("prune")
@_chain_options
@click.option(
    "--before",
    required=True,
    help="Remove events recorded before this date or time (UTC), e.g. 2026-01-01.",
)
@click.option(
    "--unsigned",
    is_flag=True,
    help="Prune without SCIM_AUDIT_SIGNING_KEY: the checkpoint left is not signed, so a "
    "database writer could later cut more of the log unseen.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def audit_prune(
    org_slug: str | None, system: bool, before: str, unsigned: bool, as_json: bool
) -> None:
    """Remove old events, leaving a checkpoint event, signed with SCIM_AUDIT_SIGNING_KEY, so
    `audit verify` still passes."""
    key = None if unsigned else _signing_key("audit prune (or --unsigned)")
    try:
        moment = datetime.fromisoformat(before.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{before!r} is not a date (YYYY-MM-DD) or ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    database = _database()
    org_id, slug = _chain(database, org_slug, system)
    draft = _cli_event("audit.prune", org_id, detail=f"before {moment.isoformat()}")
    result = audit_log.prune_events(database, draft, moment, key)
    summary = {
        "org": slug,
        "pruned": result.pruned,
        "cut_seq": result.cut_seq,
        "checkpoint_seq": result.checkpoint_seq,
        "key_id": key.key_id if key else None,
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(
            f"pruned {result.pruned} events of {_log_name(slug)} recorded before "
            f"{moment.isoformat()}; "
            f"checkpoint is event {result.checkpoint_seq}"
            + (f", signed with key {key.key_id}" if key else ", not signed")
        )


def _gunicorn_command(host: str, port: int, workers: int | None) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(gunicorn_config()),
        "--bind",
        f"{host}:{port}",
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    return [*command, "scim_server.wsgi:app"]


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=WholeNumber())
@click.option(
    "--workers", type=WholeNumber(low=1), default=None, help="Worker processes (default: config)."
)
def serve(host: str, port: int, workers: int | None) -> None:
    """Run the server with gunicorn in production mode (deploy/gunicorn.conf.py)."""
    _settings()  # fail early on bad configuration
    command = _gunicorn_command(host, port, workers)
    sys.stdout.flush()
    os.execv(command[0], command)  # noqa: S606 - replaces this process with gunicorn


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=WholeNumber())
@click.option("--no-serve", is_flag=True, help="Set up and print, but do not start the server.")
def demo(host: str, port: int, no_serve: bool) -> None:
    """Quick start: initialise the database, create a demo organisation and token, and serve."""
    database = _database()
    upgrade(database.engine)
    with database.transaction(write=True) as session:
        organization = session.scalar(select(Organization).where(Organization.slug == "demo"))
        if organization is None:
            organization = tokens.create_organization(session, "demo", "Demo organisation")
            append(
                session,
                _cli_event(
                    "org.create",
                    organization.id,
                    resource_type="Organization",
                    resource_id=organization.slug,
                    changes={"slug": [None, organization.slug], "name": [None, organization.name]},
                ),
            )
        # One connection for every run, and a new token for it each time (earlier tokens stay
        # valid): users and groups belong to the connection that created them, so a connection
        # per run would answer a later run's token 409 on everything an earlier one created.
        demo_connection = session.scalar(
            select(Connection)
            .where(Connection.org_id == organization.id, Connection.name == DEMO_CONNECTION)
            .order_by(Connection.created_at, Connection.id)
            .limit(1)
        )
        if demo_connection is None:
            demo_connection, token = tokens.create_connection(
                session, organization, DEMO_CONNECTION, "generic"
            )
            event = _cli_event(
                "connection.create",
                organization.id,
                resource_type="Connection",
                resource_id=demo_connection.id,
                token_prefix=tokens.token_prefix(token),
                changes={"name": [None, DEMO_CONNECTION], "idp": [None, "generic"]},
            )
        else:
            token = tokens.issue_token(session, organization, "scim", demo_connection)
            event = _cli_event(
                "token.create",
                organization.id,
                resource_type="Token",
                resource_id=tokens.token_prefix(token),
                token_prefix=tokens.token_prefix(token),
                changes={"scope": [None, "scim"], "connection": [None, demo_connection.id]},
            )
        append(session, event)
    base_url = _scim_base_url(host, port)
    lines = [
        "",
        "scim-server demo is ready.",
        f"  SCIM base URL: {base_url}",
        f"  Bearer token:  {token}",
        "",
        "Try it:",
        f"  curl -H 'Authorization: Bearer {token}' {base_url}/Users",
        "",
    ]
    click.echo("\n".join(lines))
    if no_serve:
        return
    command = _gunicorn_command(host, port, None)
    # a person reads these logs in a terminal, not a collector: plain lines unless told otherwise
    os.environ.setdefault("SCIM_LOG_FORMAT", "text")
    sys.stdout.flush()
    os.execv(command[0], command)  # noqa: S606 - replaces this process with gunicorn


if __name__ == "__main__":  # pragma: no cover
    main()
