"""Rotating and revoking tokens (DESIGN §7): an IT admin replaces a connection's secret without a
provisioning outage, and stops a leaked one at once. Every change is audited, never the secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask

from scim_server.store.db import Database
from tests.api.audit_support import (
    all_event_rows_as_text,
    auditor_for,
    client_address,
    client_at,
    run_cli,
)
from tests.conftest import Api, Tenant, make_tenant


def _works(app: Flask, token: str) -> int:
    # from an address of its own: a refusal's event is then never one the per-address
    # auth-failure throttle of the session's app leaves out
    response = client_at(app, client_address()).get(
        "/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code


def _cli_json(database: Database, *args: str) -> dict[str, Any]:
    result = run_cli(database, *args, "--json")
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def test_rotation_with_overlap_keeps_both_tokens_working_until_the_old_one_ends(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    rotated = _cli_json(
        database, "connection", "rotate", "--org", tenant.slug, tenant.connection_id
    )
    assert rotated["connection_id"] == tenant.connection_id
    assert rotated["token"] != tenant.token
    (old,) = rotated["previous_tokens"]
    assert tenant.token.startswith(old["prefix"])
    assert old["revoked"] is False
    ends = datetime.fromisoformat(old["expires"].replace("Z", "+00:00"))
    assert timedelta(hours=23, minutes=59) < ends - datetime.now(UTC) <= timedelta(hours=24)
    assert _works(app, tenant.token) == 200  # the IdP keeps working during the overlap
    assert _works(app, rotated["token"]) == 200

    events = auditor_for(app, database, tenant.slug).events('operation eq "connection.rotate"')
    assert len(events) == 1
    assert events[0]["resourceId"] == tenant.connection_id
    text = "\n".join(all_event_rows_as_text(database))
    assert rotated["token"] not in text
    assert tenant.token not in text


def test_rotation_without_overlap_ends_the_old_token_at_once(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    api = Api(app.test_client(), tenant)
    user = api.create_user("owned@example.com")
    rotated = _cli_json(
        database,
        "connection",
        "rotate",
        "--org",
        tenant.slug,
        tenant.connection_id,
        "--overlap",
        "0",
    )
    assert rotated["previous_tokens"][0]["revoked"] is True
    assert _works(app, tenant.token) == 401
    # the same connection, so it still owns what the old token created
    fresh = Api(
        app.test_client(),
        Tenant(tenant.slug, tenant.org_id, rotated["token"], tenant.connection_id),
    )
    assert fresh.delete(f"/Users/{user['id']}").status_code == 204


def test_revoking_a_connection_stops_its_tokens_and_a_rotation_gives_it_a_new_one(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    overlapping = _cli_json(
        database, "connection", "rotate", "--org", tenant.slug, tenant.connection_id
    )
    revoked = _cli_json(
        database, "connection", "revoke", "--org", tenant.slug, tenant.connection_id
    )
    assert sorted(change["prefix"] for change in revoked["revoked"]) == sorted(
        token[:11] for token in (tenant.token, overlapping["token"])
    )
    assert _works(app, tenant.token) == 401
    assert _works(app, overlapping["token"]) == 401
    again = _cli_json(database, "connection", "rotate", "--org", tenant.slug, tenant.connection_id)
    assert again["previous_tokens"] == []  # nothing left alive to end
    assert _works(app, again["token"]) == 200
    auditor = auditor_for(app, database, tenant.slug)
    assert len(auditor.events('operation eq "connection.revoke"')) == 1
    # the refused requests are in the organisation's log, under the revoked tokens' prefixes
    refused = auditor.events('operation eq "auth.failed"')
    assert {event["tokenPrefix"] for event in refused} >= {tenant.token[:11]}


def test_one_token_is_revoked_by_its_prefix_and_only_in_its_organisation(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    auditor = auditor_for(app, database, tenant.slug)
    prefix = auditor.token[:11]
    other = make_tenant(database)
    refused = run_cli(database, "token", "revoke", "--org", other.slug, prefix)
    assert refused.exit_code != 0
    assert "no live token with prefix" in refused.output
    assert auditor.get().status_code == 200

    pasted = run_cli(database, "token", "revoke", "--org", other.slug, auditor.token)
    assert pasted.exit_code != 0
    assert auditor.token not in pasted.output  # a pasted secret is never echoed back

    # anything else pasted by mistake (a password) is not quoted at all, not even its start
    mistake = run_cli(database, "token", "revoke", "--org", other.slug, "Hunter2-Correct-Horse")
    assert mistake.exit_code != 0
    assert "Hunter2" not in mistake.output
    assert "not the start of a token" in mistake.output
    assert prefix in pasted.output
    result = _cli_json(database, "token", "revoke", "--org", tenant.slug, auditor.token)
    assert result == {
        "prefix": prefix,
        "scope": "audit",
        "revoked": True,
        "expires": None,
        "issuedTokens": [],  # access tokens an OAuth client secret ended with it: none here
    }
    assert auditor.get().status_code == 401
    assert _works(app, tenant.token) == 200  # the connection's token is another token
    again = run_cli(database, "token", "revoke", "--org", tenant.slug, prefix)
    assert again.exit_code != 0  # already revoked: nothing live by that prefix


def test_overlaps_that_make_no_sense_are_refused(database: Database, tenant: Tenant) -> None:
    for overlap, message in (
        ("soon", "is not a duration"),
        ("31d", "--overlap: '31d' is longer than the 30 days allowed"),
    ):
        result = run_cli(
            database,
            "connection",
            "rotate",
            "--org",
            tenant.slug,
            tenant.connection_id,
            "--overlap",
            overlap,
        )
        assert result.exit_code != 0
        assert message in result.output
    unknown = run_cli(database, "connection", "rotate", "--org", tenant.slug, "no-such")
    assert unknown.exit_code != 0
    assert "no connection 'no-such'" in unknown.output


def test_token_list_shows_every_live_credential_by_prefix_only(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    oauth = _cli_json(database, "connection", "oauth", "--org", tenant.slug, tenant.connection_id)
    access = app.test_client().post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": oauth["client_id"],
            "client_secret": oauth["client_secret"],
        },
        base_url="https://scim.example.com",
    )
    assert access.status_code == 200, access.get_json()
    access_token = access.get_json()["access_token"]
    audit = _cli_json(database, "token", "create", "--org", tenant.slug, "--scope", "audit")
    revoked = _cli_json(database, "token", "create", "--org", tenant.slug, "--scope", "admin")
    run_cli(database, "token", "revoke", "--org", tenant.slug, revoked["token"][:11])

    result = run_cli(database, "token", "list", "--org", tenant.slug, "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [(t["prefix"], t["kind"]) for t in listed] == [
        (tenant.token[:11], "connection"),
        (oauth["client_secret"][:11], "oauth-client"),
        (access_token[:11], "oauth-access"),
        (audit["token"][:11], "audit"),
    ]
    assert listed[2]["issuedFor"] == oauth["client_secret"][:11]
    assert listed[2]["expires"] is not None
    assert {t["connectionId"] for t in listed[:3]} == {tenant.connection_id}
    every = json.loads(
        run_cli(database, "token", "list", "--org", tenant.slug, "--all", "--json").stdout
    )
    assert [t["prefix"] for t in every if t["revoked"]] == [revoked["token"][:11]]
    text = run_cli(database, "token", "list", "--org", tenant.slug).output
    for secret in (tenant.token, oauth["client_secret"], access_token, audit["token"]):
        assert secret not in result.stdout + text
        assert secret[:11] in text
    other = make_tenant(database)
    theirs = json.loads(run_cli(database, "token", "list", "--org", other.slug, "--json").stdout)
    assert [t["prefix"] for t in theirs] == [other.token[:11]]
