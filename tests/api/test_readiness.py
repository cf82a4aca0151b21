"""``/readyz`` says whether this server can serve (DESIGN §8): the database answers, and its
schema is at least the one this code needs. A pod started before ``scim-server init`` ran (or
on a database an upgrade has not reached yet) must stay out of the load balancer instead of
answering every IdP request with an error."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import make_url

from scim_server.app import create_app
from scim_server.config import Settings
from scim_server.store.db import Database
from scim_server.store.migrate import upgrade
from scim_server.store.revision import head_revision
from tests.conftest import _postgres_database


@contextmanager
def _empty_database_like(database: Database, folder: Path) -> Iterator[Database]:
    if database.is_sqlite:
        fresh = Database(f"sqlite:///{folder / 'fresh.db'}")
        try:
            yield fresh
        finally:
            fresh.dispose()
        return
    for url in _postgres_database():
        fresh = Database(url)
        try:
            yield fresh
        finally:
            fresh.dispose()


def _ready(database: Database) -> tuple[int, dict[str, object]]:
    app: Flask = create_app(Settings(database_url=database.url), database=database)
    response = app.test_client().get("/readyz")
    return response.status_code, response.get_json()


def test_a_current_schema_is_ready(database: Database) -> None:
    status, body = _ready(database)
    assert status == 200
    assert body == {"status": "ok", "database": "reachable", "schema": head_revision()}


def test_a_database_never_initialised_is_not_ready(database: Database, tmp_path: Path) -> None:
    with _empty_database_like(database, tmp_path) as fresh:
        status, body = _ready(fresh)
    assert status == 503
    assert body["schema"] is None
    assert body["required"] == head_revision()
    assert "scim-server init" in str(body["detail"])


def test_a_schema_behind_this_code_is_not_ready_until_init_runs(
    database: Database, tmp_path: Path
) -> None:
    previous = f"{int(head_revision()) - 1:04d}"
    with _empty_database_like(database, tmp_path) as fresh:
        upgrade(fresh.engine, previous)
        status, body = _ready(fresh)
        assert status == 503
        assert body["schema"] == previous
        assert body["required"] == head_revision()
        upgrade(fresh.engine)
        assert _ready(fresh)[0] == 200


def test_a_schema_ahead_of_this_code_stays_ready(database: Database, tmp_path: Path) -> None:
    """During a rolling upgrade the new release's init migrates first; the old pods serve on
    (migrations add, they do not break the release before) until they are replaced."""
    with _empty_database_like(database, tmp_path) as fresh:
        upgrade(fresh.engine)
        newer = f"{int(head_revision()) + 1:04d}"
        with fresh.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": newer})
        status, body = _ready(fresh)
    assert status == 200
    assert body["schema"] == newer


def test_the_head_is_alembics_head() -> None:
    """``head_revision`` reads file names so the server never loads Alembic; the numbering it
    relies on (0001, 0002, ... each revising the one before) is held here."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from scim_server.store.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config(create_engine("sqlite://")))
    assert script.get_current_head() == head_revision()
    for revision in script.walk_revisions():
        number = int(revision.revision)
        assert revision.revision == f"{number:04d}"
        expected_down = None if number == 1 else f"{number - 1:04d}"
        assert revision.down_revision == expected_down


def test_an_unreachable_database_is_not_ready(tmp_path: Path) -> None:
    for url in (
        f"sqlite:///{tmp_path / 'no such folder' / 'scim.db'}",
        "postgresql+psycopg://postgres@127.0.0.1:1/scim",  # nothing listens on port 1
    ):
        unreachable = Database(url)
        try:
            status, body = _ready(unreachable)
        finally:
            unreachable.dispose()
        assert (status, body) == (503, {"status": "unavailable", "database": "unreachable"}), url


def test_a_schema_that_cannot_be_read_is_an_error_not_a_missing_schema(
    database: Database, tmp_path: Path
) -> None:
    """A runtime role without SELECT on alembic_version was told to run ``init``, which cannot
    help; it is now told the database errs, and the server log says why."""
    with _empty_database_like(database, tmp_path) as fresh:
        upgrade(fresh.engine)
        if fresh.is_sqlite:
            # SQLite has no privileges: a view in its place that cannot be read the same way
            with fresh.engine.begin() as connection:
                connection.execute(text("DROP TABLE alembic_version"))
                connection.execute(text("CREATE VIEW alembic_version AS SELECT 1 AS v"))
            reader = fresh
        else:
            role = f"reader_{secrets.token_hex(3)}"
            with fresh.engine.begin() as connection:
                connection.execute(text(f"CREATE ROLE {role} LOGIN"))
                connection.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
                connection.execute(text(f"REVOKE ALL ON alembic_version FROM {role}"))
            reader = Database(make_url(fresh.url).set(username=role).render_as_string(False))
        try:
            status, body = _ready(reader)
        finally:
            if reader is not fresh:
                reader.dispose()
                with fresh.engine.begin() as connection:
                    connection.execute(text(f"DROP OWNED BY {role}"))
                    connection.execute(text(f"DROP ROLE {role}"))
    assert status == 503
    assert body["database"] == "error"
    assert "scim-server init" not in str(body["detail"])
