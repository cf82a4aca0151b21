"""A flood of bad tokens cannot fill the disk, and the log still says how many were dropped."""

from __future__ import annotations

import time

from sqlalchemy import text

from scim_server.app import create_app
from scim_server.config import Settings
from scim_server.store.db import Database


def _system_failures(database: Database, address: str) -> list[str | None]:
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT detail FROM audit_events WHERE org_id = 0 AND client_ip = :ip "
                "AND operation = 'auth.failed' ORDER BY seq"
            ),
            {"ip": address},
        ).all()
    return [row[0] for row in rows]


def test_suppressed_failures_are_counted_in_the_next_recorded_event(database: Database) -> None:
    settings = Settings(
        database_url=database.url, auth_failure_limit=3, auth_failure_window_seconds=1
    )
    client = create_app(settings, database=database).test_client()
    address = "198.51.100.77"

    def knock() -> int:
        response = client.get(
            "/scim/v2/Users",
            headers={"Authorization": "Bearer scim_not-a-real-token"},
            environ_base={"REMOTE_ADDR": address},
        )
        return response.status_code

    assert [knock() for _ in range(10)] == [401] * 10
    assert len(_system_failures(database, address)) == 3
    time.sleep(1.1)  # a new window
    assert knock() == 401
    details = _system_failures(database, address)
    assert len(details) == 4
    assert details[-1] is not None
    assert "7 similar failures not recorded" in details[-1]
