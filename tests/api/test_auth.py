"""Bearer tokens (DESIGN §7): hashed at rest, a SCIM error with WWW-Authenticate when refused."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select, text, update

from scim_server.services import tokens
from scim_server.store.db import Database
from scim_server.store.models import ApiToken
from scim_server.store.types import utcnow
from tests.conftest import Api, Tenant


def _assert_401(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="scim"')
    body = response.get_json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == "401"


def test_missing_malformed_and_unknown_tokens_are_401(app: Flask, tenant: Tenant) -> None:
    client = app.test_client()
    _assert_401(client.get("/scim/v2/Users"))
    _assert_401(client.get("/scim/v2/Users", headers={"Authorization": "Basic dXNlcjpwYXNz"}))
    _assert_401(client.get("/scim/v2/Users", headers={"Authorization": "Bearer"}))
    _assert_401(client.get("/scim/v2/Users", headers={"Authorization": "Bearer scim_nope"}))
    wrong = client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {tenant.token}x"})
    _assert_401(wrong)
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]


def test_discovery_needs_a_token_unless_configured(app: Flask, tenant: Tenant) -> None:
    _assert_401(app.test_client().get("/scim/v2/ServiceProviderConfig"))


def test_tokens_are_stored_as_sha256_only(tenant: Tenant, database: Database) -> None:
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT token_hash, prefix FROM api_tokens WHERE org_id = :o"),
            {"o": tenant.org_id},
        ).all()
    assert [row.token_hash for row in rows] == [tokens.hash_token(tenant.token)]
    assert rows[0].prefix == tenant.token[: len(rows[0].prefix)]
    assert len(tenant.token) > 40  # 256 bits of randomness, url-safe base64, plus prefix
    assert all(tenant.token not in str(value) for row in rows for value in row)


def test_expired_and_revoked_tokens_are_refused(api: Api, database: Database) -> None:
    assert api.get("/Users").status_code == 200
    digest = tokens.hash_token(api.tenant.token)
    with database.transaction(write=True) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == digest)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    _assert_401(api.get("/Users"))
    with database.transaction(write=True) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == digest)
            .values(expires_at=None, revoked_at=utcnow())
        )
    _assert_401(api.get("/Users"))


def test_a_token_of_another_scope_is_403_on_scim(api: Api, database: Database) -> None:
    with database.transaction(write=True) as session:
        org = tokens.get_organization(session, api.tenant.slug)
        audit_token = tokens.issue_token(session, org, "audit")
        assert (
            session.scalar(
                select(ApiToken.scope).where(ApiToken.token_hash == tokens.hash_token(audit_token))
            )
            == "audit"
        )
    response = api.client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {audit_token}"})
    assert response.status_code == 403
    assert response.get_json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
