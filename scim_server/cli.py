"""The ``scim-server`` command (DESIGN §8). Its output formats are a contract scripts rely on."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from sqlalchemy import select

from scim_server.config import ConfigError, Settings
from scim_server.services import tokens
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


def _fail(error: tokens.ServiceError) -> None:
    raise click.ClickException(str(error))


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
        click.echo(f"organisation {created.slug} created")


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
        _, token = tokens.create_connection(session, organization, "demo connection", "generic")
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
