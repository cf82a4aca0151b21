"""Which schema revision this code needs, and which one a database has (``/readyz``).

The server process never loads Alembic (its migration machinery is the CLI's), so the head is
read from the migration files' names: revisions are numbered ``0001``, ``0002``, ... each
revising the one before (``tests/api/test_readiness.py`` holds that convention), and a higher
number is a later schema.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from sqlalchemy import Connection, inspect, text

_VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"
#: Alembic's bookkeeping table.
VERSION_TABLE = "alembic_version"


@cache
def head_revision() -> str:
    """The newest revision among this code's migrations."""
    return max(path.name[:4] for path in _VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def database_revision(connection: Connection) -> str | None:
    """The revision the database is at; ``None`` if ``scim-server init`` never ran on it.

    The table is looked up in the catalogue first: a missing table is an answer, where any
    error reading it (no privilege, a lock beyond the statement timeout) is raised, not taken
    for a database to initialise.
    """
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if found is None else str(found)


def is_behind(revision: str | None) -> bool:
    """Whether a database at ``revision`` lacks some of this code's migrations. A later one
    (another release's init ran first, during a rolling upgrade) is not behind."""
    return revision is None or revision < head_revision()


def is_ahead(revision: str | None) -> bool:
    """Whether a database at ``revision`` was migrated by a later release than this code."""
    return revision is not None and revision > head_revision()
