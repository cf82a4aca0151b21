"""Migrations on existing data. 0005 (issue #5 item 3): active users stay ``active``, inactive
ones become ``deactivated``, every existing user counts as once active, and seat domains are
filled. 0010: existing organisations get the mass-deprovisioning guard's default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

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


def test_existing_users_get_their_status(fresh_database: Database) -> None:
    upgrade(fresh_database.engine, "0004")
    with fresh_database.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO organizations (id, slug, name, created_at) VALUES (1, 'o', 'O', :t)"),
            {"t": "2026-01-01 00:00:00"},
        )
        for pk, name, active, data in (
            (1, "on@Acme.com", True, {"userName": "on@Acme.com"}),
            (2, "off", False, {"userName": "off", "emails": [{"value": "off@vendor.com"}]}),
        ):
            connection.execute(
                text(
                    "INSERT INTO users (pk, id, org_id, user_name, active, created_at, "
                    "last_modified, version, data) VALUES (:pk, :id, 1, :n, :a, :t, :t, 1, :d)"
                ),
                {
                    "pk": pk,
                    "id": f"00000000-0000-4000-8000-00000000000{pk}",
                    "n": name,
                    "a": active,
                    "t": "2026-01-01 00:00:00",
                    "d": json.dumps(data),
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
        connection.execute(
            text("INSERT INTO organizations (id, slug, name, created_at) VALUES (1, 'o', 'O', :t)"),
            {"t": "2026-01-01 00:00:00"},
        )
        for pk, name, stored, data in (
            (1, "seat2@acme.com,x@vendor.com", "vendor.com", {}),
            (2, "ok@Vendor.com", "vendor.com", {}),
            (3, "jdoe", "vendor.com", {"emails": [{"value": "e@evil.com;x@vendor.com"}]}),
        ):
            connection.execute(
                text(
                    "INSERT INTO users (pk, id, org_id, user_name, active, status, created_at, "
                    "last_modified, version, data, seat_domain) "
                    "VALUES (:pk, :id, 1, :n, :a, 'active', :t, :t, 1, :d, :s)"
                ),
                {
                    "pk": pk,
                    "id": f"00000000-0000-4000-8000-00000000000{pk}",
                    "n": name,
                    "a": True,
                    "t": "2026-01-01 00:00:00",
                    "d": json.dumps({"userName": name, **data}),
                    "s": stored,
                },
            )
    upgrade(fresh_database.engine)
    with fresh_database.engine.connect() as connection:
        rows = connection.execute(text("SELECT seat_domain FROM users ORDER BY pk")).all()
    assert [row[0] for row in rows] == [None, "vendor.com", None]
