"""Signed checkpoints of the provisioning log (DESIGN §6): a key the database never holds.

The hash chain shows an edit, but whoever can write to the database can rewrite an event and
reseal every later hash, and the chain then verifies. A checkpoint event (``audit.checkpoint``,
or the one ``audit.prune`` leaves) carries an HMAC-SHA256, under a key given to the CLI and
stored nowhere, of the chain's state just before it (its own sequence number and the previous
event's hash) and of its own ``changes``. Resealing any event before a checkpoint changes that
state, and without the key the signature cannot follow; a prune's record of where it cut
cannot be altered either.

Keys are named by an id derived from them (it reveals nothing of the key), so several can be
configured at once: the first signs, all verify, and a key is rotated without losing the
checks of the checkpoints it signed.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Events that carry a signature when a key signed them.
CHECKPOINT_OPERATIONS = frozenset({"audit.checkpoint", "audit.prune"})
#: Where a checkpoint's ``changes`` hold its signature; the rest of ``changes`` is signed.
KEY_ID = "keyId"
SIGNATURE = "signature"
#: When the checkpoint was signed, inside what is signed: the event's own ``time`` is sealed
#: by the hash chain alone, which a database writer can recompute.
SIGNED_AT = "signedAt"
#: Where the log started when the checkpoint was signed (``{"seq", "prevHash"}`` of its first
#: stored event): a prefix removed later, whatever record claims it was pruned, shows.
LOG_START = "logStart"

_PURPOSE = "scim-server audit checkpoint v1"


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: bytes = field(repr=False)

    @classmethod
    def from_text(cls, text: str) -> SigningKey:
        secret = text.encode("utf-8")
        digest = hashlib.sha256(b"scim-server audit key id\x00" + secret).hexdigest()
        return cls(digest[:16], secret)


def signing_keys(texts: Iterable[str]) -> tuple[SigningKey, ...]:
    """The configured keys, the signing one first."""
    return tuple(SigningKey.from_text(text) for text in texts)


def _message(org_id: int, seq: int, prev_hash: str, content: Mapping[str, Any]) -> bytes:
    document = {
        "purpose": _PURPOSE,
        "org_id": org_id,
        "seq": seq,
        "prev_hash": prev_hash,
        "changes": content,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _mac(key: SigningKey, message: bytes) -> str:
    return hmac.new(key.secret, message, hashlib.sha256).hexdigest()


def signed_changes(
    key: SigningKey, org_id: int, seq: int, prev_hash: str, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """``changes`` of the checkpoint that will be event ``seq`` after ``prev_hash``, signed."""
    content = {name: value for name, value in changes.items() if name not in (KEY_ID, SIGNATURE)}
    return {
        **content,
        KEY_ID: key.key_id,
        SIGNATURE: _mac(key, _message(org_id, seq, prev_hash, content)),
    }


class Check(enum.Enum):
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown key"
    VALID = "valid"
    INVALID = "invalid"


def check(
    keys: Iterable[SigningKey],
    org_id: int,
    seq: int,
    prev_hash: str,
    changes: object,
) -> Check:
    """Whether a stored checkpoint's signature holds under one of ``keys``."""
    if changes is None:
        return Check.UNSIGNED
    if not isinstance(changes, Mapping):
        return Check.INVALID
    key_id, signature = changes.get(KEY_ID), changes.get(SIGNATURE)
    if key_id is None and signature is None:
        return Check.UNSIGNED
    if not isinstance(key_id, str) or not isinstance(signature, str):
        return Check.INVALID
    # compared as bytes: compare_digest refuses str with characters beyond ASCII
    key = next((key for key in keys if _same(key.key_id, key_id)), None)
    if key is None:
        return Check.UNKNOWN_KEY
    content = {name: value for name, value in changes.items() if name not in (KEY_ID, SIGNATURE)}
    expected = _mac(key, _message(org_id, seq, prev_hash, content))
    return Check.VALID if _same(expected, signature) else Check.INVALID


def _same(ours: str, stored: str) -> bool:
    return hmac.compare_digest(ours.encode("utf-8"), stored.encode("utf-8", "surrogatepass"))
