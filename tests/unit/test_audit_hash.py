"""The audit hash is SHA-256 of a documented canonical form, so an auditor can recompute it
without this server: keys sorted, no whitespace, UTF-8 text as is (not \\u escapes)."""

from __future__ import annotations

import hashlib
import json

from scim_server.audit.chain import event_hash

FIELDS = {
    "seq": 3,
    "detail": "Zoë — ü",
    "changes": {"b": [None, 1], "a": {"z": 1.5, "y": [2, "x"]}},
    "prev_hash": "0" * 64,
    "user_name": None,
    "status": 200,
}


def test_event_hash_is_sha256_of_the_canonical_json() -> None:
    canonical = json.dumps(FIELDS, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert event_hash(FIELDS) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_event_hash_does_not_change_between_releases() -> None:
    # chains sealed by earlier releases must keep verifying
    assert event_hash(FIELDS) == "11e562fbaaa089114244d8bb876602dce4a23c860c2b62c2732da444c168258d"
