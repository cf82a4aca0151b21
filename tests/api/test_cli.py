"""The CLI contract (issue #2): later automation relies on these exact outputs."""

from __future__ import annotations

import json

from click.testing import CliRunner
from flask import Flask

from scim_server.cli import main
from scim_server.store.db import Database


def _run(database: Database, *args: str) -> tuple[int, str]:
    runner = CliRunner()
    result = runner.invoke(main, list(args), env={"SCIM_DATABASE_URL": database.url})
    return result.exit_code, result.output


def test_init_org_and_connection_then_the_token_works(database: Database, app: Flask) -> None:
    code, out = _run(database, "init")
    assert code == 0, out
    code, out = _run(database, "org", "create", "cli-acme", "--name", "Acme Corp")
    assert code == 0, out
    code, out = _run(database, "org", "create", "cli-acme", "--name", "Again")
    assert code != 0
    assert "already exists" in out

    code, out = _run(
        database,
        "connection",
        "create",
        "--org",
        "cli-acme",
        "--name",
        "Okta",
        "--idp",
        "okta",
        "--json",
    )
    assert code == 0, out
    payload = json.loads(out)  # exactly one JSON object on stdout
    assert set(payload) == {"connection_id", "base_url", "token"}
    assert payload["base_url"].endswith("/scim/v2")
    response = app.test_client().get(
        "/scim/v2/Users", headers={"Authorization": f"Bearer {payload['token']}"}
    )
    assert response.status_code == 200
    assert response.get_json()["totalResults"] == 0


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
