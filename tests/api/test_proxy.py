"""Behind a TLS proxy the log records the IdP's address, and only trusted proxies are believed."""

from __future__ import annotations

from sqlalchemy import text

from scim_server.app import create_app
from scim_server.config import Settings
from scim_server.store.db import Database
from tests.conftest import make_tenant


def _last_client_ip(database: Database, org_id: int) -> str:
    with database.engine.connect() as connection:
        value = connection.execute(
            text("SELECT client_ip FROM audit_events WHERE org_id = :o ORDER BY seq DESC"),
            {"o": org_id},
        ).scalar()
    assert isinstance(value, str)
    return value


def test_forwarded_for_is_used_only_with_trusted_proxy_hops(database: Database) -> None:
    tenant = make_tenant(database, "proxy")
    headers = {"Authorization": f"Bearer {tenant.token}", "X-Forwarded-For": "203.0.113.9"}
    environ = {"REMOTE_ADDR": "10.0.0.2"}

    direct = create_app(Settings(database_url=database.url), database=database)
    assert (
        direct.test_client()
        .get("/scim/v2/Users", headers=headers, environ_base=environ)
        .status_code
        == 200
    )
    assert _last_client_ip(database, tenant.org_id) == "10.0.0.2"

    proxied = create_app(
        Settings(database_url=database.url, trusted_proxy_hops=1), database=database
    )
    response = proxied.test_client().get("/scim/v2/Users", headers=headers, environ_base=environ)
    assert response.status_code == 200
    assert _last_client_ip(database, tenant.org_id) == "203.0.113.9"
