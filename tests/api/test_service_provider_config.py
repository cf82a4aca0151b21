"""What /ServiceProviderConfig claims works, on Users and Groups; what it does not claim, and
what is not an endpoint, answers a SCIM error (RFC 7644 §3.12, §4; DESIGN §4).

``/Bulk`` has its own tests (``test_bulk.py``), limits included.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from scim_server.store.db import Database
from tests.conftest import USER_SCHEMA, Api, patch_body, store_snapshot

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def assert_scim_error(response: Any, status: int, *detail_words: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/scim+json"
    body: dict[str, Any] = response.get_json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    for word in detail_words:
        assert word in body["detail"], body["detail"]
    return body


def _group(api: Api, name: str, **extra: Any) -> dict[str, Any]:
    response = api.post("/Groups", {"schemas": [GROUP], "displayName": name, **extra})
    assert response.status_code == 201, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


def test_claims_are_what_these_tests_exercise(api: Api) -> None:
    config = api.get("/ServiceProviderConfig").get_json()
    claimed = {
        name
        for name in ("patch", "filter", "sort", "etag", "changePassword", "bulk")
        if config[name]["supported"]
    }
    # a new claim needs its tests first (bulk's are in test_bulk.py)
    assert claimed == {"patch", "filter", "sort", "etag", "bulk"}
    # oauth2 (the client credentials grant): tests in test_oauth_client_credentials.py
    assert [scheme["type"] for scheme in config["authenticationSchemes"]] == [
        "oauthbearertoken",
        "oauth2",
    ]


def test_etag_on_groups(api: Api, database: Database) -> None:
    """etag.supported covers Groups as well as Users: 304, 412, and a fresh ETag on 204."""
    group = _group(api, "Versioned")
    gid, etag = group["id"], group["meta"]["version"]
    assert api.get(f"/Groups/{gid}", headers={"If-None-Match": etag}).status_code == 304
    stale = 'W/"not-the-version"'
    rename = patch_body({"op": "replace", "path": "displayName", "value": "Renamed"})
    assert api.patch(f"/Groups/{gid}", rename, headers={"If-Match": stale}).status_code == 412
    put_body = {"schemas": [GROUP], "displayName": "Replaced"}
    assert api.put(f"/Groups/{gid}", put_body, headers={"If-Match": stale}).status_code == 412
    assert api.delete(f"/Groups/{gid}", headers={"If-Match": stale}).status_code == 412
    assert api.get(f"/Groups/{gid}").get_json()["displayName"] == "Versioned"
    patched = api.patch(f"/Groups/{gid}", rename, headers={"If-Match": etag})
    assert patched.status_code == 204
    new_etag = patched.headers["ETag"]
    assert new_etag != etag
    assert api.get(f"/Groups/{gid}").headers["ETag"] == new_etag
    assert api.delete(f"/Groups/{gid}", headers={"If-Match": etag}).status_code == 412
    assert api.delete(f"/Groups/{gid}", headers={"If-Match": new_etag}).status_code == 204


def test_sort_on_groups(api: Api) -> None:
    for name in ("beta", "Alpha", "gamma"):
        _group(api, name)
    ascending = api.get("/Groups", query_string={"sortBy": "displayName"}).get_json()
    assert [g["displayName"] for g in ascending["Resources"]] == ["Alpha", "beta", "gamma"]
    descending = api.get(
        "/Groups", query_string={"sortBy": "displayName", "sortOrder": "descending"}
    ).get_json()
    assert [g["displayName"] for g in descending["Resources"]] == ["gamma", "beta", "Alpha"]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_me_is_not_supported_with_any_method(api: Api, method: str) -> None:
    body = None if method in ("GET", "DELETE") else {"schemas": [USER_SCHEMA], "userName": "me"}
    response = api.request(method, "/Me", body)
    assert_scim_error(response, 501, "/Me")


def test_a_password_change_is_accepted_and_discarded(api: Api, database: Database) -> None:
    """changePassword.supported is false: there is no password to change (users sign in through
    SSO). A password sent anyway — Okta's password sync — is answered as if absent: the update
    succeeds, nothing changes, nothing is stored."""
    assert api.get("/ServiceProviderConfig").get_json()["changePassword"] == {"supported": False}
    user = api.create_user("pw@acme.com", password="Initial-Secret-1")
    before = store_snapshot(database, api.tenant.org_id)
    for body in (
        patch_body({"op": "replace", "path": "password", "value": "Changed-Secret-2"}),
        patch_body({"op": "replace", "value": {"password": "Changed-Secret-3"}}),
    ):
        response = api.patch(f"/Users/{user['id']}", body)
        assert response.status_code == 200, response.get_json()
        assert "password" not in response.get_json()
        assert response.get_json()["meta"]["version"] == user["meta"]["version"]
    put = api.put(
        f"/Users/{user['id']}",
        {"schemas": [USER_SCHEMA], "userName": "pw@acme.com", "password": "Changed-Secret-4"},
    )
    assert put.status_code == 200
    assert put.get_json()["meta"]["version"] == user["meta"]["version"]
    assert store_snapshot(database, api.tenant.org_id) == before
    with database.engine.connect() as connection:
        stored = connection.execute(text("SELECT CAST(data AS TEXT) FROM users")).scalars().all()
    assert not any("Secret" in row for row in stored)


@pytest.mark.parametrize(
    ("method", "path", "detail"),
    [
        ("GET", "/Nope", "no such endpoint"),
        ("POST", "/Nope", "no such endpoint"),
        ("GET", "/Users/some-id/extra", "no such endpoint"),
        ("GET", "/Schemas/", "no such endpoint"),
        # endpoints are case-sensitive: RFC 7644 spells them /Groups
        ("GET", "/groups", "no such endpoint"),
        ("GET", "/v1/Users", "no such endpoint"),
    ],
)
def test_unknown_paths_are_404_in_scim_form(api: Api, method: str, path: str, detail: str) -> None:
    assert_scim_error(api.request(method, path), 404, detail)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/Users", {"GET", "POST"}),
        ("PUT", "/Groups", {"GET", "POST"}),
        ("POST", "/Users/some-id", {"GET", "PUT", "PATCH", "DELETE"}),
        ("PUT", "/ServiceProviderConfig", {"GET"}),
        ("DELETE", "/Schemas", {"GET"}),
        ("PATCH", "/ResourceTypes/User", {"GET"}),
        ("GET", "/.search", {"POST"}),
        # RFC 7644 §3.4.3: .search is POST; its other methods are not a read of id ".search"
        ("GET", "/Users/.search", {"POST"}),
        ("DELETE", "/Users/.search", {"POST"}),
        ("PATCH", "/Groups/.search", {"POST"}),
    ],
)
def test_wrong_methods_are_405_in_scim_form(
    api: Api, method: str, path: str, allowed: set[str]
) -> None:
    response = api.request(method, path)
    assert_scim_error(response, 405, "method not allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} - {
        "HEAD",
        "OPTIONS",
    } == allowed
