"""Schema migrations (Alembic), run in-process by ``scim-server init`` and by the tests."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from scim_server.store.db import write_intent
from scim_server.store.errors import lock_wait_timed_out
from scim_server.store.revision import head_revision, is_ahead

_log = logging.getLogger("scim_server.store")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: PostgreSQL advisory lock key held while migrating (any constant no other code uses).
MIGRATION_LOCK_KEY = 0x5C1A_0001
#: PostgreSQL: how long a migration's statement waits for a table lock, how many times it is
#: tried, and the pause between tries (see :func:`upgrade`).
MIGRATION_LOCK_TIMEOUT_S = 10
MIGRATION_ATTEMPTS = 6
MIGRATION_RETRY_PAUSE_S = 5.0


class MigrationBlocked(RuntimeError):
    """A migration could not get a table lock from the transactions using the table; nothing
    was changed."""


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(
    engine: Engine,
    revision: str = "head",
    *,
    lock_timeout_s: int = MIGRATION_LOCK_TIMEOUT_S,
    attempts: int = MIGRATION_ATTEMPTS,
    pause_s: float = MIGRATION_RETRY_PAUSE_S,
) -> str | None:
    """Create or upgrade the schema to ``revision``; return the revision the database is at.

    Every replica may run ``scim-server init`` as it starts (an init container, a systemd
    ``ExecStartPre``): concurrent callers queue on a lock taken before Alembic reads the current
    revision, so one migrates and the others find the work done. Without it they raced to
    create the same tables and all but one crashed. A database already at ``revision`` is only
    read, so a restart never waits for SQLite's write lock behind a busy server; one that a
    later release has migrated (this release's pods restarting during a rolling upgrade, or
    after a rollback) is left as it is, as ``/readyz`` does.

    On PostgreSQL a migration's ALTER waits for the transactions using its table, and every
    later request on that table waits behind the ALTER: during a rolling upgrade, the running
    servers would stall. Each statement therefore waits at most ``lock_timeout_s``; then the
    whole migration is rolled back and tried again after ``pause_s``, ``attempts`` times in
    all, and :class:`MigrationBlocked` ends it with nothing changed.
    """
    config = alembic_config(engine)
    current = _current_revision(engine)
    if revision == "head" and is_ahead(current):
        _log.warning("schema %s is newer than this release's %s: left as it is", current, revision)
        return current
    if current is not None and current == _exact(config, revision):
        return current
    for attempt in range(1, attempts + 1):
        try:
            _migrate(engine, config, revision, lock_timeout_s)
            break
        except DBAPIError as error:
            if not lock_wait_timed_out(error):
                raise
            if attempt == attempts:
                raise MigrationBlocked(
                    f"the schema migration waited more than {lock_timeout_s} s for a table "
                    f"that other transactions are using (running servers' requests, a long "
                    f"import), {attempts} times; nothing was changed: run init again when the "
                    "database is quieter, or end the long transaction"
                ) from None
            _log.warning(
                "the schema migration waited more than %s s for a table lock (attempt %s of "
                "%s); nothing was changed, trying again in %s s",
                lock_timeout_s,
                attempt,
                attempts,
                pause_s,
            )
            time.sleep(pause_s)
    return _current_revision(engine)


def _migrate(engine: Engine, config: Config, revision: str, lock_timeout_s: int) -> None:
    """One attempt, in one transaction: on PostgreSQL all of it is rolled back when a statement
    waits too long for a table lock."""
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
                # after the turn is ours: another init is waited for as long as it takes, but
                # an ALTER queued behind the servers' transactions would queue every later
                # request behind itself (a rolling upgrade's outage); it gives up instead
                connection.execute(text(f"SET LOCAL lock_timeout = '{int(lock_timeout_s)}s'"))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)


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
