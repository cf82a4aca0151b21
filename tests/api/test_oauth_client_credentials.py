"""OAuth 2.0 client credentials (DESIGN §7, RFC 6749 §4.4): an IdP holds a connection's client id
and secret, buys short-lived access tokens at ``POST /oauth/token`` and provisions with them.

The secret is shown once, stored hashed, never a bearer token itself; rotating or revoking it
ends the tokens issued for it; every request to the token endpoint is one audit event, and no
secret or token reaches the log."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from werkzeug.test import TestResponse

from scim_server.app import create_app
from scim_server.config import ConfigError, Settings
from scim_server.http import oauth as http_oauth
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
    client: HttpsClient, client_id: str, secret: str, *, basic: bool = False, **headers: str
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


class HttpsClient:
    """An IdP over HTTPS (the token endpoint refuses plain HTTP from another machine)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def post(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("base_url", "https://scim.example.com")
        return self.client.post(*args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("base_url", "https://scim.example.com")
        return self.client.get(*args, **kwargs)


def _client(app: Flask, address: str | None = None) -> HttpsClient:
    """An IdP over HTTPS, at an address of its own: the refusals these tests provoke never use
    up the per-address auth-failure throttle that other tests' events pass through."""
    return HttpsClient(client_at(app, address or client_address()))


def _users_client(app: Flask) -> FlaskClient:
    return client_at(app, client_address())


def _users_status(app: Flask, token: str) -> int:
    response = _users_client(app).get(
        "/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}
    )
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


def _expire_access_tokens(database: Database, connection_id: str, *, ago: timedelta) -> None:
    """What time does to the connection's access tokens: they expired ``ago``."""
    # through the column's type, stored as the server stores it (and no sqlite3 default adapter,
    # deprecated since Python 3.12)
    with database.engine.begin() as connection:
        connection.execute(
            update(ApiToken)
            .where(ApiToken.connection_id == connection_id, ApiToken.issued_by.is_not(None))
            .values(expires_at=datetime.now(UTC) - ago)
        )


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
        response = _token_request(_client(app, address), issued["client_id"], wrong, basic=basic)
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


def test_a_known_client_without_a_secret_is_refused_in_the_organisations_log(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    """Found by fuzzing: an empty or missing secret is refused by authlib before it looks the
    client up, and the refusal went to the system log although it names the connection."""
    issued = _oauth(database, tenant)
    client_id = issued["client_id"]
    address = client_address()
    client = _client(app, address)
    attempts = [
        {"data": {"grant_type": "client_credentials", "client_id": client_id}},
        {"data": {"grant_type": "client_credentials", "client_id": client_id, "client_secret": ""}},
        {"data": {"grant_type": "client_credentials"}, "headers": _basic(client_id, "")},
    ]
    for attempt in attempts:
        response = client.post(TOKEN_URL, **attempt)
        assert response.status_code == 401, response.get_data(as_text=True)
        assert response.get_json()["error"] == "invalid_client"
    events = events_from(database, address)
    assert [(e["org_id"], e["operation"], e["status"]) for e in events] == [
        (tenant.org_id, "auth.failed", 401)
    ] * len(attempts)


def test_a_repeated_parameter_is_named_only_if_it_is_the_protocols(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    """A parameter's name is the client's text: a secret sent as a repeated name (by mistake,
    or a tool's) was quoted back in full in the answer and in the event."""
    issued = _oauth(database, tenant)
    secret = issued["client_secret"]
    client = _client(app)
    for form, named in (
        (f"grant_type=client_credentials&{secret}=1&{secret}=2", "a parameter"),
        ("grant_type=client_credentials&scope=a&scope=b", "scope"),
    ):
        response = client.post(
            TOKEN_URL,
            data=form,
            content_type="application/x-www-form-urlencoded",
            headers=_basic(issued["client_id"], secret),
        )
        assert response.status_code == 400
        assert response.get_json()["error_description"].startswith(f"{named} is repeated")
    assert secret not in "\n".join(all_event_rows_as_text(database))


def test_a_form_that_is_not_utf8_is_refused_as_such_in_the_clients_log(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    """One stray byte made werkzeug drop the whole form: 'grant_type is missing', in the
    system log, although grant_type and the client were sent."""
    issued = _oauth(database, tenant)
    address = client_address()
    form = (
        f"grant_type=client_credentials&client_id={issued['client_id']}"
        f"&client_secret={issued['client_secret']}&x="
    ).encode() + b"\xff"
    response = _client(app, address).post(
        TOKEN_URL, data=form, content_type="application/x-www-form-urlencoded"
    )
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_request")
    assert "not UTF-8" in response.get_json()["error_description"]
    events = events_from(database, address)
    assert [(e["org_id"], e["status"]) for e in events] == [(tenant.org_id, 400)]
    assert issued["client_secret"] not in "\n".join(all_event_rows_as_text(database))


def test_an_unknown_client_is_refused_in_the_system_log(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    address = client_address()
    unknown = ("00000000" + tenant.connection_id[8:], "okta", "x" * 500)
    for client_id in unknown:
        for basic in (False, True):
            response = _token_request(
                _client(app, address), client_id, "scim_" + "x" * 43, basic=basic
            )
            assert response.status_code == 401  # as for a known client's wrong secret
            assert response.get_json()["error"] == "invalid_client"
    events = events_from(database, address)
    assert [(e["org_id"], e["operation"]) for e in events] == [(SYSTEM_CHAIN, "auth.failed")] * 6


def test_malformed_token_requests_get_rfc_6749_errors(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    client = _client(app)
    credentials = {"client_id": issued["client_id"], "client_secret": issued["client_secret"]}

    def error_of(response: TestResponse) -> tuple[int, str]:
        return response.status_code, response.get_json()["error"]

    wrong_grant = client.post(TOKEN_URL, data={"grant_type": "password", **credentials})
    assert error_of(wrong_grant) == (400, "unsupported_grant_type")
    no_grant = client.post(TOKEN_URL, data=credentials)
    assert error_of(no_grant) == (400, "invalid_request")
    assert "grant_type" in no_grant.get_json()["error_description"]
    as_json = client.post(TOKEN_URL, json={"grant_type": "client_credentials", **credentials})
    assert error_of(as_json) == (400, "invalid_request")  # RFC 6749: form-encoded only

    in_url = client.post(
        TOKEN_URL, query_string={"grant_type": "client_credentials", **credentials}
    )
    assert error_of(in_url) == (400, "invalid_request")
    assert "URL" in in_url.get_json()["error_description"]
    other_query = client.post(
        TOKEN_URL + "?tenant=acme", data={"grant_type": "client_credentials", **credentials}
    )
    assert other_query.status_code == 200  # RFC 6749 §3.2: the endpoint's URI may have a query

    repeated = client.post(
        TOKEN_URL,
        data=f"grant_type=client_credentials&grant_type=password&client_id={issued['client_id']}"
        f"&client_secret={issued['client_secret']}",
        content_type="application/x-www-form-urlencoded",
    )
    assert error_of(repeated) == (400, "invalid_request")

    basic_and_form = client.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", **credentials},
        headers=_basic(issued["client_id"], "scim_" + "y" * 43),
    )
    assert error_of(basic_and_form) == (400, "invalid_request")  # two different credentials
    other = _oauth(database, make_tenant(database))
    two_ids = client.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "client_id": other["client_id"]},
        headers=_basic(issued["client_id"], issued["client_secret"]),
    )
    assert error_of(two_ids) == (400, "invalid_request")
    same_id = client.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "client_id": issued["client_id"]},
        headers=_basic(issued["client_id"], issued["client_secret"]),
    )
    assert same_id.status_code == 200  # §3.2.1 lets the client repeat its id in the body
    repeated_both = client.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", **credentials},
        headers=_basic(issued["client_id"], issued["client_secret"]),
    )
    assert repeated_both.status_code == 200  # the same credentials twice: one client

    no_credentials = client.post(TOKEN_URL, data={"grant_type": "client_credentials"})
    assert error_of(no_credentials) == (401, "invalid_client")
    assert (
        no_credentials.headers["WWW-Authenticate"] == 'Basic realm="scim", error="invalid_client"'
    )

    assert client.get(TOKEN_URL).status_code == 405
    issued_tokens = [r for r in _token_rows(database, tenant.connection_id) if r["issued_by"]]
    assert len(issued_tokens) == 3  # the three requests that were right


def test_the_token_endpoint_refuses_plain_http_but_from_this_machine(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    form = {
        "grant_type": "client_credentials",
        "client_id": issued["client_id"],
        "client_secret": issued["client_secret"],
    }
    remote = client_at(app, client_address())
    # plain HTTP from another machine, whatever Host it names (nginx's proxy_pass sends
    # "Host: 127.0.0.1:8000" unless told otherwise)
    for host in ("http://scim.example.com", "http://localhost:8000", "http://127.0.0.1:8000"):
        refused = remote.post(TOKEN_URL, data=form, base_url=host)
        assert refused.status_code == 400, host
        assert refused.get_json()["error"] == "insecure_transport"
        assert "SCIM_TRUSTED_PROXY_HOPS" in refused.get_json()["error_description"]
    assert remote.post(TOKEN_URL, data=form, base_url="https://scim.example.com").status_code == 200

    local = client_at(app, "127.0.0.1")  # the quick start: curl on the same machine
    assert local.post(TOKEN_URL, data=form, base_url="http://localhost:8000").status_code == 200
    through_a_proxy = local.post(
        TOKEN_URL,
        data=form,
        base_url="http://localhost:8000",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"},
    )
    assert through_a_proxy.status_code == 400  # a proxy this server was not told to trust
    assert through_a_proxy.get_json()["error"] == "insecure_transport"


def test_a_client_secret_is_not_a_bearer_token(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    assert _users_status(app, issued["client_secret"]) == 401


def test_an_expired_access_token_is_refused(app: Flask, database: Database, tenant: Tenant) -> None:
    issued = _oauth(database, tenant)
    token = _access_token(app, issued["client_id"], issued["client_secret"])
    _expire_access_tokens(database, tenant.connection_id, ago=timedelta(seconds=1))
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
    _expire_access_tokens(database, tenant.connection_id, ago=timedelta(days=2))
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


def test_a_secret_revoked_while_a_token_is_being_issued_buys_no_token(
    app: Flask, database: Database, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secret is checked in the request's read transaction and the token written in a
    write transaction: a revocation that commits in between must be seen."""
    issued = _oauth(database, tenant)
    end_reading = http_oauth.end_request_session

    def revoke_in_between() -> None:
        end_reading()
        revoked = run_cli(
            database, "connection", "revoke", "--org", tenant.slug, tenant.connection_id
        )
        assert revoked.exit_code == 0, revoked.output

    monkeypatch.setattr(http_oauth, "end_request_session", revoke_in_between)
    address = client_address()
    response = _token_request(_client(app, address), issued["client_id"], issued["client_secret"])
    monkeypatch.undo()
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["error"] == "invalid_client"
    assert not [r for r in _token_rows(database, tenant.connection_id) if r["issued_by"]]
    (event,) = events_from(database, address)
    assert (event["org_id"], event["operation"], event["status"]) == (
        tenant.org_id,
        "auth.failed",
        401,
    )


def test_an_access_token_never_outlives_its_secret(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    old = _oauth(database, tenant)
    _oauth(database, tenant, "--overlap", "60s")  # the old secret ends in a minute
    response = _token_request(_client(app), old["client_id"], old["client_secret"])
    assert response.status_code == 200
    assert 55 <= response.get_json()["expires_in"] <= 60
    rows = _token_rows(database, tenant.connection_id)
    (secret,) = [r for r in rows if r["prefix"] == old["client_secret"][:11]]
    (access,) = [r for r in rows if r["issued_by"] == secret["id"]]
    assert access["expires_at"] == secret["expires_at"]


def test_an_unknown_client_and_a_wrong_secret_get_the_same_answer(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    wrong = "scim_" + "y" * 43
    client = _client(app)
    unknown = _token_request(client, "00000000" + issued["client_id"][8:], wrong)
    known = _token_request(client, issued["client_id"], wrong)
    assert (unknown.status_code, known.status_code) == (401, 401)
    assert unknown.get_json() == known.get_json()
    assert unknown.headers["WWW-Authenticate"] == known.headers["WWW-Authenticate"]


def test_attempts_with_a_revoked_secret_stay_in_the_organisations_log(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    revoked = run_cli(database, "connection", "revoke", "--org", tenant.slug, tenant.connection_id)
    assert revoked.exit_code == 0, revoked.output
    address = client_address()
    refused = _token_request(_client(app, address), issued["client_id"], issued["client_secret"])
    assert refused.status_code == 401
    (event,) = events_from(database, address)
    assert (event["org_id"], event["operation"]) == (tenant.org_id, "auth.failed")
    # which of its own secrets the IdP still sends is what the admin needs to know
    assert issued["client_secret"].startswith(event["token_prefix"])


def test_another_organisations_secret_leaves_no_trace_of_itself_in_this_log(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    """The log of the organisation a client_id names records the presented secret's prefix
    only when the secret is one of that organisation's: another's would hand its auditors part
    of a live secret they have no business seeing."""
    issued = _oauth(database, tenant)
    other = make_tenant(database)
    theirs = _oauth(database, other)
    address = client_address()
    refused = _token_request(_client(app, address), issued["client_id"], theirs["client_secret"])
    assert refused.status_code == 401
    (event,) = events_from(database, address)
    assert (event["org_id"], event["operation"]) == (tenant.org_id, "auth.failed")
    assert not event["token_prefix"]


def test_connection_revoke_lists_each_token_once(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    access = _access_token(app, issued["client_id"], issued["client_secret"])
    result = run_cli(
        database, "connection", "revoke", "--org", tenant.slug, tenant.connection_id, "--json"
    )
    prefixes = sorted(change["prefix"] for change in json.loads(result.stdout)["revoked"])
    assert prefixes == sorted(
        token[:11] for token in (tenant.token, issued["client_secret"], access)
    )


def test_expired_access_tokens_of_a_previous_secret_are_deleted_too(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    first = _oauth(database, tenant)
    for _ in range(3):
        _access_token(app, first["client_id"], first["client_secret"])
    second = _oauth(database, tenant, "--overlap", "0")
    _expire_access_tokens(database, tenant.connection_id, ago=timedelta(days=30))
    _access_token(app, second["client_id"], second["client_secret"])
    assert len([r for r in _token_rows(database, tenant.connection_id) if r["issued_by"]]) == 1


def test_token_revoke_of_a_secret_names_the_access_tokens_it_ended(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    access = _access_token(app, issued["client_id"], issued["client_secret"])
    result = run_cli(
        database, "token", "revoke", "--org", tenant.slug, issued["client_secret"][:11], "--json"
    )
    assert result.exit_code == 0, result.output
    assert [t["prefix"] for t in json.loads(result.stdout)["issuedTokens"]] == [access[:11]]
    (event,) = auditor_for(app, database, tenant.slug).events('operation eq "token.revoke"')
    assert [t["prefix"] for t in event["changes"]["oldTokens"]] == [access[:11]]


def test_the_oauth_token_event_names_the_secret_used(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    old = _oauth(database, tenant)
    new = _oauth(database, tenant)  # 24 h overlap: two live secrets
    _access_token(app, old["client_id"], old["client_secret"])
    _access_token(app, new["client_id"], new["client_secret"])
    events = auditor_for(app, database, tenant.slug).events('operation eq "oauth.token"')
    assert [e["changes"]["clientSecret"] for e in events] == [
        old["client_secret"][:11],
        new["client_secret"][:11],
    ]


def test_a_revocation_is_not_held_off_by_a_flood_of_token_requests(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    """Whoever holds a leaked secret may keep asking for tokens: the admin's revocation must
    still go through at once (a shared lock per request kept it waiting until the flood
    stopped, on PostgreSQL), and leave no token alive."""
    issued = _oauth(database, tenant)
    form = {
        "grant_type": "client_credentials",
        "client_id": issued["client_id"],
        "client_secret": issued["client_secret"],
    }
    stop = threading.Event()
    answered: list[int] = []

    def flood() -> None:
        client = _client(app)
        while not stop.is_set():
            answered.append(client.post(TOKEN_URL, data=form).status_code)

    threads = [threading.Thread(target=flood) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        while answered.count(200) < 20:  # the flood is on
            time.sleep(0.01)
        revoking = threading.Thread(
            target=run_cli,
            args=(database, "connection", "revoke", "--org", tenant.slug, tenant.connection_id),
        )
        revoking.start()
        revoking.join(timeout=20)
        revoked_during_the_flood = not revoking.is_alive()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    revoking.join()
    assert revoked_during_the_flood
    live = [
        r
        for r in _token_rows(database, tenant.connection_id)
        if r["revoked_at"] is None
        and (r["expires_at"] is None or r["expires_at"] > datetime.now(UTC))
    ]
    assert live == []
    assert set(answered) <= {200, 401}  # no 5xx, whatever the interleaving


def test_hostile_inputs_get_clear_errors_never_a_500(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    client = _client(app)
    grant = {"grant_type": "client_credentials"}
    not_utf8 = {"Authorization": "Basic " + base64.b64encode(b"\xff:\xff").decode()}
    # the right credentials with text after them are no Basic credentials (RFC 7617 token68)
    trailing = {
        "Authorization": _basic(issued["client_id"], issued["client_secret"])["Authorization"]
        + " junk"
    }
    for headers in (
        not_utf8,
        {"Authorization": "Basic "},
        {"Authorization": "Basic !!!"},
        trailing,
    ):
        refused = client.post(TOKEN_URL, data=grant, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.get_json()["error_description"] == "client authentication failed"
    repeated = client.post(
        TOKEN_URL,
        data="grant_type=client_credentials&%C3%A9=1&%C3%A9=2&%22%5C=3&%22%5C=4",
        content_type="application/x-www-form-urlencoded",
    )
    assert (repeated.status_code, repeated.get_json()["error"]) == (400, "invalid_request")
    multipart = client.post(
        TOKEN_URL,
        data={**grant, "client_id": issued["client_id"], "client_secret": issued["client_secret"]},
        content_type="multipart/form-data",
    )
    assert (multipart.status_code, multipart.get_json()["error"]) == (400, "invalid_request")
    address = client_address()
    secret_as_grant = _client(app, address).post(
        TOKEN_URL, data={"grant_type": issued["client_secret"], "client_id": issued["client_id"]}
    )
    assert secret_as_grant.get_json()["error"] == "unsupported_grant_type"
    assert issued["client_secret"] not in "\n".join(all_event_rows_as_text(database))
    # refused before authentication, but naming a client id: in its organisation's log
    (event,) = events_from(database, address)
    assert (event["org_id"], event["operation"]) == (tenant.org_id, "auth.failed")


def test_plain_http_from_a_local_proxy_or_a_dual_stack_socket(
    app: Flask, database: Database, tenant: Tenant
) -> None:
    issued = _oauth(database, tenant)
    form = {
        "grant_type": "client_credentials",
        "client_id": issued["client_id"],
        "client_secret": issued["client_secret"],
    }
    local = client_at(app, "127.0.0.1")
    for proxied in (
        {"Forwarded": "for=198.51.100.7;proto=http"},
        {"Via": "1.1 proxy"},
        {"X-Real-IP": "198.51.100.7"},
    ):
        refused = local.post(TOKEN_URL, data=form, base_url="http://localhost", headers=proxied)
        assert refused.status_code == 400, proxied
    for loopback in ("::1", "::ffff:127.0.0.1"):
        direct = client_at(app, loopback).post(TOKEN_URL, data=form, base_url="http://localhost")
        assert direct.status_code == 200, loopback


def test_every_failure_of_the_token_endpoint_is_worded_for_an_oauth_client(
    database: Database, tenant: Tenant
) -> None:
    """An OAuth client reads ``error``: the answers the app's own handlers give (a wrong
    method, the connection's rate limit) keep their status and headers, in RFC 6749's shape."""
    limited = create_app(
        Settings(database_url=database.url, rate_limit="2/minute"), database=database
    )
    issued = _oauth(database, tenant)
    client = _client(limited)
    wrong_method = client.get(TOKEN_URL)
    assert wrong_method.status_code == 405
    assert wrong_method.mimetype == "application/json"
    assert wrong_method.get_json()["error"] == "invalid_request"
    assert wrong_method.headers["Allow"]
    answers = [
        _token_request(client, issued["client_id"], issued["client_secret"]) for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].get_json()["error"] == "temporarily_unavailable"
    assert "rate limit" in answers[2].get_json()["error_description"]
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert answers[2].headers["Cache-Control"] == "no-store"
