"""A request body that is not valid UTF-8 is a 400 ``invalidSyntax`` that writes nothing but its
event, on every endpoint that reads a JSON body; and nothing the server answers, logs or records
for it holds half a UTF-16 surrogate pair.

Found by fuzzing: the bytes ``ED A0 80`` (U+D800 written as if UTF-8 could carry it, which RFC
3629 §3 forbids) passed the JSON decoder, which reads bytes with ``surrogatepass``, and reached the
database as a lone surrogate: 500 from POST, PUT and PATCH, and in a /Bulk operation's slot.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from scim_server.store.db import Database
from tests.api.audit_support import Auditor, auditor_for, request_id
from tests.api.test_admin_api import admin_token
from tests.api.test_bulk import BULK_REQUEST, GROUP_SCHEMA
from tests.api.test_users_errors import assert_error
from tests.conftest import PATCH_SCHEMA, SCIM, USER_SCHEMA, Api, store_snapshot

#: U+D800 encoded the way UTF-8 encodes other code points: not UTF-8 (RFC 3629 §3).
HALF = b"\xed\xa0\x80"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def holds_half_pair(value: Any) -> bool:
    """Whether any string in ``value`` (keys included) holds a lone surrogate."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(holds_half_pair(k) or holds_half_pair(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_half_pair(item) for item in value)
    return False


def answer_is_clean(response: TestResponse) -> None:
    """The answer is UTF-8 and no string in it decodes to half a surrogate pair."""
    text = response.get_data().decode("utf-8")  # strict
    assert not holds_half_pair(json.loads(text)), text


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


@pytest.fixture
def targets(api: Api) -> dict[str, str]:
    user = api.create_user("seed@example.com", displayName="Seed")
    group = api.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Seeds"}).get_json()
    return {"user": user["id"], "group": group["id"]}


def _user(extra: bytes) -> bytes:
    return b'{"schemas": ["%s"], "userName": "new@example.com"%s}' % (USER_SCHEMA.encode(), extra)


def _patch(path: bytes, value: bytes) -> bytes:
    return b'{"schemas": ["%s"], "Operations": [{"op": "add", "path": "%s", "value": %s}]}' % (
        PATCH_SCHEMA.encode(),
        path,
        value,
    )


#: (method, path with {user}/{group}, body, operation recorded)
SENT: list[tuple[str, str, bytes, str]] = [
    (
        "POST",
        "/Users",
        b'{"schemas": ["%s"], "userName": "x%s@x.com"}' % (USER_SCHEMA.encode(), HALF),
        "user.create",
    ),
    ("POST", "/Users", _user(b', "x%s": 1' % HALF), "user.create"),  # in a member name
    (
        "PUT",
        "/Users/{user}",
        b'{"schemas": ["%s"], "userName": "seed@example.com", "displayName": "S%s"}'
        % (USER_SCHEMA.encode(), HALF),
        "user.replace",
    ),
    ("PATCH", "/Users/{user}", _patch(b"displayName", b'"S%s"' % HALF), "user.patch"),
    ("PATCH", "/Users/{user}", _patch(b"nick%sName" % HALF, b'"S"'), "user.patch"),  # in a path
    (
        "POST",
        "/Groups",
        b'{"schemas": ["%s"], "displayName": "G%s"}' % (GROUP_SCHEMA.encode(), HALF),
        "group.create",
    ),
    ("PATCH", "/Groups/{group}", _patch(b"members", b'[{"value": "m%s"}]' % HALF), "group.patch"),
    (
        "POST",
        "/Users/.search",
        b'{"schemas": ["%s"], "filter": "userName eq \\"%s\\""}' % (SEARCH.encode(), HALF),
        "user.search",
    ),
    (
        "POST",
        "/.search",
        b'{"schemas": ["%s"], "filter": "userName sw \\"%s\\""}' % (SEARCH.encode(), HALF),
        "search",
    ),
    (
        "POST",
        "/Bulk",
        b'{"schemas": ["%s"], "Operations": [{"method": "POST", "path": "/Users", "bulkId": "u", '
        b'"data": {"schemas": ["%s"], "userName": "b%s@x.com"}}]}'
        % (BULK_REQUEST.encode(), USER_SCHEMA.encode(), HALF),
        "bulk",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "operation"),
    SENT,
    ids=[f"{method} {path} {i}" for i, (method, path, _, _) in enumerate(SENT)],
)
def test_a_body_that_is_not_utf8_is_invalid_syntax_and_writes_nothing_but_its_event(
    api: Api,
    database: Database,
    auditor: Auditor,
    targets: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: bytes,
    operation: str,
) -> None:
    groups_before = api.get("/Groups").get_json()
    before = store_snapshot(database, api.tenant.org_id)
    rid = request_id("utf8")
    with caplog.at_level(logging.DEBUG):
        response = api.request(
            method,
            path.format(**targets),
            data=body,
            content_type=SCIM,
            headers={"X-Request-Id": rid},
        )
    assert_error(response, 400, "invalidSyntax", "not valid UTF-8", "RFC 8259")
    answer_is_clean(response)
    assert store_snapshot(database, api.tenant.org_id) == before
    assert api.get("/Groups").get_json() == groups_before
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["status"], event["scimType"]) == (
        operation,
        "refused",
        400,
        "invalidSyntax",
    )
    assert not holds_half_pair(event), event
    assert not any(holds_half_pair(record.getMessage()) for record in caplog.records)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["no BOM", "BOM"])
def test_the_refusal_says_where_the_bad_byte_is(api: Api, bom: bytes) -> None:
    body = bom + b'{"schemas": ["%s"], "userName": "\xff"}' % USER_SCHEMA.encode()
    response = api.request("POST", "/Users", data=body, content_type=SCIM)
    offset = body.index(b"\xff")
    assert_error(response, 400, "invalidSyntax", "not valid UTF-8", f"at byte {offset}")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/organization", b'{"timezone": "Europe/Par%sis"}' % HALF),
        ("POST", "/connections", b'{"name": "Okta %s"}' % HALF),
    ],
    ids=["PATCH /organization", "POST /connections"],
)
def test_the_admin_api_refuses_a_body_that_is_not_utf8(
    app: Flask, database: Database, api: Api, method: str, path: str, body: bytes
) -> None:
    headers = {"Authorization": f"Bearer {admin_token(database, api.tenant.slug)}"}
    client = app.test_client()
    before = [
        client.get(f"/admin/v1{name}", headers=headers).get_json()
        for name in ("/organization", "/connections")
    ]
    response = client.open(
        f"/admin/v1{path}", method=method, data=body, headers=headers, content_type=SCIM
    )
    assert_error(response, 400, "invalidSyntax", "not valid UTF-8")
    answer_is_clean(response)
    after = [
        client.get(f"/admin/v1{name}", headers=headers).get_json()
        for name in ("/organization", "/connections")
    ]
    assert after == before


@pytest.mark.parametrize(
    "codec",
    [
        "utf-8-sig",  # RFC 8259 §8.1: a parser MAY ignore a byte order mark
        "utf-16",  # RFC 7159 §8.1, which RFC 7644 cites, allowed UTF-16 and UTF-32
        "utf-16-le",
        "utf-32-be",
    ],
)
def test_a_byte_order_mark_and_utf16_or_utf32_are_read_as_the_json_decoder_reads_them(
    api: Api, database: Database, codec: str
) -> None:
    """What the server read before it decoded strictly, it still reads: a UTF-8 BOM is skipped,
    UTF-16 and UTF-32 are told by their zero bytes (RFC 4627 §3). A JSON escape of half a pair
    in them is refused as in UTF-8 (a 500 before: the check looked for the escape's UTF-8
    bytes), and so is a lone surrogate their own bytes encode."""
    text = '{"schemas": ["%s"], "userName": "%s@example.com", "displayName": "Zo\u00eb \U0001f600"}'
    response = api.request(
        "POST", "/Users", data=(text % (USER_SCHEMA, "enc")).encode(codec), content_type=SCIM
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["displayName"] == "Zo\u00eb \U0001f600"
    before = store_snapshot(database, api.tenant.org_id)
    escaped = text.replace("Zo\u00eb", "Zo\\ud800") % (USER_SCHEMA, "half")
    response = api.request("POST", "/Users", data=escaped.encode(codec), content_type=SCIM)
    assert_error(response, 400, "invalidValue", "displayName", "surrogate")
    answer_is_clean(response)
    assert store_snapshot(database, api.tenant.org_id) == before


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_bytes_of_half_a_pair_are_invalid_syntax(
    api: Api, database: Database, codec: str
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    text = '{"schemas": ["%s"], "userName": "x@example.com", "displayName": "\ud800"}'
    body = (text % USER_SCHEMA).encode(codec, "surrogatepass")
    response = api.request("POST", "/Users", data=body, content_type=SCIM)
    assert_error(response, 400, "invalidSyntax", "not valid UTF-16")
    answer_is_clean(response)
    assert store_snapshot(database, api.tenant.org_id) == before
