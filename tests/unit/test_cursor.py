"""Paging cursors (``scim.cursor``, RFC 9865): round trip, query binding, tampering, expiry."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from scim_server.scim import cursor
from scim_server.scim.cursor import CursorSettings, Position
from scim_server.scim.errors import ExpiredCursor, InvalidCursor
from scim_server.scim.filter import parse_filter
from scim_server.scim.filter_ast import AttrPath

SETTINGS = CursorSettings(secret=b"k" * 32, timeout_seconds=600)
NOW = 1_800_000_000.0
SCOPE = cursor.query_scope(7, "User", parse_filter('userName sw "a"'), AttrPath("title"), False)


@pytest.mark.parametrize(
    "key",
    [None, "bjensen", "", 42, 2.5, True, datetime(2026, 11, 25, 17, 0, 0, 123456, tzinfo=UTC)],
)
def test_a_cursor_gives_back_the_position_it_was_made_for(key: cursor.SortValue) -> None:
    position = Position(key, 1234)
    text = cursor.encode(SETTINGS, SCOPE, position, NOW)
    assert cursor.decode(SETTINGS, SCOPE, text, NOW + 600) == position


def test_a_cursor_uses_only_unreserved_characters() -> None:
    text = cursor.encode(SETTINGS, SCOPE, Position("ü/+= ?&", 1), NOW)
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@pytest.mark.parametrize(
    "scope",
    [
        cursor.query_scope(8, "User", parse_filter('userName sw "a"'), AttrPath("title"), False),
        cursor.query_scope(7, "Group", parse_filter('userName sw "a"'), AttrPath("title"), False),
        cursor.query_scope(7, "User", parse_filter('userName sw "b"'), AttrPath("title"), False),
        cursor.query_scope(7, "User", None, AttrPath("title"), False),
        cursor.query_scope(7, "User", parse_filter('userName sw "a"'), AttrPath("userName"), False),
        cursor.query_scope(7, "User", parse_filter('userName sw "a"'), AttrPath("title"), True),
        cursor.query_scope(7, "User", parse_filter('userName sw "a"'), None, False),
    ],
)
def test_a_cursor_is_refused_for_any_other_query(scope: bytes) -> None:
    text = cursor.encode(SETTINGS, SCOPE, Position("x", 1), NOW)
    with pytest.raises(InvalidCursor):
        cursor.decode(SETTINGS, scope, text, NOW)


def test_the_scope_ignores_filter_spacing_and_sort_attribute_case() -> None:
    spaced = cursor.query_scope(
        7, "User", parse_filter('userName  sw   "a"'), AttrPath("TITLE"), False
    )
    assert spaced == SCOPE


def test_an_altered_or_foreign_cursor_is_invalid() -> None:
    text = cursor.encode(SETTINGS, SCOPE, Position("x", 1), NOW)
    version, sealed = text.split(".")
    forged = cursor.encode(CursorSettings(b"o" * 32, 600), SCOPE, Position("x", 1), NOW)
    flipped = sealed[:20] + ("B" if sealed[20] == "A" else "A") + sealed[21:]
    for bad in (
        forged,
        f"{version}.{flipped}",
        f"{version}.{sealed[:-1]}",
        f"{version}.{sealed[:20]}",
        f"1.{sealed}",
        f"{version}.{sealed}.x",
        version,
        "",
        "x" * (cursor.MAX_CURSOR_LENGTH + 1),
        f"{version}.{sealed}=",
    ):
        with pytest.raises(InvalidCursor):
            cursor.decode(SETTINGS, SCOPE, bad, NOW)


def test_a_cursor_reveals_neither_the_row_number_nor_the_sort_key() -> None:
    """The primary key is a sequence shared by every organisation; the sort key may be an
    attribute the client did not ask for. Neither may be readable from the cursor."""
    key = "alice.secret@example.com"
    first = cursor.encode(SETTINGS, SCOPE, Position(key, 123456789), NOW)
    second = cursor.encode(SETTINGS, SCOPE, Position(key, 123456789), NOW)
    assert first != second  # a fresh nonce each time: equal positions do not look equal
    opened = base64.urlsafe_b64decode(first.split(".")[1] + "==")
    for secret in (key.encode(), b"123456789", b"alice"):
        assert secret not in opened
    assert cursor.decode(SETTINGS, SCOPE, first, NOW) == Position(key, 123456789)


def test_a_cursor_expires_after_the_timeout() -> None:
    text = cursor.encode(SETTINGS, SCOPE, Position("x", 1), NOW)
    assert cursor.decode(SETTINGS, SCOPE, text, NOW + 600).pk == 1
    with pytest.raises(ExpiredCursor) as raised:
        cursor.decode(SETTINGS, SCOPE, text, NOW + 601)
    assert "600 seconds" in raised.value.detail


def test_a_cursor_issued_late_in_a_second_is_still_valid_for_the_whole_timeout() -> None:
    text = cursor.encode(SETTINGS, SCOPE, Position("x", 1), NOW + 0.99)
    assert cursor.decode(SETTINGS, SCOPE, text, NOW + 0.99 + 600).pk == 1
