"""A database that drops the connection in the middle of a /Bulk request stops it at once: no
connection attempt and refusal per remaining operation (which could outlast gunicorn's 60 s
timeout). Nothing applied yet: the whole request is a 503 with ``Retry-After``, as a single
request is. Something applied: what ran is reported, the failing slot 503.

PostgreSQL only: the database itself ends the connection, through a trigger calling
``pg_terminate_backend`` on its own session (SQLSTATE 57P01, what a server shutdown sends).
SQLite has no such thing; its "database is locked" only comes after the 30 s ``busy_timeout``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask

from scim_server.store.db import Database
from tests.api.audit_support import auditor_for, request_id
from tests.api.test_bulk import bulk, post_user, slot_error, user_names
from tests.conftest import Api


@contextmanager
def connection_dropped_on(database: Database, marker: str) -> Iterator[None]:
    """The session that inserts an attribute value equal to ``marker`` is terminated by the
    server; only that value trips it, and the trigger is dropped whatever happens."""
    name = f"bulk_test_drop_{uuid.uuid4().hex[:8]}"
    assert "'" not in marker
    with database.engine.begin() as connection:
        connection.exec_driver_sql(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.value = '{marker}' THEN "
            "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); "
            "END IF; RETURN NEW; END $$"
        )
        connection.exec_driver_sql(
            f"CREATE TRIGGER {name} BEFORE INSERT ON user_attribute_values "
            f"FOR EACH ROW EXECUTE FUNCTION {name}()"
        )
    try:
        yield
    finally:
        with database.engine.begin() as connection:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON user_attribute_values")
            connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")


#: PostgreSQL only (module docstring): the tests are not generated for SQLite at all.
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def postgresql(database: Database) -> Database:
    assert not database.is_sqlite
    return database


def dropping(bulk_id: str, user_name: str, marker: str) -> dict[str, object]:
    return post_user(bulk_id, user_name, emails=[{"value": marker, "type": "work"}])


def test_outage_after_a_success_stops_and_reports_what_ran(
    app: Flask, postgresql: Database, api: Api
) -> None:
    marker = f"drop-{uuid.uuid4().hex[:8]}@example.com"
    rid = request_id("bulk-outage")
    with connection_dropped_on(postgresql, marker):
        started = time.monotonic()
        response = api.post(
            "/Bulk",
            bulk(
                post_user("ok", "ok@example.com"),
                dropping("drop", "drop@example.com", marker),
                post_user("after", "after@example.com"),
                post_user("later", "later@example.com"),
            ),
            headers={"X-Request-Id": rid},
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.get_json()["Operations"]
    assert [result["bulkId"] for result in results] == ["ok", "drop"]
    assert results[0]["status"] == "201"
    slot_error(results[1], 503, None, "database is unavailable")
    assert elapsed < 5  # the pg_sleep never ran: the session was gone first
    assert user_names(api) == ["ok@example.com"]
    events = auditor_for(app, postgresql, api.tenant.slug).events(f'requestId eq "{rid}"')
    assert [(event["operation"], event["status"]) for event in events] == [
        ("user.create", 201),
        ("bulk", 200),
    ]
    assert events[-1]["detail"] == (
        "bulk: 2 of 4 operations run, 1 succeeded, 1 failed; "
        "stopped: the database is unavailable or busy"
    )


def test_outage_before_any_success_is_a_503_for_the_whole_request(
    postgresql: Database, api: Api
) -> None:
    marker = f"drop-{uuid.uuid4().hex[:8]}@example.com"
    with connection_dropped_on(postgresql, marker):
        response = api.post(
            "/Bulk",
            bulk(
                post_user("bad", ""),  # refused: nothing applied yet
                dropping("drop", "drop@example.com", marker),
                post_user("after", "after@example.com"),
            ),
        )
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "5"
    assert "database is unavailable" in response.get_json()["detail"]
    assert user_names(api) == []
