"""Which schema revision this code needs, and which one a database has (``/readyz``).

The server process never loads Alembic (its migration machinery is the CLI's), so the head is
read from the migration files' names: revisions are numbered ``0001``, ``0002``, ... each
revising the one before (``tests/api/test_readiness.py`` holds that convention), and a higher
number is a later schema.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

_VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"


@cache
def head_revision() -> str:
    """The newest revision among this code's migrations."""
    return max(path.name[:4] for path in _VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def database_revision(connection: Connection) -> str | None:
    """The revision the database is at; ``None`` if ``scim-server init`` never ran on it.

    Make it the connection's last statement: on PostgreSQL a missing table aborts the
    transaction. A lost connection is raised, not taken for a missing table.
    """
    try:
        found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError as error:
        if error.connection_invalidated:
            raise
        return None
    return None if found is None else str(found)


def is_behind(revision: str | None) -> bool:
    """Whether a database at ``revision`` lacks some of this code's migrations. A later one
    (another release's init ran first, during a rolling upgrade) is not behind."""
    return revision is None or revision < head_revision()
