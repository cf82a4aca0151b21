"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, exc, inspect, text
from sqlalchemy.engine import make_url

from scim_server.store.db import Database, create_db_engine
from scim_server.store.migrate import MigrationBlocked, alembic_config, upgrade
from scim_server.store.models import Base
from tests.conftest import Api, _postgres_database

#: SQLAlchemy reflects ``lower(user_name) COLLATE "C"`` without its COLLATE, so autogenerate
#: always sees it changed; test_expression_indexes_exist checks its definition instead.
_NOT_REFLECTED_FAITHFULLY = {"ix_users_org_user_name_codepoint"}


def _comparable(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "index" and name in _NOT_REFLECTED_FAITHFULLY)


def test_migrations_match_the_models(database: Database) -> None:
    with warnings.catch_warnings():
        # SQLite cannot reflect expression indexes; test_expression_indexes_exist covers them.
        warnings.simplefilter("ignore", exc.SAWarning)
        warnings.simplefilter("ignore", UserWarning)
        with database.engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "include_object": _comparable},
            )
            differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_expression_indexes_exist(database: Database) -> None:
    wanted = {"ux_users_org_user_name", "ix_user_attribute_values_org_attr_value"}
    with database.engine.connect() as connection:
        if database.is_sqlite:
            rows = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
        else:
            rows = connection.execute(text("SELECT indexname FROM pg_indexes"))
        names = {row[0] for row in rows}
    assert wanted <= names
    assert inspect(database.engine).has_table("audit_events")
    if not database.is_sqlite:  # code-point order for sortBy=userName (SQLite's is built in)
        with database.engine.connect() as connection:
            definition = connection.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                {"n": "ix_users_org_user_name_codepoint"},
            ).scalar_one()
        assert 'lower((user_name)::text) COLLATE "C", pk' in definition, definition
        assert "WHERE (deleted_at IS NULL)" in definition, definition


def test_postgresql_connections_always_plan_with_the_real_parameters(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generic plans of auto-prepared statements ignored the actual ids of a member lookup and
    scanned the organisation's users; every connection must use custom plans."""
    if database.is_sqlite:
        with database.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        return
    with database.engine.connect() as connection:
        assert connection.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    # an operator's own options in the URL are kept beside it (they were silently replaced)
    url = make_url(database.url).update_query_dict({"options": "-c statement_timeout=12345"})
    engine = create_db_engine(url.render_as_string(hide_password=False), pool_size=1)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "12345ms"
            assert connection.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    finally:
        engine.dispose()
    # as are libpq's PGOPTIONS when the URL gives none
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=9MB")
    engine = create_db_engine(database.url, pool_size=1)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW work_mem")).scalar() == "9MB"
            assert connection.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    finally:
        engine.dispose()


def test_the_provisioning_log_counts_past_32_bits(api: Api, database: Database) -> None:
    """One event per request answered: ``audit_events.pk`` and a chain's ``seq`` must not stop
    at 2**31 - 1 (INTEGER on PostgreSQL before migration 0008)."""
    far = 2**31 + 5
    with database.engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_chains SET last_seq = :far WHERE org_id = :org"),
            {"far": far, "org": api.tenant.org_id},
        )
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT setval('audit_events_pk_seq', :far)"), {"far": far})
    assert api.get("/Users").status_code == 200  # a read writes its event
    with database.engine.connect() as connection:
        pk, seq = connection.execute(
            text("SELECT pk, seq FROM audit_events WHERE org_id = :org ORDER BY seq DESC"),
            {"org": api.tenant.org_id},
        ).first()
    assert seq == far + 1
    if database.engine.dialect.name == "postgresql":
        assert pk == far + 1


def test_multi_valued_attributes_count_past_32_bits(api: Api, database: Database) -> None:
    """Every create and every changed multi-valued attribute takes new ``user_attribute_values``
    keys from one sequence for all organisations: they must not stop at 2**31 - 1 (INTEGER on
    PostgreSQL before migration 0009)."""
    far = 2**31 + 5
    first = api.create_user("first@example.com", emails=[{"value": "first@example.com"}])
    with database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT setval('user_attribute_values_pk_seq', :far)"), {"far": far}
            )
        else:  # SQLite's next rowid is the largest one plus one
            connection.execute(
                text(
                    "UPDATE user_attribute_values SET pk = :far"
                    " WHERE pk = (SELECT max(pk) FROM user_attribute_values)"
                ),
                {"far": far},
            )
    emails = [{"value": "second@example.com", "primary": True}, {"value": "s@example.com"}]
    second = api.create_user("second@example.com", emails=emails)
    with database.engine.connect() as connection:
        keys = (
            connection.execute(
                text(
                    "SELECT pk FROM user_attribute_values WHERE org_id = :org AND value LIKE 's%'"
                ),
                {"org": api.tenant.org_id},
            )
            .scalars()
            .all()
        )
    assert sorted(keys) == [far + 1, far + 2]
    found = api.list_users(filter='emails.value eq "s@example.com"')
    assert [user["id"] for user in found["Resources"]] == [second["id"]]
    assert api.get(f"/Users/{first['id']}").get_json()["emails"][0]["value"] == "first@example.com"


@contextmanager
def _empty_database_like(database: Database, folder: Path) -> Iterator[str]:
    if database.is_sqlite:
        yield f"sqlite:///{folder / 'empty.db'}"
    else:
        yield from _postgres_database()


def test_concurrent_inits_on_an_empty_database_all_succeed(
    database: Database, tmp_path: Path
) -> None:
    """Every replica (a Kubernetes init container, a systemd ExecStartPre on each host) runs
    ``scim-server init`` at start; on one empty database they must queue, not crash. On
    PostgreSQL the database defaults to REPEATABLE READ, where a waiter's snapshot taken at the
    lock would miss the tables the winner created."""
    with _empty_database_like(database, tmp_path) as url:
        if not database.is_sqlite:
            _default_isolation(url, "repeatable read")
        env = {**os.environ, "SCIM_DATABASE_URL": url}
        inits = [
            subprocess.Popen(
                [sys.executable, "-m", "scim_server.cli", "init"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [init.communicate(timeout=120)[0] for init in inits]
        assert [init.returncode for init in inits] == [0, 0, 0], outputs
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                versions = connection.execute(text("SELECT version_num FROM alembic_version"))
                assert [row[0] for row in versions] == [_head_revision()]
        finally:
            engine.dispose()


def test_init_on_a_current_sqlite_database_does_not_wait_for_the_write_lock(
    tmp_path: Path,
) -> None:
    """systemd runs ``init`` before every start; a restart beside a long write (an import in
    the CLI holds the write lock until it ends) must not fail after the 30 s busy timeout."""
    path = tmp_path / "busy.db"
    env = {**os.environ, "SCIM_DATABASE_URL": f"sqlite:///{path}"}
    init = [sys.executable, "-m", "scim_server.cli", "init"]
    subprocess.run(init, env=env, check=True, capture_output=True, timeout=60)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        again = subprocess.run(init, env=env, capture_output=True, text=True, timeout=20)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert again.returncode == 0, again.stdout + again.stderr


def _default_isolation(url: str, level: str) -> None:
    name = make_url(url).database
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(
                text(f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = '{level}'")
            )
    finally:
        engine.dispose()


def _head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config(create_engine("sqlite://")))
    head = script.get_current_head()
    assert head is not None
    return head


def test_init_leaves_a_schema_of_a_later_release_as_it_is(
    database: Database, tmp_path: Path
) -> None:
    """During a rolling upgrade (or after a rollback) a pod of the older release restarts and
    runs init on a database the newer one has migrated: it must start, as /readyz lets it."""
    with _empty_database_like(database, tmp_path) as url:
        engine = create_engine(url)
        try:
            upgrade(engine)
            newer = f"{int(_head_revision()) + 1:04d}"
            with engine.begin() as connection:
                connection.execute(
                    text("UPDATE alembic_version SET version_num = :v"), {"v": newer}
                )
        finally:
            engine.dispose()
        init = subprocess.run(
            [sys.executable, "-m", "scim_server.cli", "init"],
            env={**os.environ, "SCIM_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert init.returncode == 0, init.stdout + init.stderr
    assert f"schema {newer} is newer than this release's {_head_revision()}" in init.stdout


def test_relative_revisions_still_upgrade(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'steps.db'}")
    try:
        previous = f"{int(_head_revision()) - 1:04d}"
        assert upgrade(engine, previous) == previous
        assert upgrade(engine, "+1") == _head_revision()
        assert upgrade(engine) == _head_revision()
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_migration_kept_waiting_by_traffic_gives_up_with_nothing_changed(
    database: Database, tmp_path: Path
) -> None:
    """During a rolling upgrade, a new pod's ``init`` migrates while the old pods serve. An
    ALTER waits for the transactions using its table, and every request after it waits behind
    the ALTER: the running servers stall. The migration's statements wait briefly instead, the
    whole migration is rolled back and tried again, and in the end it gives up with nothing
    changed; once the table is free it runs."""
    with _empty_database_like(database, tmp_path) as url:
        engine = create_engine(url)
        try:
            assert upgrade(engine, "0015") == "0015"
            raised: list[BaseException] = []

            def migrate() -> None:
                try:
                    upgrade(engine, lock_timeout_s=1, attempts=2, pause_s=0)
                except BaseException as error:  # handed to the test's thread
                    raised.append(error)

            init = threading.Thread(target=migrate, daemon=True)
            with engine.connect() as server, server.begin():
                # a running server's transaction reading the table 0016 alters
                server.execute(text("SELECT count(*) FROM invitations")).scalar_one()
                init.start()
                init.join(timeout=30)
                assert not init.is_alive(), "the migration waited as long as the table was used"
            (blocked,) = raised
            assert isinstance(blocked, MigrationBlocked), blocked
            assert "2 times; nothing was changed" in str(blocked)
            with engine.connect() as connection:
                version = connection.execute(text("SELECT version_num FROM alembic_version"))
                assert version.scalar_one() == "0015"
            assert upgrade(engine, lock_timeout_s=1) == _head_revision()
        finally:
            engine.dispose()
