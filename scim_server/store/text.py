"""Case-insensitive comparisons of text, folded by the database on both sides.

Python's ``str.lower`` and PostgreSQL's ``lower()`` disagree on some letters: Python lowers "İ"
(U+0130) to "i" and a combining dot, PostgreSQL to "i"; Python lowers a final capital sigma to
the final small sigma (U+03C2), PostgreSQL to the small sigma (U+03C3). A value lowered in
Python and compared with ``lower(column)`` then misses the very row it names, while the unique
index on ``lower(column)`` still refuses a second one. Folding both sides with the database's
``lower()`` keeps lookups and uniqueness on one rule (on SQLite ``lower()`` is Python's,
registered in ``db.py``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, String, func, literal

#: The escape character of the LIKE patterns built here and by the filter compiler.
LIKE_ESCAPE = "/"


def folded(value: Any) -> ColumnElement[str]:
    """``value`` lower-cased by the database, as a column compared with it is."""
    if isinstance(value, ColumnElement):
        return func.lower(value)
    return func.lower(literal(value, String()))


def same_text(column: SQLColumnExpression[Any], value: str) -> ColumnElement[bool]:
    """``column`` equals ``value`` whatever the case."""
    return func.lower(column) == folded(value)


def like_pattern(text: str, op: str) -> str:
    """A LIKE pattern matching ``text`` literally: contained (``co``), at the start (``sw``) or
    at the end (``ew``)."""
    escaped = (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return {"co": f"%{escaped}%", "sw": f"{escaped}%", "ew": f"%{escaped}"}[op]
