"""Replays of what Okta and Entra ID send, step by step, with every status and read-back checked.

The sequences in ``data/`` are the project's copies of the IdPs' published request shapes
(transcribed in ``../shared/idp-corpus``; each file names its sources). ``{{u}}`` is a per-run
suffix, ``{{uuid}}`` a fresh UUID per use; ``save`` takes a response field, ``save_sent`` a
field of the request sent, ``save_if_unset`` only when the name is still unset.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.conftest import Api

DATA = Path(__file__).resolve().parent / "data"
SEQUENCES = sorted(path.name for path in DATA.glob("*.json"))
_TEMPLATE = re.compile(r"\{\{(\w+)\}\}")


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "uuid":
                return str(uuid.uuid4())
            return names[key]

        return _TEMPLATE.sub(replace, value)
    if isinstance(value, list):
        return [_fill(item, names) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, names) for key, item in value.items()}
    return value


def _split(path: str) -> list[str]:
    """``urn:...:User.employeeNumber`` keeps its URN (which has dots) as one key."""
    if path.startswith("urn:"):
        urn, _, rest = path.rpartition(":")
        head, _, tail = rest.partition(".")
        return [f"{urn}:{head}", *([tail] if tail else [])]
    return re.findall(r"[^.\[\]]+(?:\[[^\]]*\])?", path)


_MISSING = object()


def _get(document: Any, path: str) -> Any:
    current: Any = document
    for part in _split(path):
        match = re.fullmatch(r"([^\[]+)(?:\[([^\]]*)\])?", part)
        assert match is not None, part
        key, selector = match.groups()
        if isinstance(current, list):  # after [*]: map over the elements
            current = [item.get(key, _MISSING) for item in current if isinstance(item, dict)]
            continue
        if not isinstance(current, dict) or key not in current:
            return _MISSING
        current = current[key]
        if selector is None:
            continue
        if selector == "*":
            continue
        if selector.isdigit():
            current = current[int(selector)] if len(current) > int(selector) else _MISSING
            continue
        wanted_key, _, wanted_value = selector.removeprefix("?").partition("=")
        found = [item for item in current if item.get(wanted_key) == wanted_value]
        current = found[0] if found else _MISSING
    return current


def _check(document: Any, check: list[Any], names: dict[str, str], step: str) -> None:
    path, op, *rest = check
    actual = _get(document, path)
    expected = _fill(rest[0], names) if rest else None
    where = f"{step}: {path} {op} {expected!r}, got {actual!r}"
    if op == "eq":
        assert actual == expected, where
    elif op == "contains":
        assert isinstance(actual, list), where
        assert expected in actual, where
    elif op == "not_contains":
        assert actual is _MISSING or expected not in actual, where
    elif op == "nonempty":
        assert actual not in (_MISSING, None, "", []), where
    elif op == "is_int":
        assert isinstance(actual, int), where
        assert not isinstance(actual, bool), where
    elif op == "absent":
        assert actual is _MISSING, where
    else:  # pragma: no cover - a new op in the data must be taught here
        raise AssertionError(f"{step}: unknown check {op}")


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_replay(api: Api, sequence: str) -> None:
    recorded = json.loads((DATA / sequence).read_text(encoding="utf-8"))
    headers = dict(recorded.get("headers") or {})
    names: dict[str, str] = {"u": uuid.uuid4().hex[:10]}
    for step in recorded["steps"]:
        url = urlsplit(_fill(step["path"], names))
        kwargs: dict[str, Any] = {
            "query_string": parse_qsl(url.query, keep_blank_values=True),
            "headers": {**headers, **(step.get("headers") or {})},
        }
        sent: Any = None
        if "body" in step:
            sent = _fill(step["body"], names)
            kwargs["json"] = sent
            kwargs["content_type"] = "application/scim+json"
        elif "raw" in step:
            raw = _fill(step["raw"], names)
            sent = json.loads(raw)
            kwargs["data"] = raw
            kwargs["content_type"] = "application/scim+json"
        response = api.request(step["method"], url.path, **kwargs)
        assert response.status_code in step["expect_status"], (
            f"{step['id']} {step['method']} {url.path}: {response.status_code} "
            f"{response.get_data(as_text=True)[:500]}"
        )
        document = response.get_json(silent=True) if response.data else None
        for name, field in (step.get("save") or {}).items():
            names[name] = _get(document, field)
        for name, field in (step.get("save_if_unset") or {}).items():
            if name not in names and response.status_code < 300:
                names[name] = _get(document, field)
        for name, field in (step.get("save_sent") or {}).items():
            names[name] = _get(sent, field)
        for check in step.get("checks") or []:
            _check(document, check, names, step["id"])
