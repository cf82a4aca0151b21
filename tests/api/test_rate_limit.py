"""Per-connection rate limit (DESIGN §7): 429 with Retry-After in whole seconds, per connection,
shared by every worker through Redis; its refusals are logged without flooding the log."""

from __future__ import annotations

import os

import pytest
import redis
from flask import Flask
from sqlalchemy import text

from scim_server.app import create_app
from scim_server.config import ConfigError, Settings
from scim_server.store.db import Database
from tests.api.audit_support import auditor_for
from tests.conftest import IN_CI, Api, Tenant, make_tenant

REDIS_URL = os.environ.get("SCIM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _limited_app(database: Database, limit: str, redis_url: str | None = None) -> Flask:
    settings = Settings(
        database_url=database.url, rate_limit=limit, redis_url=redis_url, auth_failure_limit=2
    )
    return create_app(settings, database=database)


def test_a_connection_over_its_limit_gets_429_with_whole_seconds_and_others_do_not(
    database: Database, tenant: Tenant
) -> None:
    app = _limited_app(database, "3/minute")
    api = Api(app.test_client(), tenant)
    assert [api.get("/Users").status_code for _ in range(3)] == [200, 200, 200]
    refused = api.get("/Users")
    assert refused.status_code == 429
    assert refused.mimetype == "application/scim+json"
    retry_after = refused.headers["Retry-After"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 60
    body = refused.get_json()
    assert body["status"] == "429"
    assert "SCIM_RATE_LIMIT" in body["detail"]
    # writes are refused too, before anything is read or written
    created = api.post(
        "/Users",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "late@x.com"},
    )
    assert created.status_code == 429
    with database.engine.connect() as connection:
        stored = connection.execute(
            text("SELECT count(*) FROM users WHERE org_id = :o"), {"o": tenant.org_id}
        ).scalar_one()
    assert stored == 0
    other = Api(app.test_client(), make_tenant(database))
    assert other.get("/Users").status_code == 200  # another connection has its own budget


def test_refusals_are_logged_but_a_flood_of_them_is_counted_not_written(
    database: Database, tenant: Tenant
) -> None:
    app = _limited_app(database, "1/minute")
    api = Api(app.test_client(), tenant)
    assert api.get("/Users").status_code == 200
    assert [api.get("/Users").status_code for _ in range(6)] == [429] * 6
    events = auditor_for(app, database, tenant.slug).events()
    refused = [event for event in events if event.get("status") == 429]
    assert len(refused) == 2  # SCIM_AUTH_FAILURE_LIMIT of this app: the other four counted


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        message = f"Redis is not reachable at {REDIS_URL}: {type(error).__name__}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: Redis is required)", pytrace=False)
        pytest.skip(f"{message}; set SCIM_TEST_REDIS_URL to run the shared-limit test")
    return REDIS_URL


def test_workers_share_one_budget_through_redis(
    database: Database, tenant: Tenant, redis_url: str
) -> None:
    # two app instances stand for two gunicorn workers (or two hosts) of one deployment
    limit = "4/minute"
    first = Api(_limited_app(database, limit, redis_url).test_client(), tenant)
    second = Api(_limited_app(database, limit, redis_url).test_client(), tenant)
    statuses = [(first if n % 2 else second).get("/Users").status_code for n in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    # and in memory, each worker counts alone (the README says so)
    alone = Api(_limited_app(database, limit).test_client(), tenant)
    assert alone.get("/Users").status_code == 200


def test_a_limit_that_is_not_a_rate_stops_the_server_at_start() -> None:
    for wrong in ("lots", "0/minute", "600/minute;10/second"):
        with pytest.raises(ConfigError) as raised:
            Settings.from_env({"SCIM_RATE_LIMIT": wrong})
        assert "SCIM_RATE_LIMIT" in str(raised.value)
    assert Settings.from_env({"SCIM_RATE_LIMIT": "600/minute"}).rate_limit == "600/minute"


def test_an_unreachable_redis_lets_requests_through_and_says_so(
    database: Database, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """The limit protects the service; its storage failing must not take the service down."""
    app = _limited_app(database, "1/minute", "redis://127.0.0.1:1/0")  # nothing listens there
    api = Api(app.test_client(), tenant)
    with caplog.at_level("WARNING", logger="scim_server.rate_limit"):
        assert [api.get("/Users").status_code for _ in range(3)] == [200, 200, 200]
    warnings = [r for r in caplog.records if "rate limit not enforced" in r.getMessage()]
    assert len(warnings) == 1  # once, not once per request
