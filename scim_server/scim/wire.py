"""JSON text: compact, as every response body, ETag digest and cursor is written; and the one
thing a JSON decoder accepts that is not text.

``json.dumps`` with any non-default argument builds a new encoder on every call; on the hot
paths (a page renders a hundred ETags, every response one body) that was a tenth of a list
page's CPU in issue #7's profile. One prebuilt encoder writes exactly the same text.
"""

from __future__ import annotations

import json
from typing import Any

_COMPACT = json.JSONEncoder(separators=(",", ":"))


def compact_json(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"))``, without building an encoder per call."""
    return _COMPACT.encode(value)


def unstorable(text: str) -> str | None:
    """The first character of ``text`` that no database stores, or None: NUL (PostgreSQL's text
    cannot hold it), or a lone UTF-16 surrogate.

    Both come from JSON escapes (``"\\u0000"``, ``"\\ud800"``): valid syntax, but a surrogate
    alone encodes half a character (RFC 8259 §8.2) and no UTF-8 response can carry it. They must
    be refused as the client's mistake before they reach a database (a 500 otherwise)."""
    if "\x00" in text:
        return "\x00"
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return text[error.start]
    return None


def unstorable_named(character: str) -> str:
    """What :func:`unstorable` found, for an error detail."""
    if character == "\x00":
        return "the NUL character (U+0000), which no value may hold"
    return (
        f"{escaped(character)}, half of a UTF-16 surrogate pair, which is no character "
        "(RFC 8259 §8.2)"
    )


def storable(text: str) -> str:
    """``text`` with what :func:`unstorable` finds written as its JSON escape (``\\u0000``,
    ``\\ud800``): for quoting a client's malformed text where it must be stored."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def escaped(text: str) -> str:
    """``text`` as a JSON string with every non-ASCII character escaped: safe to quote in an
    error detail whatever it holds."""
    return json.dumps(text)
