"""A request body that nests deeper than any SCIM message is a 400, never a 500: Python's JSON
decoder and every recursive walk over a document would hit the interpreter's recursion limit."""

from __future__ import annotations

import json

import pytest
from werkzeug.test import TestResponse

from scim_server.store.db import Database
from tests.api.test_bulk import bulk, post_user
from tests.api.test_users_errors import assert_error
from tests.conftest import USER_SCHEMA, Api, patch_body, store_snapshot


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def raw_post(api: Api, path: str, text: str) -> TestResponse:
    return api.request("POST", path, data=text, content_type="application/scim+json")


@pytest.mark.parametrize("path", ["/Users", "/Groups", "/Users/.search", "/.search", "/Bulk"])
def test_a_body_nesting_5000_levels_is_400(api: Api, database: Database, path: str) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    head = json.dumps({"schemas": [USER_SCHEMA], "userName": "deep@example.com"})
    text = head[:-1] + ', "x": ' + nested(5000) + "}"
    response = raw_post(api, path, text)
    assert_error(response, 400, "invalidSyntax", "nests deeper than 64 levels")
    assert store_snapshot(database, api.tenant.org_id) == before


def test_bulk_data_nesting_900_levels_is_400_and_runs_nothing(api: Api, database: Database) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    body = bulk(post_user("ok", "ok@example.com"), post_user("deep", "deep@example.com"))
    deep: object = []
    for _ in range(900):
        deep = [deep]
    body["Operations"][1]["data"]["nickName"] = deep
    assert_error(api.post("/Bulk", body), 400, "invalidSyntax", "nests deeper than 64 levels")
    assert store_snapshot(database, api.tenant.org_id) == before


def test_a_patch_nesting_too_deep_is_400_and_one_within_the_limit_is_judged_as_usual(
    api: Api,
) -> None:
    user = api.create_user("shallow@example.com")
    deep: object = "x"
    for _ in range(70):
        deep = {"a": deep}
    too_deep = patch_body({"op": "replace", "path": "nickName", "value": deep})
    assert_error(api.patch(f"/Users/{user['id']}", too_deep), 400, "invalidSyntax", "64 levels")
    shallow = patch_body({"op": "replace", "path": "nickName", "value": [[["x"]]]})
    # within the limit the body reaches validation, which names the attribute
    assert_error(api.patch(f"/Users/{user['id']}", shallow), 400, "invalidValue", "nickName")


def test_a_json_encoded_role_nesting_5000_levels_is_400(api: Api) -> None:
    user = api.create_user("roles@example.com")
    encoded = '{"value": ' + nested(5000) + "}"
    response = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "add", "path": "roles", "value": [{"value": encoded}]}),
    )
    assert_error(response, 400, "invalidValue", "roles")
