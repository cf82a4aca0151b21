"""Compact JSON text, as every response body, ETag digest and cursor is written.

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
