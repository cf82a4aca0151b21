"""Engine, sessions and transactions for SQLite (embedded default) and PostgreSQL (production).

One transaction per request (DESIGN §2). On SQLite, pysqlite's own transaction handling is
switched off so that SQLAlchemy's BEGIN is real, and a write transaction begins with
``BEGIN IMMEDIATE``: it takes the write lock up front, so two gunicorn workers writing at once
wait on ``busy_timeout`` instead of failing with SQLITE_BUSY when a read lock is upgraded.
"""

from __future__ import annotations

import contextvars
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

_write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "scim_write_intent", default=False
)

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10
_log = logging.getLogger("scim_server.store")


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


@contextmanager
def write_intent() -> Iterator[None]:
    """Transactions begun inside take SQLite's write lock at once (``BEGIN IMMEDIATE``)."""
    token = _write_intent.set(True)
    try:
        yield
    finally:
        _write_intent.reset(token)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # SQLite's built-in lower() folds ASCII only; case-insensitive attributes (userName
        # uniqueness, filters) must fold "Ä" as PostgreSQL does. Deterministic, so the
        # functional indexes may use it.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _write_intent.get() else "BEGIN")


def create_db_engine(url: str, *, pool_size: int = 5, lock_timeout_s: int | None = None) -> Engine:
    """``lock_timeout_s`` (PostgreSQL): how long a statement may wait for a lock before it fails
    (``lock_timeout``); None waits as long as it takes, as the CLI must."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _configure_sqlite(engine)
        return engine
    # psycopg prepares a statement on the server after 5 executions, and PostgreSQL may then
    # switch it to a generic plan that ignores the actual parameters: measured, the member
    # lookup "org_id = $1 AND id IN ($2, ...)" went from an index probe to scanning the
    # organisation's users (23 ms at 10,000 users). Custom plans keep the prepared statement's
    # parse savings and always plan with the real values.
    # The operator's own options (?options=-c search_path=... in the URL, else libpq's
    # PGOPTIONS, which connect_args would override) are kept, before ours.
    given = parsed.query.get("options") or os.environ.get("PGOPTIONS")
    ours = [PLAN_WITH_THE_REAL_PARAMETERS]
    if lock_timeout_s:
        ours.append(f"-c lock_timeout={lock_timeout_s}s")
    options = " ".join([*([given] if isinstance(given, str) else given or ()), *ours])
    return create_engine(
        parsed.difference_update_query(["options"]),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        # statement parameters (user data, invitation tokens) stay out of error messages and logs
        hide_parameters=True,
        # an unreachable host fails in seconds (a 503 the IdP retries), not after the kernel's
        # two minutes of SYN retries with every thread of the worker waiting
        connect_args={"options": options, "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    )


PLAN_WITH_THE_REAL_PARAMETERS = "-c plan_cache_mode=force_custom_plan"


def statistics_warning(engine: Engine) -> str | None:
    """Why this PostgreSQL will not keep the planner's statistics current, or None.

    With autovacuum off (or ``track_counts``, which it needs), the tables are never analyzed
    after an IdP's initial import, and the planner may read every user of the organisation for
    a lookup by id: measured at 10,000 users, 6.1 ms of PostgreSQL CPU per GET instead of 1.8
    (docs/PERFORMANCE.md). The server never runs ``ANALYZE`` itself, so an operator is told.
    """
    if engine.dialect.name != "postgresql":
        return None
    try:
        with engine.connect() as connection:
            settings = connection.execute(
                text("SELECT current_setting('autovacuum'), current_setting('track_counts')")
            ).one()
    except SQLAlchemyError as error:  # a PostgreSQL-like service without these settings
        _log.info("could not read autovacuum settings (%s)", type(error).__name__)
        return None
    names = ("autovacuum", "track_counts")
    off = [name for name, value in zip(names, settings, strict=True) if value != "on"]
    if not off:
        return None
    return (
        f"PostgreSQL has {' and '.join(off)} off: the planner's statistics will not follow the "
        "users an IdP pushes, and lookups by id may read every user of an organisation; turn "
        "it on, or run ANALYZE after a large import (README, PostgreSQL in production)"
    )


def case_folding_warning(engine: Engine) -> str | None:
    """Why this PostgreSQL folds only ASCII letters, or None.

    Case-insensitive attributes (``userName``, emails, group and role names) are compared and
    kept unique with the database's ``lower()``, which follows the database's ``LC_CTYPE``: under
    ``C`` or ``POSIX`` it folds A-Z only, so "ÄNNE@x" and "änne@x" would be two users. The
    schema works either way; an operator is told at ``init``, where the database is chosen.
    """
    if engine.dialect.name != "postgresql":
        return None  # SQLite's lower() is Python's (registered at connect)
    try:
        with engine.connect() as connection:
            folds, ctype = connection.execute(
                text(
                    "SELECT lower('ÄÉΣ') = 'äéσ', datctype FROM pg_database "
                    "WHERE datname = current_database()"
                )
            ).one()
    except SQLAlchemyError as error:
        _log.info("could not read the database's case folding (%s)", type(error).__name__)
        return None
    if folds:
        return None
    return (
        f"this PostgreSQL database folds only ASCII letters (LC_CTYPE {ctype}): userName, emails "
        "and names are case-insensitive for A-Z only; create the database with a UTF-8 locale "
        "(CREATE DATABASE ... LC_CTYPE 'C.UTF-8' TEMPLATE template0) before provisioning users "
        "(README, PostgreSQL in production)"
    )


class SQLiteWriteQueue:
    """Writers of one SQLite file wait their turn in the kernel, not in SQLite's busy handler.

    SQLite's busy handler polls: a writer that finds the file locked sleeps 1, 2, 5, 10, 15,
    20, 25 ... ms between tries, however soon the lock is released. Every request writes (its
    audit event), so under a burst most writers slept far longer than the lock was held
    (measured: create user p99 740 ms with 8 clients). An exclusive ``flock`` on a file beside
    the database, taken before ``BEGIN IMMEDIATE``, queues the server's writers (every thread of
    every gunicorn worker: one descriptor per thread, since a lock belongs to its descriptor)
    and the kernel wakes the next one as soon as the lock is released. The CLI goes through this
    class too and queues the same way. A thread that cannot open the lock file (created by
    another OS user) goes ahead without it and meets SQLite's own locking, as before.

    The wait has no time limit, where SQLite's gave up after ``busy_timeout`` (30 s, a 503):
    measured, polling with a deadline (every 0.5-2 ms) lost most of the gain (p99 create 257 ms
    against 97 ms blocking), because newcomers barge ahead of waiters. A write transaction never
    waits on its client (bodies are read before it begins), so a turn held for long means a
    stuck disk or a bug, where the reads of the server still answer.
    """

    def __init__(self, database_path: str) -> None:
        self._path = f"{database_path}-writelock"
        self._local = threading.local()

    def _descriptor(self) -> int | None:
        owner = getattr(self._local, "owner", None)
        if owner != os.getpid():  # first use in this thread, or inherited across a fork
            self._local.owner = os.getpid()
            try:
                self._local.fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o660)
            except OSError as error:
                _log.warning("SQLite write queue off in this thread (%s): %s", self._path, error)
                self._local.fd = None
        fd: int | None = self._local.fd
        return fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        depth: int = getattr(self._local, "depth", 0)
        if depth:  # a write nested in this thread's own write already holds the turn
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
            return
        fd = self._descriptor()
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        held = fd is not None
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            if held:
                assert fd is not None
                fcntl.flock(fd, fcntl.LOCK_UN)


def _sqlite_file(url: str) -> str | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database)


class Database:
    """The engine and session factory of one process."""

    def __init__(self, url: str, *, pool_size: int = 5, lock_timeout_s: int | None = None) -> None:
        self.url = url
        self.lock_timeout_s = lock_timeout_s
        self.engine = create_db_engine(url, pool_size=pool_size, lock_timeout_s=lock_timeout_s)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        path = _sqlite_file(url)
        self._write_queue = SQLiteWriteQueue(path) if path else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any exception."""
        token = _write_intent.set(write)
        queue = self._write_queue.turn() if write and self._write_queue else nullcontext()
        try:
            with queue, self._sessions() as session, session.begin():
                yield session
        finally:
            _write_intent.reset(token)

    @contextmanager
    def connection(self, *, write: bool, wait_for_locks: bool = False) -> Iterator[Connection]:
        """:meth:`transaction` without an ORM session, for work that holds no ORM state (the
        audit recorder's batches of read events: a session there was a tenth of their cost).

        ``wait_for_locks``: this transaction waits for locks as long as it takes, whatever
        ``lock_timeout_s`` says (one statement more, on PostgreSQL with a lock timeout only).
        The recorder's only lock is the chain head, which writers hold briefly; a read already
        answered must not lose its event because another transaction held the head long.
        """
        token = _write_intent.set(write)
        queue = self._write_queue.turn() if write and self._write_queue else nullcontext()
        try:
            with queue, self.engine.begin() as connection:
                if wait_for_locks and self.lock_timeout_s and not self.is_sqlite:
                    connection.exec_driver_sql("SET LOCAL lock_timeout = 0")
                yield connection
        finally:
            _write_intent.reset(token)

    def reader(self) -> Session:
        """A session for reads whose transaction begins at its first statement and ends when
        the caller closes it: the request's token lookup and its read share one transaction."""
        return self._sessions()

    def dispose(self) -> None:
        self.engine.dispose()
