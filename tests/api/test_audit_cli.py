"""The provisioning log from the command line (DESIGN §6, §8; issue #3 item 6): tokens for
auditors, queries and exports scripts can parse, and every CLI action that changes data is
itself an event attributed to the operating-system user who ran it."""

from __future__ import annotations

import csv
import getpass
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import make_url

from scim_server.cli import main
from scim_server.services import tokens
from scim_server.store.db import Database
from tests.api.audit_support import (
    SIGNING_KEY,
    Auditor,
    all_event_rows_as_text,
    client_address,
    request_id,
    run_cli,
    unique_slug,
)
from tests.conftest import Api, Tenant, make_tenant


def _cli_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _audit_token(database: Database, slug: str) -> str:
    result = run_cli(database, "token", "create", "--org", slug, "--scope", "audit", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # exactly one JSON object on stdout, nothing else
    assert payload["expires"] is None
    assert set(payload) == {"token", "expires"}
    token: str = payload["token"]
    return token


@pytest.fixture
def tenant_with_history(app: Flask, database: Database) -> Tenant:
    tenant = make_tenant(database)
    api = Api(app.test_client(), tenant)
    smith = api.create_user("ann.smith@example.com")
    api.create_user("bob@example.com")
    assert api.delete(f"/Users/{smith['id']}").status_code == 204
    return tenant


def test_token_create_prints_one_json_object_whose_token_reads_the_log(
    app: Flask, database: Database, tenant_with_history: Tenant
) -> None:
    token = _audit_token(database, tenant_with_history.slug)
    auditor = Auditor(app.test_client(), token)
    events = auditor.events()
    assert [event["operation"] for event in events] == [
        "user.create",
        "user.create",
        "user.delete",
        "token.create",
    ]
    created = events[-1]
    assert (created["actorType"], created["actor"]) == ("cli", _cli_user())
    assert created["tokenPrefix"] == tokens.token_prefix(token)
    assert (created["resourceType"], created["resourceId"]) == ("Token", tokens.token_prefix(token))
    assert created["changes"] == {"scope": [None, "audit"]}
    assert not any(token in row for row in all_event_rows_as_text(database))
    # reading the log is its duty, provisioning is not
    scim = app.test_client().get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
    assert scim.status_code == 403


def test_every_cli_action_that_changes_data_is_an_event(app: Flask, database: Database) -> None:
    slug = unique_slug("cli-audit")
    assert run_cli(database, "org", "create", slug, "--name", "CLI Audit").exit_code == 0
    connection = run_cli(
        database, "connection", "create", "--org", slug, "--name", "Okta", "--idp", "okta", "--json"
    )
    assert connection.exit_code == 0, connection.output
    created = json.loads(connection.stdout)
    token = _audit_token(database, slug)
    pruned = run_cli(
        database, "audit", "prune", "--org", slug, "--before", "2000-01-01", signing_key=SIGNING_KEY
    )
    assert pruned.exit_code == 0, pruned.output
    signed = run_cli(database, "audit", "checkpoint", "--org", slug, signing_key=SIGNING_KEY)
    assert signed.exit_code == 0, signed.output

    events = Auditor(app.test_client(), token).events()
    assert [(e["seq"], e["operation"]) for e in events] == [
        (1, "org.create"),
        (2, "connection.create"),
        (3, "token.create"),
        (4, "audit.prune"),
        (5, "audit.checkpoint"),
    ]
    assert all(
        (e["actorType"], e["actor"], e["outcome"]) == ("cli", _cli_user(), "success")
        for e in events
    )
    org, conn, _, prune, _ = events
    assert (org["resourceType"], org["resourceId"]) == ("Organization", slug)
    assert org["changes"] == {"slug": [None, slug], "name": [None, "CLI Audit"]}
    assert (conn["resourceType"], conn["resourceId"]) == ("Connection", created["connection_id"])
    assert conn["tokenPrefix"] == tokens.token_prefix(created["token"])
    assert conn["changes"] == {"name": [None, "Okta"], "idp": [None, "okta"]}
    assert prune["changes"]["pruned"] == 0
    rows = all_event_rows_as_text(database)
    assert not any(created["token"] in row or token in row for row in rows)

    # the connection's token provisions, and its requests join the same chain
    response = app.test_client().get(
        "/scim/v2/Users", headers={"Authorization": f"Bearer {created['token']}"}
    )
    assert response.status_code == 200
    later = Auditor(app.test_client(), token).events('operation eq "user.list"')
    assert [(e["seq"], e["actor"]) for e in later] == [(7, created["connection_id"])]


def test_a_refused_cli_action_writes_no_event(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    token = _audit_token(database, tenant.slug)
    again = run_cli(database, "org", "create", tenant.slug, "--name", "Twice")
    assert again.exit_code == 1
    assert "already exists" in again.output
    bad_scope = run_cli(database, "token", "create", "--org", tenant.slug, "--scope", "scim")
    assert bad_scope.exit_code == 2
    events = Auditor(app.test_client(), token).events()
    assert [e["operation"] for e in events] == ["token.create"]
    assert not any("Twice" in row for row in all_event_rows_as_text(database))


def test_audit_query_prints_json_lines(database: Database, tenant_with_history: Tenant) -> None:
    slug = tenant_with_history.slug
    result = run_cli(database, "audit", "query", "--org", slug, "--filter", 'userName co "smith"')
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert [(e["operation"], e["userName"]) for e in events] == [
        ("user.create", "ann.smith@example.com"),
        ("user.delete", "ann.smith@example.com"),
    ]
    assert result.stderr == ""  # no further page


def test_audit_query_pages_with_a_cursor_on_stderr(
    database: Database, tenant_with_history: Tenant
) -> None:
    slug = tenant_with_history.slug
    first = run_cli(database, "audit", "query", "--org", slug, "--count", "2")
    assert first.exit_code == 0, first.output
    assert [json.loads(line)["seq"] for line in first.stdout.splitlines()] == [1, 2]
    assert first.stderr.startswith("next cursor: ")
    cursor = first.stderr.split(": ", 1)[1].strip()
    rest = run_cli(database, "audit", "query", "--org", slug, "--count", "2", "--cursor", cursor)
    assert rest.exit_code == 0, rest.output
    page = [json.loads(line) for line in rest.stdout.splitlines()]
    # the walk ends where the log stood at its first page: not at the first page's own event
    assert [(event["seq"], event["operation"]) for event in page] == [(3, "user.delete")]
    assert rest.stderr == ""


@pytest.mark.parametrize("command", ["query", "export"])
def test_a_bad_filter_is_a_clean_cli_error(
    database: Database, tenant_with_history: Tenant, command: str
) -> None:
    for bad in ("operation eq", 'nosuch eq "x"'):
        result = run_cli(
            database, "audit", command, "--org", tenant_with_history.slug, "--filter", bad
        )
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Error:" in result.stderr
        assert "Traceback" not in result.output


def test_audit_export_writes_jsonl_to_a_file(
    database: Database, tenant_with_history: Tenant, tmp_path: Path
) -> None:
    target = tmp_path / "evidence.jsonl"
    result = run_cli(
        database,
        "audit",
        "export",
        "--org",
        tenant_with_history.slug,
        "--format",
        "jsonl",
        "--filter",
        'operation eq "user.create"',
        "--output",
        str(target),
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    events = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [(e["seq"], e["userName"]) for e in events] == [
        (1, "ann.smith@example.com"),
        (2, "bob@example.com"),
    ]
    assert all(e["changes"]["userName"][0] is None for e in events)


def test_audit_export_csv_to_stdout(database: Database, tenant_with_history: Tenant) -> None:
    result = run_cli(database, "audit", "export", "--org", tenant_with_history.slug)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["operation"] for row in rows] == ["user.create", "user.create", "user.delete"]
    assert json.loads(rows[2]["changes"])["userName"] == ["ann.smith@example.com", None]


def test_audit_commands_name_an_unknown_organisation(database: Database) -> None:
    for command in ("verify", "query", "export"):
        result = run_cli(database, "audit", command, "--org", "no-such-org")
        assert result.exit_code == 1
        assert "no organisation 'no-such-org'" in result.output


def _unknown_token_request(app: Flask) -> str:
    """A request with a well-formed token nobody issued: its event belongs to no organisation.
    Returns its request id."""
    rid = request_id("stranger")
    response = app.test_client().get(
        "/scim/v2/Users",
        headers={"Authorization": f"Bearer {tokens.new_token()}", "X-Request-Id": rid},
        environ_base={"REMOTE_ADDR": client_address()},
    )
    assert response.status_code == 401
    return rid


def test_the_system_log_answers_query_export_and_verify(app: Flask, database: Database) -> None:
    """An admin whose IdP's test connection gets a 401 for an unknown token finds the event in
    the system log (README, troubleshooting), not in any organisation's."""
    rid = _unknown_token_request(app)
    by_rid = f'requestId eq "{rid}"'

    result = run_cli(database, "audit", "query", "--system", "--filter", by_rid)
    assert result.exit_code == 0, result.output
    [event] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (event["operation"], event["status"], event["outcome"]) == (
        "auth.failed",
        401,
        "refused",
    )

    result = run_cli(
        database, "audit", "export", "--system", "--filter", by_rid, "--format", "jsonl"
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["requestId"] for line in result.stdout.splitlines()] == [rid]

    result = run_cli(database, "audit", "verify", "--system", "--json")
    assert result.exit_code == 0, result.output
    verified = json.loads(result.stdout)
    assert verified["org"] is None
    assert verified["broken"] is None
    assert verified["events"] >= 1


def test_the_system_log_can_be_pruned_and_still_verifies(app: Flask, database: Database) -> None:
    """Requests without a known token are never attributable to an organisation, so the system
    log grows with the internet's noise: an operator prunes it like any other."""
    rid = _unknown_token_request(app)
    result = run_cli(
        database,
        "audit",
        "prune",
        "--system",
        "--before",
        "2999-01-01",
        "--json",
        signing_key=SIGNING_KEY,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["org"] is None
    assert summary["pruned"] >= 1
    gone = run_cli(database, "audit", "query", "--system", "--filter", f'requestId eq "{rid}"')
    assert gone.exit_code == 0
    assert gone.stdout == ""
    result = run_cli(database, "audit", "verify", "--system")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("the system log verified")


def test_audit_commands_take_one_log(database: Database, tenant_with_history: Tenant) -> None:
    both = ("--org", tenant_with_history.slug, "--system")
    for command in ("verify", "query", "export"):
        for options in ((), both):
            result = run_cli(database, "audit", command, *options)
            assert result.exit_code == 2, (command, options, result.output)
            assert "give either --org SLUG or --system" in result.output


def test_reading_the_log_from_the_cli_is_itself_an_event(
    database: Database, tenant_with_history: Tenant, tmp_path: Path
) -> None:
    """DESIGN §6: every audit request is an event, the auditor's CLI included (as the audit
    API's queries and exports are): who read, exported or verified which part of the log, and
    when. Like ``users export``, what a read returned is recorded as plain values."""
    slug = tenant_with_history.slug
    by_user = 'userName co "smith"'
    assert run_cli(database, "audit", "query", "--org", slug, "--filter", by_user).exit_code == 0
    refused = run_cli(database, "audit", "query", "--org", slug, "--filter", "operation eq")
    assert refused.exit_code == 1
    target = tmp_path / "evidence.csv"
    exported = run_cli(database, "audit", "export", "--org", slug, "--output", str(target))
    assert exported.exit_code == 0, exported.output
    assert run_cli(database, "audit", "verify", "--org", slug).exit_code == 0

    result = run_cli(database, "audit", "query", "--org", slug, "--filter", "seq gt 3")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["operation"], e["status"], e["outcome"]) for e in events] == [
        ("audit.query", 200, "success"),
        ("audit.query", 400, "refused"),
        ("audit.export", 200, "success"),
        ("audit.verify", 200, "success"),
    ]
    assert {(e["actorType"], e["actor"], e["resourceType"]) for e in events} == {
        ("cli", _cli_user(), "AuditLog")
    }
    query, bad, export, verify = events
    assert query["detail"] == f"filter: {by_user}"
    assert query["changes"] == {"events": 2}
    assert bad["scimType"] == "invalidFilter"
    assert export["changes"] == {"format": "csv", "file": str(target), "complete": True}
    assert verify["changes"] == {
        "ok": True,
        "events": 6,
        "brokenAt": None,
        "signaturesChecked": False,
        "signedCheckpoint": None,
    }
    assert "events 1..6" in verify["detail"]
    # the events of reads keep the chain whole
    again = run_cli(database, "audit", "verify", "--org", slug, "--json")
    assert json.loads(again.stdout)["broken"] is None


def test_an_admin_or_audit_token_can_be_made_to_expire(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    """DESIGN §7: tokens have an optional expiry. An auditor engaged for a quarter gets a token
    that ends by itself; past its end it is refused like a revoked one."""

    def create(scope: str, expires: str, *more: str) -> Any:
        return run_cli(
            database, "token", "create", "--org", tenant.slug, "--scope", scope,
            "--expires", expires, *more,
        )  # fmt: skip

    created = create("audit", "90d", "--json")
    assert created.exit_code == 0, created.output
    payload = json.loads(created.stdout)
    expires = datetime.fromisoformat(payload["expires"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=1)
    prefix = tokens.token_prefix(payload["token"])
    listed = run_cli(database, "token", "list", "--org", tenant.slug, "--json")
    [view] = [view for view in json.loads(listed.stdout) if view["prefix"] == prefix]
    assert view["expires"] == payload["expires"]
    event = Auditor(app.test_client(), payload["token"]).events('operation eq "token.create"')[-1]
    assert event["changes"] == {"scope": [None, "audit"], "expires": [None, payload["expires"]]}

    token = json.loads(create("admin", "1h", "--json").stdout)["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/admin/v1/organization", headers=headers).status_code == 200
    # an hour later (moved back in the store rather than waited for)
    with database.engine.begin() as connection:
        connection.execute(
            text("UPDATE api_tokens SET expires_at = :t WHERE prefix = :p"),
            {"t": datetime.now(UTC).replace(tzinfo=None), "p": tokens.token_prefix(token)},
        )
    assert app.test_client().get("/admin/v1/organization", headers=headers).status_code == 401

    for wrong, says in (("0", "more than 0"), ("400d", "366 days"), ("soon", "not a duration")):
        refused = create("audit", wrong)
        assert refused.exit_code != 0, wrong
        assert says in refused.output, refused.output


def _read_only(database: Database) -> str:
    """The same database through a connection that cannot write (an auditor's replica or
    read-only role)."""
    url = make_url(database.url)
    if database.is_sqlite:
        return f"sqlite:///file:{url.database}?mode=ro&uri=true"
    options = {"options": "-c default_transaction_read_only=on"}
    return url.update_query_dict(options).render_as_string(hide_password=False)


def test_an_auditor_on_a_read_only_connection_still_reads_with_a_warning(
    database: Database, tenant_with_history: Tenant, tmp_path: Path
) -> None:
    slug = tenant_with_history.slug
    environment = {"SCIM_DATABASE_URL": _read_only(database)}
    stored = _events_of(database, tenant_with_history.org_id)
    target = tmp_path / "evidence.jsonl"
    commands = [
        ("query", "--org", slug),
        ("export", "--org", slug, "--format", "jsonl", "--output", str(target)),
        ("verify", "--org", slug),
    ]
    for command in commands:
        result = CliRunner().invoke(main, ["audit", *command], env=environment)
        assert result.exit_code == 0, (command, result.output)
        assert "warning: the audit." in result.stderr
        assert "event was not recorded" in result.stderr
    assert len(target.read_text(encoding="utf-8").splitlines()) == stored
    assert _events_of(database, tenant_with_history.org_id) == stored  # nothing was written


def _events_of(database: Database, org_id: int) -> int:
    with database.engine.connect() as connection:
        found = connection.execute(
            text("SELECT count(*) FROM audit_events WHERE org_id = :o"), {"o": org_id}
        )
        return int(found.scalar() or 0)
