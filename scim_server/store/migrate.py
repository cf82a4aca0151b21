"""Schema migrations (Alembic), run in-process by ``scim-server init`` and by the tests."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, text

from scim_server.store.db import write_intent
from scim_server.store.revision import head_revision, is_ahead

_log = logging.getLogger("scim_server.store")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: PostgreSQL advisory lock key held while migrating (any constant no other code uses).
MIGRATION_LOCK_KEY = 0x5C1A_0001


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Create or upgrade the schema to ``revision``; return the revision the database is at.

    Every replica may run ``scim-server init`` as it starts (an init container, a systemd
    ``ExecStartPre``): concurrent callers queue on a lock taken before Alembic reads the current
    revision, so one migrates and the others find the work done. Without it they raced to
    create the same tables and all but one crashed. A database already at ``revision`` is only
    read, so a restart never waits for SQLite's write lock behind a busy server; one that a
    later release has migrated (this release's pods restarting during a rolling upgrade, or
    after a rollback) is left as it is, as ``/readyz`` does.
    """
    config = alembic_config(engine)
    current = _current_revision(engine)
    if revision == "head" and is_ahead(current):
        _log.warning("schema %s is newer than this release's %s: left as it is", current, revision)
        return current
    if current is not None and current == _exact(config, revision):
        return current
    with write_intent(), engine.connect() as connection:
        postgresql = connection.dialect.name == "postgresql"
        if postgresql:
            # a waiter's snapshot must be taken after the lock, to see the tables the winner
            # created: per statement, whatever the database's default isolation level
            connection.execution_options(isolation_level="READ COMMITTED")
        with connection.begin():
            if postgresql:
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    return _current_revision(engine)


def _exact(config: Config, revision: str) -> str | None:
    """``revision`` as one revision id ("head" resolved), or None for anything relative."""
    try:
        script = ScriptDirectory.from_config(config).get_revision(revision)
    except CommandError:  # "+1", "heads", ...: Alembic resolves those against the database
        return None
    return None if script is None else str(script.revision)


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        current: str | None = MigrationContext.configure(connection).get_current_revision()
        return current


def autogenerate(engine: Engine, message: str) -> None:
    """Write a new revision from the difference between the models and ``engine``'s schema,
    numbered after the head (``store.revision`` reads the head from those numbers)."""
    config = alembic_config(engine)
    next_id = f"{int(head_revision()) + 1:04d}"
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True, rev_id=next_id)
