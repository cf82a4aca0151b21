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


def lone_surrogate(text: str) -> str | None:
    """The first lone UTF-16 surrogate in ``text``, or None.

    A JSON escape such as ``"\\ud800"`` is valid syntax that encodes half a character (RFC 8259
    §8.2): Python decodes it to a surrogate, which neither database stores and no UTF-8 response
    can carry, so it must be refused as the client's mistake before it reaches either."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return text[error.start]
    return None


def escaped(text: str) -> str:
    """``text`` as a JSON string with every non-ASCII character escaped: safe to quote in an
    error detail whatever it holds."""
    return json.dumps(text)
