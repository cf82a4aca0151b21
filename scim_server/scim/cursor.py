"""Cursors of cursor-based paging (RFC 9865 §2): opaque, sealed, bound to one query, expiring.

A cursor names a *position* in an ordered result — the sort key and primary key of the last row
of the page just served — never an offset: the next page is a keyset seek (``store.keyset``), so
the last page of a million rows costs what the first does, and rows inserted or deleted between
two pages shift nothing.

Text form: ``2.<sealed>``, base64url without padding (only RFC 3986 unreserved characters, as
RFC 9865 §2 requires). The position and the expiry are sealed with AES-256-GCM under a key
derived from the server's cursor secret, with the *scope* (organisation, resource type, filter,
sort) as associated data. Sealed, not only signed: the primary key is a sequence shared by every
organisation, so a readable one would tell a tenant how many rows others created between two of
its pages, and a sort key may be an attribute the client did not ask to see (``sortBy=emails``),
which would then sit in proxy access logs. The scope is not in the cursor: a cursor replayed with
another filter or sort, on another resource type or by another tenant fails to open exactly like
an altered one, and answers the same ``invalidCursor`` (RFC 9865, security considerations: the
error gives no hint of what the cursor was for).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from scim_server.scim.errors import ExpiredCursor, InvalidCursor
from scim_server.scim.filter_ast import AttrPath, Expr
from scim_server.scim.wire import compact_json

_VERSION = "2"
_NONCE_BYTES = 12
_TAG_BYTES = 16
#: far above any real cursor (a long string sort key); refuses junk before any decoding
MAX_CURSOR_LENGTH = 8192
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")

SortValue = str | int | float | bool | datetime | None

if TYPE_CHECKING:  # pragma: no cover
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM


@dataclass(frozen=True)
class CursorSettings:
    """The server's cursor secret and how long a cursor stays valid (``cursorTimeout``)."""

    secret: bytes
    timeout_seconds: int


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last row's sort key (None without ``sortBy``) and primary key."""

    key: SortValue
    pk: int


def query_scope(
    org_id: int, resource_type: str, filter: Expr | None, sort_by: AttrPath | None, descending: bool
) -> bytes:
    """What a cursor is bound to. Attribute names are case-insensitive (RFC 7643 §2.1), so the
    sort path is compared lower-cased; the filter is its parsed form, so spacing is irrelevant."""
    sort = str(sort_by).lower() if sort_by is not None else None
    return json.dumps([org_id, resource_type, repr(filter), sort, descending]).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sealer(settings: CursorSettings) -> AESGCM:
    """AES-256-GCM under a key derived from the secret for this one use (the secret itself may
    be any length of at least 32 characters).

    ``cryptography`` is imported here, on the first cursor, not with the app: it is 7.5 MiB of
    resident memory per process (its Rust extension and OpenSSL), and Okta and Entra page with
    ``startIndex``, so most deployments never load it."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(hmac.new(settings.secret, b"scim-server cursor v2", hashlib.sha256).digest())


def _encode_key(key: SortValue) -> Any:
    if isinstance(key, datetime):
        return {"dt": key.isoformat()}
    return key


def _decode_key(raw: Any) -> SortValue:
    if isinstance(raw, dict) and set(raw) == {"dt"} and isinstance(raw["dt"], str):
        return datetime.fromisoformat(raw["dt"])
    if raw is None or isinstance(raw, str | int | float | bool):
        return raw
    raise ValueError("unexpected sort key")


def encode(settings: CursorSettings, scope: bytes, position: Position, now: float) -> str:
    """The ``nextCursor`` for a page that ended at ``position``."""
    body = {"k": _encode_key(position.key), "p": position.pk}
    # rounded up: a cursor is valid for at least cursorTimeout seconds, never less
    body["x"] = math.ceil(now) + settings.timeout_seconds
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _sealer(settings).encrypt(nonce, compact_json(body).encode(), scope)
    return f"{_VERSION}.{_b64(nonce + sealed)}"


_INVALID = (
    'the "cursor" is not one this server issued for this query: it was altered, or it belongs to '
    "another filter, sortBy/sortOrder, resource type or organisation. Repeat the query's other "
    "parameters unchanged, or start again with an empty cursor"
)


def decode(settings: CursorSettings, scope: bytes, text: str, now: float) -> Position:
    """The position a cursor names; 400 ``invalidCursor`` unless this server issued it for this
    scope, 400 ``expiredCursor`` once ``cursorTimeout`` has passed since it was issued."""
    if len(text) > MAX_CURSOR_LENGTH or not _UNRESERVED.fullmatch(text):
        raise InvalidCursor(_INVALID)
    version, _, sealed_text = text.partition(".")
    if version != _VERSION:
        raise InvalidCursor(_INVALID)
    try:
        sealed = _unb64(sealed_text)
    except (binascii.Error, ValueError):
        raise InvalidCursor(_INVALID) from None
    if len(sealed) < _NONCE_BYTES + _TAG_BYTES:
        raise InvalidCursor(_INVALID)
    from cryptography.exceptions import InvalidTag  # on the first cursor: see _sealer

    try:
        opened = _sealer(settings).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], scope)
    except InvalidTag:
        raise InvalidCursor(_INVALID) from None
    try:
        body = json.loads(opened)
        position = Position(_decode_key(body["k"]), int(body["p"]))
        expires = int(body["x"])
    except (ValueError, KeyError, TypeError):  # sealed by us: cannot happen
        raise InvalidCursor(_INVALID) from None
    if now > expires:
        raise ExpiredCursor(
            f"the cursor expired: cursors are valid for {settings.timeout_seconds} seconds "
            "between pages (ServiceProviderConfig pagination.cursorTimeout); start again with "
            "an empty cursor"
        )
    return position
