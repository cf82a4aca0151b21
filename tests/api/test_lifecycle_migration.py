"""Migrations on existing data. 0005 (issue #5 item 3): active users stay ``active``, inactive
ones become ``deactivated``, every existing user counts as once active, and seat domains are
filled. 0010: existing organisations get the mass-deprovisioning guard's default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, text

from scim_server.store.db import Database
from scim_server.store.migrate import alembic_config, upgrade
from tests.conftest import _postgres_database


@pytest.fixture
def fresh_database(database: Database, tmp_path: Path) -> Iterator[Database]:
    if database.is_sqlite:
        db = Database(f"sqlite:///{tmp_path / 'migrate.db'}")
        yield db
        db.dispose()
        return
    for url in _postgres_database():
        db = Database(url)
        yield db
        db.dispose()


EARLIER = "2026-01-01 00:00:00"


def _insert_organization_and_users(connection: Connection, *users: dict[str, Any]) -> None:
    """Organisation 1 and ``users`` as an earlier release stored them: each a user's column
    values (``pk``, ``user_name``, ``active``, ``data`` as a dict, and whatever the schema at
    that revision has), the rest filled in."""
    connection.execute(
        text("INSERT INTO organizations (id, slug, name, created_at) VALUES (1, 'o', 'O', :t)"),
        {"t": EARLIER},
    )
    for user in users:
        row = {
            "id": f"00000000-0000-4000-8000-{user['pk']:012d}",
            "org_id": 1,
            "created_at": EARLIER,
            "last_modified": EARLIER,
            "version": 1,
            **user,
            "data": json.dumps(user["data"]),
        }
        columns = ", ".join(row)
        values = ", ".join(f":{column}" for column in row)
        connection.execute(text(f"INSERT INTO users ({columns}) VALUES ({values})"), row)


def test_existing_users_get_their_status(fresh_database: Database) -> None:
    upgrade(fresh_database.engine, "0004")
    with fresh_database.engine.begin() as connection:
        _insert_organization_and_users(
            connection,
            {
                "pk": 1,
                "user_name": "on@Acme.com",
                "active": True,
                "data": {"userName": "on@Acme.com"},
            },
            {
                "pk": 2,
                "user_name": "off",
                "active": False,
                "data": {"userName": "off", "emails": [{"value": "off@vendor.com"}]},
            },
        )
    upgrade(fresh_database.engine)
    with fresh_database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT user_name, status, activated_at IS NOT NULL, deleted_at, seat_domain "
                "FROM users ORDER BY pk"
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("on@Acme.com", "active", True, None, "acme.com"),
        ("off", "deactivated", True, None, "vendor.com"),
    ]


def test_the_deprovisioning_guard_reaches_existing_organisations(fresh_database: Database) -> None:
    """Migration 0010 gives existing organisations the default limit and keeps every row that
    references them (a copy-and-move alteration of ``organizations`` would cascade on SQLite)."""
    upgrade(fresh_database.engine, "0009")
    with fresh_database.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO organizations (id, slug, name, created_at) VALUES (1, 'o', 'O', :t)"),
            {"t": "2026-01-01 00:00:00"},
        )
        connection.execute(
            text(
                "INSERT INTO users (pk, id, org_id, user_name, active, status, created_at, "
                "last_modified, version, data) VALUES (1, :id, 1, 'kept', :a, 'active', :t, :t, "
                "1, '{}')"
            ),
            {"id": "00000000-0000-4000-8000-000000000001", "a": True, "t": "2026-01-01 00:00:00"},
        )
    upgrade(fresh_database.engine)
    with fresh_database.engine.connect() as connection:
        limit = connection.execute(
            text(
                "SELECT deprovision_limit, deprovision_limit_is_percent, "
                "deprovision_window_minutes FROM organizations"
            )
        ).one()
        users = connection.execute(text("SELECT user_name FROM users")).scalars().all()
    assert (limit[0], bool(limit[1]), limit[2]) == (50, False, 10)
    assert users == ["kept"]
    config = alembic_config(fresh_database.engine)
    with fresh_database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
    with fresh_database.engine.connect() as connection:
        assert connection.execute(text("SELECT user_name FROM users")).scalars().all() == ["kept"]


def test_seat_domains_of_malformed_addresses_are_recomputed(fresh_database: Database) -> None:
    """Migration 0012: a userName that only ended in an exempt domain was stored as that
    domain's user; from the upgrade on it takes a seat. Valid addresses keep their domain."""
    upgrade(fresh_database.engine, "0011")
    with fresh_database.engine.begin() as connection:
        _insert_organization_and_users(
            connection,
            *(
                {
                    "pk": pk,
                    "user_name": name,
                    "active": True,
                    "status": "active",
                    "seat_domain": "vendor.com",
                    "data": {"userName": name, **data},
                }
                for pk, name, data in (
                    (1, "seat2@acme.com,x@vendor.com", {}),
                    (2, "ok@Vendor.com", {}),
                    (3, "jdoe", {"emails": [{"value": "e@evil.com;x@vendor.com"}]}),
                )
            ),
        )
    upgrade(fresh_database.engine)
    with fresh_database.engine.connect() as connection:
        rows = connection.execute(text("SELECT seat_domain FROM users ORDER BY pk")).all()
    assert [row[0] for row in rows] == [None, "vendor.com", None]
