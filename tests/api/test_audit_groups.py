"""Group requests in the provisioning log: one event each, member ids added and removed."""

from __future__ import annotations

from flask import Flask

from scim_server.store.db import Database
from tests.api.audit_support import auditor_for, request_id
from tests.api.test_access_cli import ok
from tests.conftest import Api, patch_body

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def test_group_requests_are_one_event_each_with_member_ids(
    app: Flask, api: Api, database: Database
) -> None:
    auditor = auditor_for(app, database, api.tenant.slug)
    a, b, c = (api.create_user(f"{n}@acme.com")["id"] for n in "abc")

    rid = request_id("create")
    created = api.post(
        "/Groups",
        {"schemas": [GROUP], "displayName": "Ops", "members": [{"value": a}]},
        headers={"X-Request-Id": rid},
    )
    gid = created.get_json()["id"]
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["status"]) == (
        "group.create",
        "success",
        201,
    )
    assert (event["resourceType"], event["resourceId"]) == ("Group", gid)
    assert event["changes"]["displayName"] == [None, "Ops"]
    assert event["changes"]["members"] == {"added": [a], "removed": []}

    rid = request_id("patch")
    api.patch(
        f"/Groups/{gid}",
        patch_body(
            {"op": "remove", "path": f'members[value eq "{a}"]'},
            {"op": "add", "path": "members", "value": [{"value": b}, {"value": c}]},
            {"op": "replace", "path": "displayName", "value": "Operations"},
        ),
        headers={"X-Request-Id": rid},
    )
    event = auditor.one(rid)
    assert (event["operation"], event["status"]) == ("group.patch", 204)
    assert event["changes"]["displayName"] == ["Ops", "Operations"]
    assert event["changes"]["members"]["removed"] == [a]
    assert sorted(event["changes"]["members"]["added"]) == sorted([b, c])

    rid = request_id("refused")
    refused = api.patch(
        f"/Groups/{gid}",
        patch_body({"op": "add", "path": "members", "value": [{"value": "nobody"}]}),
        headers={"X-Request-Id": rid},
    )
    assert refused.status_code == 400
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["scimType"]) == (
        "group.patch",
        "refused",
        "invalidValue",
    )
    assert event["changes"] is None

    rid = request_id("delete")
    api.delete(f"/Groups/{gid}", headers={"X-Request-Id": rid})
    event = auditor.one(rid)
    assert (event["operation"], event["status"]) == ("group.delete", 204)
    assert event["changes"]["displayName"] == ["Operations", None]
    assert sorted(event["changes"]["members"]["removed"]) == sorted([b, c])


def test_a_rename_that_changes_members_access_names_them_by_id(
    app: Flask, api: Api, database: Database
) -> None:
    """Okta renames a group with a path-less replace; a mapping on the new name changes what
    every member may do, and the event says whose access changed by the users' SCIM ids (as a
    PUT's does), not by the database's row numbers."""
    auditor = auditor_for(app, database, api.tenant.slug)
    members = [api.create_user(f"renamed{n}@acme.com")["id"] for n in range(2)]
    ok(database, "mapping", "add", "--org", api.tenant.slug, "--group-name", "acc-x",
       "--role", "Viewer")  # fmt: skip
    created = api.post(
        "/Groups",
        {"schemas": [GROUP], "displayName": "acc-w", "members": [{"value": m} for m in members]},
    )
    gid = created.get_json()["id"]
    for method in ("PATCH", "PUT"):
        name = "acc-x" if method == "PATCH" else "acc-w"  # there and back again
        rid = request_id(method.lower())
        body = (
            patch_body({"op": "replace", "value": {"id": gid, "displayName": name}})
            if method == "PATCH"
            else {
                "schemas": [GROUP],
                "displayName": name,
                "members": [{"value": m} for m in members],
            }
        )
        response = api.request(method, f"/Groups/{gid}", body, headers={"X-Request-Id": rid})
        assert response.status_code in (200, 204), response.data
        event = auditor.one(rid)
        assert sorted(event["changes"]["access"]) == sorted(members), (method, event["changes"])
