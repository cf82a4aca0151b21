"""Helpers for the provisioning-log tests (DESIGN §6): read events as an auditor would.

Events of an organisation are read through ``/audit/v1/events`` with an audit token. Only the
system chain (org 0: requests no organisation can be told about) has no auditor, so it is read
with SQL, by the request id the test chose.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.test import TestResponse

from scim_server.cli import main
from scim_server.services import tokens
from scim_server.store.db import Database

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SYSTEM_CHAIN = 0

#: Fields every event carries, as ``/audit/v1/events`` names them.
EVENT_FIELDS = {
    "orgId",
    "seq",
    "time",
    "actorType",
    "actor",
    "tokenPrefix",
    "requestId",
    "clientIp",
    "userAgent",
    "operation",
    "outcome",
    "status",
    "scimType",
    "detail",
    "resourceType",
    "resourceId",
    "userName",
    "changes",
    "prevHash",
    "hash",
}

_addresses = itertools.count(1)


def client_address() -> str:
    """A client address no other test uses: the auth-failure throttle is per address and per app,
    and the app is shared by the whole session."""
    n = next(_addresses)
    return f"10.{uuid.uuid4().int % 200 + 20}.{n // 250}.{n % 250 + 1}"


def client_at(app: Flask, address: str) -> FlaskClient:
    """A test client whose requests come from ``address``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def request_id(label: str = "req") -> str:
    return f"{label}-{uuid.uuid4().hex[:16]}"


def issue_audit_token(database: Database, slug: str) -> str:
    with database.transaction(write=True) as session:
        org = tokens.get_organization(session, slug)
        return tokens.issue_token(session, org, "audit")


@dataclass
class Auditor:
    """An auditor of one organisation, reading its log through ``/audit/v1/events``."""

    client: FlaskClient
    token: str

    def get(self, **params: Any) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.token}"}
        headers.update(params.pop("headers", {}))
        return self.client.get("/audit/v1/events", headers=headers, query_string=params)

    def page(self, **params: Any) -> dict[str, Any]:
        response = self.get(**params)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "application/scim+json"
        body: dict[str, Any] = response.get_json()
        return body

    def events(self, filter: str | None = None, count: int = 200) -> list[dict[str, Any]]:
        """Every event matching ``filter``, following cursors to the end."""
        params: dict[str, Any] = {"count": count}
        if filter:
            params["filter"] = filter
        found: list[dict[str, Any]] = []
        while True:
            body = self.page(**params)
            found.extend(body["Resources"])
            if "nextCursor" not in body:
                return found
            params["cursor"] = body["nextCursor"]

    def one(self, rid: str) -> dict[str, Any]:
        """The single event of the request with id ``rid`` (asserting there is exactly one)."""
        found = self.events(f'requestId eq "{rid}"')
        assert len(found) == 1, found
        return found[0]


def auditor_for(app: Flask, database: Database, slug: str) -> Auditor:
    return Auditor(app.test_client(), issue_audit_token(database, slug))


def system_events(database: Database, rid: str) -> list[dict[str, Any]]:
    """Events of the system chain recorded for request ``rid``."""
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT org_id, seq, actor_type, actor, token_prefix, request_id, client_ip, "
                "operation, outcome, status, scim_type, detail FROM audit_events "
                "WHERE org_id = :org AND request_id = :rid ORDER BY seq"
            ),
            {"org": SYSTEM_CHAIN, "rid": rid},
        ).mappings()
        return [dict(row) for row in rows]


def events_from(database: Database, client_ip: str) -> list[dict[str, Any]]:
    """Every event, in any chain, recorded for requests from ``client_ip``."""
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT org_id, seq, operation, status, detail, token_prefix FROM audit_events "
                "WHERE client_ip = :ip ORDER BY pk"
            ),
            {"ip": client_ip},
        ).mappings()
        return [dict(row) for row in rows]


def all_event_rows_as_text(database: Database) -> list[str]:
    """Every stored event, every column, as the text a careless dump would show."""
    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM audit_events")).all()
    return [" | ".join("" if value is None else str(value) for value in row) for row in rows]


#: Keys an operator would make with ``openssl rand -hex 32``, for SCIM_AUDIT_SIGNING_KEY.
SIGNING_KEY = "5d0c8e3b9a7f41e2b6c4d8a1f0e9b7c35a2d4e6f8091b3c5d7e9f1a2b4c6d8e0"
NEW_SIGNING_KEY = "a81f3c5e7d9b0a2c4e6f8d1b3a5c7e9f0d2b4a6c8e1f3d5b7a9c0e2f4d6b8a1c"


def run_cli(database: Database, *args: str, signing_key: str | None = None) -> Result:
    """``scim-server ARGS`` against the test database (stdout and stderr kept apart), with
    SCIM_AUDIT_SIGNING_KEY when ``signing_key`` is given."""
    env = {"SCIM_DATABASE_URL": database.url, "SCIM_AUDIT_SIGNING_KEY": signing_key}
    return CliRunner().invoke(main, list(args), env=env)


def prune_log(
    database: Database, slug: str, before: str, signing_key: str = SIGNING_KEY
) -> dict[str, Any]:
    """``audit prune --org SLUG --before BEFORE --json``, signed; its summary."""
    result = run_cli(
        database,
        "audit",
        "prune",
        "--org",
        slug,
        "--before",
        before,
        "--json",
        signing_key=signing_key,
    )
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def unique_slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@contextmanager
def database_fails_on(database: Database, marker: str, action: str = "INSERT") -> Iterator[None]:
    """A real database error, raised by the database itself, when a user attribute value equal
    to ``marker`` is inserted (or deleted). Only that value trips it, so the rest of the session,
    which shares the database, is unaffected; the trigger is dropped whatever happens."""
    name = f"audit_test_fail_{uuid.uuid4().hex[:8]}"
    row = "NEW" if action == "INSERT" else "OLD"
    assert "'" not in marker
    with database.engine.begin() as connection:
        if database.is_sqlite:
            connection.exec_driver_sql(
                f"CREATE TRIGGER {name} BEFORE {action} ON user_attribute_values "
                f"WHEN {row}.value = '{marker}' "
                "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
            )
        else:
            connection.exec_driver_sql(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF {row}.value = '{marker}' THEN RAISE EXCEPTION 'forced failure'; END IF; "
                f"RETURN {row}; END $$"
            )
            connection.exec_driver_sql(
                f"CREATE TRIGGER {name} BEFORE {action} ON user_attribute_values "
                f"FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
    try:
        yield
    finally:
        with database.engine.begin() as connection:
            if database.is_sqlite:
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
            else:
                connection.exec_driver_sql(
                    f"DROP TRIGGER IF EXISTS {name} ON user_attribute_values"
                )
                connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")
