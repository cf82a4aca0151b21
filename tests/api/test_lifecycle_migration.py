"""Migration 0005 on existing data (issue #5 item 3): active users stay ``active``, inactive ones
become ``deactivated``, every existing user counts as once active, and seat domains are filled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from scim_server.store.db import Database
from scim_server.store.migrate import upgrade
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
