"""Whole numbers as operators and clients write them: ASCII digits only.

Python's ``int()`` also reads other scripts' digits (Arabic-Indic, fullwidth) and underscores
("1_000"), and refuses more than 4,300 digits with its own error: a setting read through it was
silently another number, or a 500. Whole numbers read from text go through here.
"""

from __future__ import annotations

import re

_WHOLE = re.compile(r"\s*([+-]?)([0-9]+)\s*", re.ASCII)
#: More significant digits than any bound of this server: such a number is only "too large".
_MAX_DIGITS = 30


def ascii_integer(text: str) -> int | None:
    """``text`` as an integer (ASCII digits, an optional sign, spaces around), or None. A number
    of more than 30 significant digits reads as 10**30, past every bound: callers that refuse
    out-of-range values quote the text, not the number."""
    match = _WHOLE.fullmatch(text)
    if match is None:
        return None
    digits = match[2].lstrip("0") or "0"
    value = 10**_MAX_DIGITS if len(digits) > _MAX_DIGITS else int(digits)
    return -value if match[1] == "-" else value
