"""Recognise database errors by constraint name, never by showing their text to a client."""

from __future__ import annotations

import re

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

_SQLITE_INDEX = re.compile(r"UNIQUE constraint failed: index '([^']+)'")


def unique_violation(error: IntegrityError) -> str | None:
    """The name of the unique index or constraint ``error`` violated, if that is what it was."""
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        if sqlstate != "23505":
            return None
        diag = getattr(orig, "diag", None)
        return getattr(diag, "constraint_name", None) or ""
    match = _SQLITE_INDEX.search(str(orig))
    if match:
        return match.group(1)
    if "UNIQUE constraint failed" in str(orig):
        return ""
    return None


#: SQLSTATE of a statement that waited longer than ``lock_timeout`` for a lock (PostgreSQL).
LOCK_NOT_AVAILABLE = "55P03"


def lock_wait_timed_out(error: DBAPIError) -> bool:
    """Whether ``error`` is a lock wait that ran out (``SCIM_LOCK_TIMEOUT_SECONDS``): another
    transaction held what this one needs for longer, a large import say. Worth a retry."""
    return getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


def database_unavailable(error: DBAPIError) -> bool:
    """Whether ``error`` means the database cannot be reached or is busy (worth a retry).

    Connection failures (SQLSTATE class 08, a dropped connection, a server shutting down: 57P0x),
    a lock wait that ran out (:func:`lock_wait_timed_out`) and a locked SQLite file qualify; a
    statement the database refuses does not.
    """
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate is not None:
        # 08: connection; 57P: shutting down; 40001/40P01: serialization failure or deadlock
        # victim, which a retry of the whole request resolves
        return bool(
            sqlstate.startswith("08")
            or sqlstate.startswith("57P")
            or sqlstate in _LOST_TO_A_CONCURRENT_WRITE
            or sqlstate == LOCK_NOT_AVAILABLE
        )
    if type(error.orig).__module__.startswith("psycopg"):
        # no SQLSTATE at all: the server never answered (refused, unreachable, timed out)
        return isinstance(error, OperationalError)
    text = str(error.orig).lower()
    return "database is locked" in text or "unable to open database" in text


#: SQLSTATEs of a transaction the database aborted to let a concurrent one finish: a deadlock
#: victim (40P01) or a serialization failure (40001). Running it again resolves it.
_LOST_TO_A_CONCURRENT_WRITE = frozenset({"40001", "40P01"})


def lost_to_a_concurrent_write(error: DBAPIError) -> bool:
    """Whether the database aborted the transaction only because of another one (PostgreSQL)."""
    return getattr(error.orig, "sqlstate", None) in _LOST_TO_A_CONCURRENT_WRITE
