"""OAuth 2.0 client credentials (DESIGN §7, RFC 6749 §4.4): an IdP holds a connection's client id
and secret, buys short-lived access tokens at ``POST /oauth/token`` and provisions with them.

The secret is shown once, stored hashed, never a bearer token itself; rotating or revoking it
ends the tokens issued for it; every request to the token endpoint is one audit event, and no
secret or token reaches the log."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from werkzeug.test import TestResponse

from scim_server.app import create_app
from scim_server.config import ConfigError, Settings
from scim_server.store.db import Database
from scim_server.store.models import SYSTEM_CHAIN, ApiToken
from tests.api.audit_support import (
    all_event_rows_as_text,
    auditor_for,
    client_address,
    client_at,
    events_from,
    request_id,
    run_cli,
)
from tests.conftest import USER_SCHEMA, Tenant, make_tenant

TOKEN_URL = "/oauth/token"


def _oauth(database: Database, tenant: Tenant, *extra: str) -> dict[str, Any]:
    result = run_cli(
        database,
        "connection",
        "oauth",
        "--org",
        tenant.slug,
        tenant.connection_id,
        "--json",
        *extra,
    )
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def _basic(client_id: str, secret: str) -> dict[str, str]:
    pair = f"{quote(client_id)}:{quote(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def _token_request(
    client: FlaskClient, client_id: str, secret: str, *, basic: bool = False, **headers: str
) -> TestResponse:
    form = {"grant_type": "client_credentials"}
    if basic:
        headers.update(_basic(client_id, secret))
    else:
        form.update(client_id=client_id, client_secret=secret)
    return client.post(TOKEN_URL, data=form, headers=headers)


def _access_token(app: Flask, client_id: str, secret: str) -> str:
    response = _token_request(_client(app), client_id, secret)
    assert response.status_code == 200, response.get_data(as_text=True)
    token: str = response.get_json()["access_token"]
    return token


def _client(app: Flask) -> FlaskClient:
    """A client at an address of its own: the refusals these tests provoke never use up the
    per-address auth-failure throttle that other tests' events pass through."""
    return client_at(app, client_address())


def _users_status(app: Flask, token: str) -> int:
    response = _client(app).get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def _token_rows(database: Database, connection_id: str) -> list[dict[str, Any]]:
    with database.transaction(write=False) as session:
        rows = session.scalars(
            select(ApiToken).where(ApiToken.connection_id == connection_id).order_by(ApiToken.id)
        )
        return [
            {
                "id": row.id,
                "scope": row.scope,
                "prefix": row.prefix,
                "expires_at": row.expires_at,
                "revoked_at": row.revoked_at,
                "issued_by": row.issued_by,
            }
            for row in rows
        ]


def test_the_cli_gives_a_connection_a_client_id_and_a_secret_shown_once(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    assert issued["client_id"] == tenant.connection_id
    assert issued["token_endpoint"] == "http://localhost:8000/oauth/token"
    assert issued["base_url"] == "http://localhost:8000/scim/v2"
    secret = issued["client_secret"]
    assert secret.startswith("scim_")
    assert len(secret) == 48  # 256 random bits, url-safe
    (row,) = [r for r in _token_rows(database, tenant.connection_id) if r["scope"] == "client"]
    assert secret.startswith(row["prefix"])
    with database.engine.connect() as connection:
        stored = connection.execute(text("SELECT token_hash FROM api_tokens")).scalars().all()
    assert secret not in stored  # only its SHA-256 is kept

    event = auditor_for(app, database, tenant.slug).events('operation eq "connection.oauth"')
    assert [e["resourceId"] for e in event] == [tenant.connection_id]
    assert secret not in "\n".join(all_event_rows_as_text(database))


def test_an_access_token_from_the_form_provisions_as_the_connection(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    response = _token_request(_client(app), issued["client_id"], issued["client_secret"])
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "scim"
    token = body["access_token"]
    assert token not in (issued["client_secret"], tenant.token)

    created = app.test_client().post(
        "/scim/v2/Users",
        json={"schemas": [USER_SCHEMA], "userName": "oauth.user@example.com"},
        headers={"Authorization": f"Bearer {token}"},
        content_type="application/scim+json",
    )
    assert created.status_code == 201, created.get_json()
    # the user belongs to the connection: its own bearer token may change it
    renamed = app.test_client().patch(
        f"/scim/v2/Users/{created.get_json()['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "OAuth User"}],
        },
        headers={"Authorization": f"Bearer {tenant.token}"},
        content_type="application/scim+json",
    )
    assert renamed.status_code == 200, renamed.get_json()

    (access,) = [r for r in _token_rows(database, tenant.connection_id) if r["issued_by"]]
    assert access["scope"] == "scim"
    assert timedelta(minutes=59) < access["expires_at"] - datetime.now(UTC) <= timedelta(hours=1)


def test_http_basic_client_authentication_works_too(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    response = _token_request(
        _client(app), issued["client_id"], issued["client_secret"], basic=True
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert _users_status(app, response.get_json()["access_token"]) == 200


def test_the_token_request_and_its_use_are_in_the_organisations_log_without_secrets(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    rid = request_id("oauth")
    response = _token_request(
        _client(app), issued["client_id"], issued["client_secret"], **{"X-Request-Id": rid}
    )
    token = response.get_json()["access_token"]
    assert _users_status(app, token) == 200

    auditor = auditor_for(app, database, tenant.slug)
    event = auditor.one(rid)
    assert event["operation"] == "oauth.token"
    assert event["outcome"] == "success"
    assert (event["actorType"], event["actor"]) == ("connection", tenant.connection_id)
    assert token.startswith(event["tokenPrefix"])
    reads = auditor.events(f'operation eq "user.list" and tokenPrefix eq "{event["tokenPrefix"]}"')
    assert len(reads) == 1  # the token's use is traceable to its issuance
    text_ = "\n".join(all_event_rows_as_text(database))
    assert token not in text_
    assert issued["client_secret"] not in text_


def test_a_wrong_secret_is_refused_and_recorded_in_the_organisations_log(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    before = _token_rows(database, tenant.connection_id)
    address = client_address()
    wrong = issued["client_secret"][:-4] + "AAAA"
    for basic in (False, True):
        response = _token_request(client_at(app, address), issued["client_id"], wrong, basic=basic)
        assert response.status_code == 401
        assert response.get_json()["error"] == "invalid_client"
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert _token_rows(database, tenant.connection_id) == before  # nothing issued

    events = events_from(database, address)
    assert [(e["org_id"], e["operation"], e["status"]) for e in events] == [
        (tenant.org_id, "auth.failed", 401),
        (tenant.org_id, "auth.failed", 401),
    ]
    assert "invalid_client" in events[0]["detail"]
    assert wrong not in "\n".join(all_event_rows_as_text(database))


def test_an_unknown_client_is_refused_in_the_system_log(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    address = client_address()
    unknown = ("00000000" + tenant.connection_id[8:], "okta", "x" * 500)
    for client_id in unknown:
        for basic in (False, True):
            response = _token_request(
                client_at(app, address), client_id, "scim_" + "x" * 43, basic=basic
            )
            assert response.status_code == 401  # as for a known client's wrong secret
            assert response.get_json()["error"] == "invalid_client"
    events = events_from(database, address)
    assert [(e["org_id"], e["operation"]) for e in events] == [(SYSTEM_CHAIN, "auth.failed")] * 6


def test_malformed_token_requests_get_rfc_6749_errors(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    client = client_at(app, client_address())
    credentials = {"client_id": issued["client_id"], "client_secret": issued["client_secret"]}

    wrong_grant = client.post(TOKEN_URL, data={"grant_type": "password", **credentials})
    assert wrong_grant.status_code == 400
    assert wrong_grant.get_json()["error"] == "unsupported_grant_type"

    as_json = client.post(TOKEN_URL, json={"grant_type": "client_credentials", **credentials})
    assert as_json.status_code == 400  # RFC 6749: form-encoded only
    assert as_json.get_json()["error"] == "unsupported_grant_type"

    in_url = client.post(
        TOKEN_URL, query_string={"grant_type": "client_credentials", **credentials}
    )
    assert in_url.status_code == 400
    assert in_url.get_json()["error"] == "invalid_request"
    assert "URL" in in_url.get_json()["error_description"]

    no_credentials = client.post(TOKEN_URL, data={"grant_type": "client_credentials"})
    assert no_credentials.status_code == 401
    assert no_credentials.get_json()["error"] == "invalid_client"

    assert client.get(TOKEN_URL).status_code == 405
    assert not [r for r in _token_rows(database, tenant.connection_id) if r["issued_by"]]


def test_the_token_endpoint_refuses_plain_http_but_from_this_machine(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    form = {
        "grant_type": "client_credentials",
        "client_id": issued["client_id"],
        "client_secret": issued["client_secret"],
    }
    client = client_at(app, client_address())
    remote = client.post(TOKEN_URL, data=form, base_url="http://scim.example.com")
    assert remote.status_code == 400
    assert remote.get_json()["error"] == "insecure_transport"
    assert "SCIM_TRUSTED_PROXY_HOPS" in remote.get_json()["error_description"]
    secure = client.post(TOKEN_URL, data=form, base_url="https://scim.example.com")
    assert secure.status_code == 200


def test_a_client_secret_is_not_a_bearer_token(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    assert _users_status(app, issued["client_secret"]) == 401


def test_an_expired_access_token_is_refused(app: Flask, database: Database, tenant: Tenant) -> None:
    issued = _oauth(database, tenant)
    token = _access_token(app, issued["client_id"], issued["client_secret"])
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE api_tokens SET expires_at = :past "
                "WHERE connection_id = :c AND issued_by IS NOT NULL"
            ),
            {"past": datetime.now(UTC) - timedelta(seconds=1), "c": tenant.connection_id},
        )
    assert _users_status(app, token) == 401
    assert (
        _users_status(app, _access_token(app, issued["client_id"], issued["client_secret"])) == 200
    )


def test_a_new_secret_ends_the_old_one_and_its_tokens_after_the_overlap(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    first = _oauth(database, tenant)
    old_token = _access_token(app, first["client_id"], first["client_secret"])

    overlapping = _oauth(database, tenant)  # default overlap: 24 h
    assert {c["scope"] for c in overlapping["previous_tokens"]} == {"client", "scim"}
    assert _access_token(app, first["client_id"], first["client_secret"])
    assert _users_status(app, old_token) == 200
    assert tenant.token  # the connection's bearer token is untouched
    assert _users_status(app, tenant.token) == 200

    _oauth(database, tenant, "--overlap", "0")
    refused = _token_request(_client(app), first["client_id"], first["client_secret"])
    assert refused.status_code == 401
    refused = _token_request(_client(app), overlapping["client_id"], overlapping["client_secret"])
    assert refused.status_code == 401
    assert _users_status(app, old_token) == 401  # issued for an ended secret: ended with it
    assert _users_status(app, tenant.token) == 200


def test_rotating_the_bearer_token_leaves_the_oauth_client_alone(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    token = _access_token(app, issued["client_id"], issued["client_secret"])
    result = run_cli(
        database, "connection", "rotate", "--org", tenant.slug, tenant.connection_id,
        "--overlap", "0", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [c["scope"] for c in json.loads(result.stdout)["previous_tokens"]] == ["scim"]
    assert _users_status(app, tenant.token) == 401
    assert _users_status(app, token) == 200
    assert _access_token(app, issued["client_id"], issued["client_secret"])


def test_revoking_the_connection_ends_its_secret_and_its_access_tokens(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    token = _access_token(app, issued["client_id"], issued["client_secret"])
    result = run_cli(database, "connection", "revoke", "--org", tenant.slug, tenant.connection_id)
    assert result.exit_code == 0, result.output
    assert _users_status(app, token) == 401
    refused = _token_request(_client(app), issued["client_id"], issued["client_secret"])
    assert refused.status_code == 401


def test_revoking_the_secret_by_prefix_ends_its_access_tokens(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    token = _access_token(app, issued["client_id"], issued["client_secret"])
    result = run_cli(
        database, "token", "revoke", "--org", tenant.slug, issued["client_secret"][:11]
    )
    assert result.exit_code == 0, result.output
    assert _users_status(app, token) == 401
    assert _users_status(app, tenant.token) == 200


def test_an_access_token_reaches_only_its_own_organisation(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    other = make_tenant(database)
    theirs = app.test_client().post(
        "/scim/v2/Users",
        json={"schemas": [USER_SCHEMA], "userName": "theirs@example.com"},
        headers={"Authorization": f"Bearer {other.token}"},
        content_type="application/scim+json",
    )
    assert theirs.status_code == 201
    issued = _oauth(database, tenant)
    token = _access_token(app, issued["client_id"], issued["client_secret"])
    response = app.test_client().get(
        f"/scim/v2/Users/{theirs.get_json()['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 404
    # another organisation's client id with this secret is no client at all
    refused = _token_request(_client(app), other.connection_id, issued["client_secret"])
    assert refused.status_code == 401


def test_expired_access_tokens_do_not_pile_up(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    for _ in range(3):
        _access_token(app, issued["client_id"], issued["client_secret"])
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE api_tokens SET expires_at = :old "
                "WHERE connection_id = :c AND issued_by IS NOT NULL"
            ),
            {"old": datetime.now(UTC) - timedelta(days=2), "c": tenant.connection_id},
        )
    _access_token(app, issued["client_id"], issued["client_secret"])
    assert len([r for r in _token_rows(database, tenant.connection_id) if r["issued_by"]]) == 1


def test_service_provider_config_advertises_the_client_credentials_grant(
    app: Flask, tenant: Tenant
) -> None:
    response = app.test_client().get(
        "/scim/v2/ServiceProviderConfig", headers={"Authorization": f"Bearer {tenant.token}"}
    )
    schemes = {s["type"]: s for s in response.get_json()["authenticationSchemes"]}
    assert schemes["oauthbearertoken"]["primary"] is True
    assert "http://localhost/oauth/token" in schemes["oauth2"]["description"]
    assert schemes["oauth2"]["specUri"].endswith("rfc6749#section-4.4")


def test_the_access_token_lifetime_is_configurable_within_a_day(
    database: Database, tenant: Tenant
) -> None:
    settings = Settings.from_env({"SCIM_OAUTH_TOKEN_LIFETIME_SECONDS": "300"})
    assert settings.oauth_token_lifetime_seconds == 300
    short_lived = create_app(
        dataclasses.replace(settings, database_url=database.url), database=database
    )
    issued = _oauth(database, tenant)
    response = _token_request(
        short_lived.test_client(), issued["client_id"], issued["client_secret"]
    )
    assert response.get_json()["expires_in"] == 300
    (access,) = [r for r in _token_rows(database, tenant.connection_id) if r["issued_by"]]
    assert timedelta(minutes=4) < access["expires_at"] - datetime.now(UTC) <= timedelta(minutes=5)
    for wrong, message in (("30", "at least 60"), ("86401", "at most 86400"), ("1h", "integer")):
        with pytest.raises(ConfigError, match=message):
            Settings.from_env({"SCIM_OAUTH_TOKEN_LIFETIME_SECONDS": wrong})
