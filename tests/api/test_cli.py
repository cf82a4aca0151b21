"""The CLI contract (issue #2): later automation relies on these exact outputs."""

from __future__ import annotations

import itertools
import json
import secrets

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from scim_server.cli import LOCAL_BASE_URL_WARNING, main
from scim_server.services.tokens import token_prefix
from scim_server.store.db import Database
from tests.conftest import POSTGRES_URL


def _run(database: Database, *args: str) -> tuple[int, str]:
    runner = CliRunner()
    result = runner.invoke(main, list(args), env={"SCIM_DATABASE_URL": database.url})
    return result.exit_code, result.output


def test_init_warns_when_postgresql_will_not_keep_statistics(database: Database) -> None:
    """Without autovacuum the tables are never analyzed and GETs read the whole organisation;
    ``init`` is where an operator sees it (this machine's PostgreSQL has autovacuum off)."""
    result = CliRunner().invoke(main, ["init"], env={"SCIM_DATABASE_URL": database.url})
    assert result.exit_code == 0, result.output
    assert "database ready" in result.stdout
    if database.is_sqlite:
        assert result.stderr == ""
        return
    with database.engine.connect() as connection:
        autovacuum, track_counts = connection.execute(
            text("SELECT current_setting('autovacuum'), current_setting('track_counts')")
        ).one()
    if autovacuum == "on" and track_counts == "on":
        assert result.stderr == ""
    else:
        assert result.stderr.startswith("warning: PostgreSQL has ")
        for name, value in (("autovacuum", autovacuum), ("track_counts", track_counts)):
            assert (name in result.stderr) == (value != "on")
        assert "ANALYZE" in result.stderr
        assert "warning" not in result.stdout  # scripts reading init's stdout see no change


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_init_warns_when_postgresql_folds_only_ascii_letters(database: Database) -> None:
    """Under LC_CTYPE C, PostgreSQL's lower() leaves "Ä" alone: "ÄNNE@x" and "änne@x" would be
    two users. ``init`` says so; the database this suite uses (a UTF-8 locale) gets no warning."""
    quiet = CliRunner().invoke(main, ["init"], env={"SCIM_DATABASE_URL": database.url})
    assert "folds only ASCII" not in quiet.stderr
    admin = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    name = f"scim_ctype_c_{secrets.token_hex(3)}"
    with admin.connect() as connection:
        connection.execute(
            text(f"CREATE DATABASE \"{name}\" LC_CTYPE 'C' LC_COLLATE 'C' TEMPLATE template0")
        )
    try:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        result = CliRunner().invoke(main, ["init"], env={"SCIM_DATABASE_URL": url})
        assert result.exit_code == 0, result.output
        assert "database ready" in result.stdout
        assert "folds only ASCII letters (LC_CTYPE C)" in result.stderr
        assert "C.UTF-8" in result.stderr
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_init_org_and_connection_then_the_token_works(database: Database, app: Flask) -> None:
    code, out = _run(database, "init")
    assert code == 0, out
    code, out = _run(database, "org", "create", "cli-acme", "--name", "Acme Corp")
    assert code == 0, out
    code, out = _run(database, "org", "create", "cli-acme", "--name", "Again")
    assert code != 0
    assert "already exists" in out

    result = CliRunner().invoke(
        main,
        ["connection", "create", "--org", "cli-acme", "--name", "Okta", "--idp", "okta", "--json"],
        env={"SCIM_DATABASE_URL": database.url},
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert set(payload) == {"connection_id", "base_url", "token"}
    assert payload["base_url"].endswith("/scim/v2")
    response = app.test_client().get(
        "/scim/v2/Users", headers={"Authorization": f"Bearer {payload['token']}"}
    )
    assert response.status_code == 200
    assert response.get_json()["totalResults"] == 0


def test_a_connection_name_is_unique_and_visible(database: Database) -> None:
    """Commands and the admin API name connections by name: a second 'Okta' (in any case) made
    them ambiguous, and a name of only a right-to-left override showed as nothing."""
    slug = f"names-{secrets.token_hex(3)}"
    assert _run(database, "org", "create", slug, "--name", "Names")[0] == 0
    created = _run(database, "connection", "create", "--org", slug, "--name", " Okta ", "--json")
    assert created[0] == 0, created[1]
    for name, said in (
        ("okta", "a connection named 'Okta' exists already"),
        ("\u202e", "needs a visible character"),
        ("   ", "1 to 200 characters"),
    ):
        code, out = _run(database, "connection", "create", "--org", slug, "--name", name)
        assert code == 1, out
        assert said in out
    code, out = _run(database, "connection", "list", "--org", slug)
    assert code == 0
    assert out.count("Okta") == 1


def test_connection_for_unknown_org_fails_cleanly(database: Database) -> None:
    code, out = _run(database, "connection", "create", "--org", "no-such-org", "--name", "x")
    assert code != 0
    assert "no organisation 'no-such-org'" in out


def test_human_output_shows_url_and_token_once(database: Database) -> None:
    _run(database, "org", "create", "cli-human", "--name", "Human")
    code, out = _run(
        database, "connection", "create", "--org", "cli-human", "--name", "Entra", "--idp", "entra"
    )
    assert code == 0
    assert "SCIM base URL: http://localhost:8000/scim/v2" in out
    assert "Bearer token:  scim_" in out


def test_printing_a_local_base_url_warns_on_stderr_unless_scim_base_url_is_set(
    database: Database,
) -> None:
    """Without SCIM_BASE_URL where the CLI runs, `connection create` (and rotate, oauth) print
    this machine's URL, which an IdP cannot reach: one warning line on stderr says so, and
    stdout stays what scripts parse (`--json`: one object)."""
    env = {"SCIM_DATABASE_URL": database.url, "SCIM_BASE_URL": None}
    runner = CliRunner()
    assert runner.invoke(main, ["org", "create", "cli-url"], env=env).exit_code == 0
    public = "https://scim.example.com/scim/v2"
    commands = [
        ["connection", "create", "--org", "cli-url", "--name"],  # + a new name each time
        ["connection", "rotate", "--org", "cli-url", "Okta 1"],
        ["connection", "oauth", "--org", "cli-url", "Okta 1"],
    ]
    names = (f"Okta {n}" for n in itertools.count(1))

    def arguments(command: list[str], as_json: bool) -> list[str]:
        named = [*command, next(names)] if command[1] == "create" else command
        return [*named, "--port", "8001", *(["--json"] if as_json else [])]

    for command in commands:
        for as_json in (False, True):
            local = runner.invoke(main, arguments(command, as_json), env=env)
            assert local.exit_code == 0, local.output
            assert local.stderr.splitlines() == [LOCAL_BASE_URL_WARNING], command
            assert "SCIM_BASE_URL is not set" not in local.stdout
            configured = runner.invoke(
                main, arguments(command, as_json), env={**env, "SCIM_BASE_URL": public}
            )
            assert configured.exit_code == 0, configured.output
            assert configured.stderr == "", command
            if as_json:
                assert json.loads(local.stdout)["base_url"] == "http://localhost:8001/scim/v2"
                assert json.loads(configured.stdout)["base_url"] == public
            else:
                assert "http://localhost:8001/scim/v2" in local.stdout
                assert public in configured.stdout


def test_demo_sets_up_an_audited_organisation_whose_printed_token_works(
    database: Database, app: Flask
) -> None:
    """The README's first quick-start command (`make run` runs `scim-server demo`): each run
    prints a new working token of the same connection, so what one run's token created the
    next run's token may change; the organisation, the connection and each token are in the
    log."""
    printed = []
    for _ in range(2):
        code, out = _run(database, "demo", "--no-serve")
        assert code == 0, out
        assert "SCIM_BASE_URL is not set" not in out  # it serves here: the local URL is right
        [token] = [line.split()[-1] for line in out.splitlines() if "Bearer token:" in line]
        printed.append(token)
    assert printed[0] != printed[1]
    client = app.test_client()
    headers = [
        {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        for token in printed
    ]
    for each in headers:  # a second run does not end the first run's token
        response = client.get("/scim/v2/Users", headers=each)
        assert response.status_code == 200, response.get_json()
    created = client.post(
        "/scim/v2/Users",
        headers=headers[0],
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bjensen@example.com",
        },
    )
    assert created.status_code == 201, created.get_json()
    patched = client.patch(
        f"/scim/v2/Users/{created.get_json()['id']}",
        headers=headers[1],
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"displayName": "Barbara Jensen"}}],
        },
    )
    assert patched.status_code == 200, patched.get_json()  # not 409: one owner for both
    assert patched.get_json()["displayName"] == "Barbara Jensen"
    code, out = _run(database, "audit", "query", "--org", "demo", "--filter", 'actorType eq "cli"')
    assert code == 0, out
    events = [json.loads(line) for line in out.splitlines()]
    assert [event["operation"] for event in events] == [
        "org.create",
        "connection.create",
        "token.create",
    ]
    prefixes = [token_prefix(token) for token in printed]
    assert [event["tokenPrefix"] for event in events[1:]] == prefixes
    code, out = _run(database, "connection", "list", "--org", "demo", "--json")
    assert code == 0, out
    [connection] = json.loads(out)
    assert connection["name"] == "demo connection"
    assert events[2]["changes"]["connection"] == [None, connection["id"]]
    code, out = _run(database, "audit", "verify", "--org", "demo")
    assert code == 0, out


def test_a_database_it_cannot_reach_is_one_line_without_the_password() -> None:
    """An operator's typo in SCIM_DATABASE_URL, or the database down: one line naming the
    variable and the driver's reason, not a driver's traceback, and never the URL's password."""
    password = "s3cret-db-password"
    unreachable = f"postgresql+psycopg://scim:{password}@127.0.0.1:1/scim"  # nothing listens
    result = CliRunner().invoke(
        main, ["org", "show", "acme"], env={"SCIM_DATABASE_URL": unreachable}
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: the database (SCIM_DATABASE_URL) cannot be used: ")
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert password not in result.output
