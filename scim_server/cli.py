"""The ``scim-server`` command (DESIGN §8). Its output formats are a contract scripts rely on."""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from sqlalchemy import select

from scim_server.audit.chain import append
from scim_server.audit.events import EventDraft
from scim_server.audit.query import EXPORT_FORMATS
from scim_server.config import ConfigError, Settings
from scim_server.scim.errors import ScimError
from scim_server.scim.schema import default_registry
from scim_server.services import audit_log, tokens
from scim_server.store.db import Database
from scim_server.store.migrate import upgrade
from scim_server.store.models import Organization

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DEFAULT_PORT = 8000


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


def _database() -> Database:
    return Database(_settings().database_url)


def _scim_base_url(host: str, port: int) -> str:
    configured = _settings().base_url
    if configured:
        return configured.rstrip("/")
    shown = "localhost" if host in ("0.0.0.0", "127.0.0.1", "::") else host  # noqa: S104
    return f"http://{shown}:{port}/scim/v2"


def _fail(error: tokens.ServiceError) -> NoReturn:
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
        except tokens.ServiceError as error:
            _fail(error)
        return organization.id, organization.slug


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """SCIM 2.0 provisioning connector: configure organisations and connections, run the server."""


@main.command()
def init() -> None:
    """Create or upgrade the database schema at SCIM_DATABASE_URL."""
    database = _database()
    upgrade(database.engine)
    click.echo(f"database ready: {database.engine.url.render_as_string(hide_password=True)}")


@main.group()
def org() -> None:
    """Organisations (tenants)."""


@org.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="Display name of the organisation.")
def org_create(slug: str, name: str) -> None:
    """Create an organisation."""
    with _database().transaction(write=True) as session:
        try:
            created = tokens.create_organization(session, slug, name)
        except tokens.ServiceError as error:
            _fail(error)
        append(
            session,
            _cli_event(
                "org.create",
                created.id,
                resource_type="Organization",
                resource_id=created.slug,
                changes={"slug": [None, created.slug], "name": [None, created.name]},
            ),
        )
    click.echo(f"organisation {slug} created")


@main.group()
def connection() -> None:
    """IdP connections and their tokens."""


@connection.command("create")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--name", required=True, help="Name of the connection, e.g. 'Okta production'.")
@click.option("--idp", type=click.Choice(tokens.IDPS), default="generic", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Port shown in the URL.")
def connection_create(org_slug: str, name: str, idp: str, as_json: bool, port: int) -> None:
    """Create a connection and print the SCIM base URL and its token (shown once)."""
    with _database().transaction(write=True) as session:
        try:
            organization = tokens.get_organization(session, org_slug)
            created, token = tokens.create_connection(session, organization, name, idp)
        except tokens.ServiceError as error:
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
        return
    click.echo(f"connection {connection_id} created for organisation {org_slug}")
    click.echo(f"SCIM base URL: {base_url}")
    click.echo(f"Bearer token:  {token}")
    click.echo("The token is shown only this once; store it in your IdP now.")


@main.group()
def token() -> None:
    """Bearer tokens for the admin and audit surfaces."""


@token.command("create")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option(
    "--scope",
    type=click.Choice(["admin", "audit"]),
    required=True,
    help="audit: /audit/v1 only. SCIM tokens come with `connection create`.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"token": ...} on stdout.')
def token_create(org_slug: str, scope: str, as_json: bool) -> None:
    """Create a token (shown once)."""
    with _database().transaction(write=True) as session:
        try:
            organization = tokens.get_organization(session, org_slug)
            secret = tokens.issue_token(session, organization, scope)
        except tokens.ServiceError as error:
            _fail(error)
        append(
            session,
            _cli_event(
                "token.create",
                organization.id,
                resource_type="Token",
                resource_id=tokens.token_prefix(secret),
                token_prefix=tokens.token_prefix(secret),
                changes={"scope": [None, scope]},
            ),
        )
    if as_json:
        click.echo(json.dumps({"token": secret}))
        return
    click.echo(f"{scope} token for organisation {org_slug}: {secret}")
    click.echo("The token is shown only this once.")


@main.group()
def audit() -> None:
    """The provisioning log: query, export, verify, prune."""


@audit.command("verify")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def audit_verify(org_slug: str, as_json: bool) -> None:
    """Recompute the hash chain; exit 1 and name the first broken link if it does not hold."""
    database = _database()
    org_id, _ = _organization_id(database, org_slug)
    result = audit_log.verify_chain(database, org_id)
    if as_json:
        click.echo(json.dumps({"org": org_slug, **result.to_dict()}))
    elif result.broken is None:
        click.echo(
            f"audit log of {org_slug} verified: {result.events} events "
            f"(seq {result.first_seq}..{result.last_seq})"
        )
    else:
        click.echo(
            f"audit log of {org_slug} is BROKEN at seq {result.broken.seq}: {result.broken.reason}"
        )
    if result.broken is not None:
        sys.exit(1)


def _query_options(function: Any) -> Any:
    function = click.option("--filter", "filter_text", help='e.g. operation eq "user.delete"')(
        function
    )
    return click.option("--org", "org_slug", required=True, help="Organisation slug.")(function)


@audit.command("query")
@_query_options
@click.option("--count", default=100, show_default=True, help="Events per page.")
@click.option("--cursor", help="Continue after the page that printed this cursor.")
def audit_query(org_slug: str, filter_text: str | None, count: int, cursor: str | None) -> None:
    """Print matching events as JSON lines; the next page's cursor goes to stderr."""
    database = _database()
    org_id, _ = _organization_id(database, org_slug)
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
        raise click.ClickException(error.detail) from None
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
def audit_export(org_slug: str, filter_text: str | None, fmt: str, output: str | None) -> None:
    """Export matching events as CSV or JSON Lines, streamed."""
    database = _database()
    org_id, _ = _organization_id(database, org_slug)
    try:
        chunks = audit_log.export_events(database, default_registry(), org_id, filter_text, fmt)
    except ScimError as error:
        raise click.ClickException(error.detail) from None
    with click.open_file(output or "-", "w", encoding="utf-8") as handle:
        for chunk in chunks:
            handle.write(chunk)


@audit.command("prune")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option(
    "--before",
    required=True,
    help="Remove events recorded before this date or time (UTC), e.g. 2026-01-01.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def audit_prune(org_slug: str, before: str, as_json: bool) -> None:
    """Remove old events, leaving a checkpoint event so `audit verify` still passes."""
    try:
        moment = datetime.fromisoformat(before.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{before!r} is not a date (YYYY-MM-DD) or ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    database = _database()
    org_id, _ = _organization_id(database, org_slug)
    draft = _cli_event("audit.prune", org_id, detail=f"before {moment.isoformat()}")
    result = audit_log.prune_events(database, draft, moment)
    summary = {
        "org": org_slug,
        "pruned": result.pruned,
        "cut_seq": result.cut_seq,
        "checkpoint_seq": result.checkpoint_seq,
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(
            f"pruned {result.pruned} events of {org_slug} recorded before {moment.isoformat()}; "
            f"checkpoint is event {result.checkpoint_seq}"
        )


def _gunicorn_command(host: str, port: int, workers: int | None) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(DEPLOY / "gunicorn.conf.py"),
        "--bind",
        f"{host}:{port}",
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    return [*command, "scim_server.wsgi:app"]


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--workers", type=int, default=None, help="Worker processes (default: config).")
def serve(host: str, port: int, workers: int | None) -> None:
    """Run the server with gunicorn in production mode (deploy/gunicorn.conf.py)."""
    _settings()  # fail early on bad configuration
    command = _gunicorn_command(host, port, workers)
    sys.stdout.flush()
    os.execv(command[0], command)  # noqa: S606 - replaces this process with gunicorn


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Set up and print, but do not start the server.")
def demo(host: str, port: int, no_serve: bool) -> None:
    """Quick start: initialise the database, create a demo organisation and token, and serve."""
    database = _database()
    upgrade(database.engine)
    with database.transaction(write=True) as session:
        organization = session.scalar(select(Organization).where(Organization.slug == "demo"))
        if organization is None:
            organization = tokens.create_organization(session, "demo", "Demo organisation")
        created, token = tokens.create_connection(
            session, organization, "demo connection", "generic"
        )
        append(
            session,
            _cli_event(
                "connection.create",
                organization.id,
                resource_type="Connection",
                resource_id=created.id,
                token_prefix=tokens.token_prefix(token),
                changes={"name": [None, "demo connection"], "idp": [None, "generic"]},
            ),
        )
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
    sys.stdout.flush()
    os.execv(command[0], command)  # noqa: S606 - replaces this process with gunicorn


if __name__ == "__main__":  # pragma: no cover
    main()
