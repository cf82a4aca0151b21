"""Recognise database errors by constraint name, never by showing their text to a client."""

from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError

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
