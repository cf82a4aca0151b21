"""``bulkId:`` references in /Bulk stand only where the schemas put a resource id, resolve in an
order that keeps the client's intent, and never bring a password into a reply or an event."""

from __future__ import annotations

import json
import time

from flask import Flask

from scim_server.store.db import Database
from tests.api.audit_support import Auditor, all_event_rows_as_text, auditor_for, request_id
from tests.api.test_bulk import (
    ENTERPRISE,
    GROUP_SCHEMA,
    bulk,
    by_bulk_id,
    post_group,
    post_user,
    send,
    slot_error,
    user_names,
)
from tests.conftest import Api, patch_body

SECRET = "Hunter2-Secret"


def test_a_password_never_reaches_the_reply_or_the_log(
    app: Flask, database: Database, api: Api
) -> None:
    auditor: Auditor = auditor_for(app, database, api.tenant.slug)
    api.create_user("taken@example.com")
    rid = request_id("bulk-password")
    response = api.post(
        "/Bulk",
        bulk(
            # created: the password is not a reference, whatever it looks like
            post_user("u", "pw@example.com", password=f"bulkId:{SECRET}-1"),
            # refused (userName taken): the refusal names neither the password nor its value
            post_user("dup", "taken@example.com", password=f"bulkId:{SECRET}-2"),
            # refused (unresolved manager): the detail names the manager's reference only
            post_user(
                "m",
                "m@example.com",
                password=f"{SECRET}-3",
                **{ENTERPRISE: {"manager": {"value": "bulkId:ghost"}}},
            ),
            {
                "method": "PATCH",
                "path": "/Users/bulkId:u",
                "data": patch_body(
                    {"op": "replace", "path": "password", "value": f"bulkId:{SECRET}-4"}
                ),
            },
        ),
        headers={"X-Request-Id": rid},
    )
    assert response.status_code == 200
    assert SECRET not in response.get_data(as_text=True)
    results = response.get_json()["Operations"]
    assert [result["status"] for result in results] == ["201", "409", "409", "200"]
    slot_error(results[1], 409, "uniqueness", "userName")
    slot_error(results[2], 409, "invalidValue", "'ghost'", "no POST operation")
    events = auditor.events(f'requestId eq "{rid}"')
    assert [(event["operation"], event["status"]) for event in events] == [
        ("user.create", 201),
        ("user.create", 409),
        ("user.create", 409),
        ("user.patch", 200),
        ("bulk", 200),
    ]
    assert not [row for row in all_event_rows_as_text(database) if SECRET in row]


def test_bulk_id_looking_strings_elsewhere_are_plain_data(api: Api) -> None:
    results = send(
        api,
        bulk(
            post_group("team", "Team"),
            post_group("g1", "BULKID:team"),  # not the exact prefix: a name
            post_group("g2", "bulkId:u"),  # not a resource id position: a name
            post_user("u", "u@example.com", displayName="bulkId:team", nickName="bulkId:nope"),
        ),
    )
    assert [result["status"] for result in results] == ["201", "201", "201", "201"]
    names = sorted(group["displayName"] for group in api.get("/Groups").get_json()["Resources"])
    assert names == ["BULKID:team", "Team", "bulkId:u"]
    user = api.get(results[3]["location"].split("/scim/v2")[1]).get_json()
    assert (user["displayName"], user["nickName"]) == ("bulkId:team", "bulkId:nope")


def test_a_wrong_case_prefix_is_no_reference(api: Api) -> None:
    results = send(
        api,
        bulk(
            post_user("boss", "boss@example.com"),
            post_user("e", "e@example.com", **{ENTERPRISE: {"manager": {"value": "BULKID:boss"}}}),
        ),
    )
    # stored as sent, as the single POST stores a manager id: not replaced by boss's id
    assert [result["status"] for result in results] == ["201", "201"]
    employee = api.get(results[1]["location"].split("/scim/v2")[1]).get_json()
    assert employee[ENTERPRISE]["manager"]["value"] == "BULKID:boss"


def test_references_through_patch_paths(api: Api) -> None:
    """``members``, a path-less value object, ``manager.value`` under its URN, and a
    ``members[value eq "bulkId:x"]`` filter all name the user created in the request."""
    group = api.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "G"}).get_json()
    boss = api.create_user("boss@example.com")
    results = send(
        api,
        bulk(
            {
                "method": "PATCH",
                "path": f"/Groups/{group['id']}",
                "data": patch_body(
                    {"op": "add", "path": "members", "value": [{"value": "bulkId:a"}]}
                ),
            },
            {
                "method": "PATCH",
                "path": f"/Groups/{group['id']}",
                "data": patch_body({"op": "add", "value": {"members": [{"value": "bulkId:b"}]}}),
            },
            post_user("a", "a@example.com"),
            post_user("b", "b@example.com"),
            {
                "method": "PATCH",
                "path": "/Users/bulkId:a",
                "data": patch_body(
                    {"op": "add", "path": f"{ENTERPRISE}:manager.value", "value": "bulkId:b"}
                ),
            },
            {
                "method": "PATCH",
                "path": "/Users/bulkId:b",
                "data": patch_body(
                    {"op": "replace", "value": {f"{ENTERPRISE}:manager": boss["id"]}}
                ),
            },
            {
                "method": "PATCH",
                "path": f"/Groups/{group['id']}",
                "data": patch_body({"op": "remove", "path": 'members[value eq "bulkId:b"]'}),
            },
        ),
    )
    assert [result["status"] for result in results] == [
        "204",
        "204",
        "201",
        "201",
        "200",
        "200",
        "204",
    ]
    found = by_bulk_id(results)
    a_id = found["a"]["location"].rsplit("/", 1)[1]
    b_id = found["b"]["location"].rsplit("/", 1)[1]
    members = api.get(f"/Groups/{group['id']}").get_json()["members"]
    assert [member["value"] for member in members] == [a_id]
    assert api.get(f"/Users/{a_id}").get_json()[ENTERPRISE]["manager"]["value"] == b_id
    assert api.get(f"/Users/{b_id}").get_json()[ENTERPRISE]["manager"]["value"] == boss["id"]


def test_order_keeps_the_clients_intent_and_results_keep_request_order(api: Api) -> None:
    """Moving the POST ahead of the DELETE sent before it would delete the user it creates."""
    ann = api.create_user("ann@example.com")
    group = api.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "G"}).get_json()
    results = send(
        api,
        bulk(
            {
                "method": "PATCH",
                "path": f"/Groups/{group['id']}",
                "data": patch_body(
                    {"op": "add", "path": "members", "value": [{"value": "bulkId:n"}]}
                ),
            },
            {"method": "DELETE", "path": f"/Users/{ann['id']}"},
            post_user("n", "ann@example.com"),
        ),
    )
    # results in request order (clients match them by position), every one applied
    assert [(result["method"], result["status"]) for result in results] == [
        ("PATCH", "204"),
        ("DELETE", "204"),
        ("POST", "201"),
    ]
    new_id = results[2]["location"].rsplit("/", 1)[1]
    assert new_id != ann["id"]
    assert api.get(f"/Users/{ann['id']}").status_code == 404
    assert api.get(f"/Users/{new_id}").get_json()["userName"] == "ann@example.com"
    members = api.get(f"/Groups/{group['id']}").get_json()["members"]
    assert [member["value"] for member in members] == [new_id]


def test_a_chain_of_1000_references_runs(api: Api) -> None:
    """Each user's manager is the next one's bulkId: the ordering is iterative, no recursion."""
    count = 1000
    operations = [
        post_user(
            f"u{i}",
            f"u{i}@example.com",
            **({ENTERPRISE: {"manager": {"value": f"bulkId:u{i + 1}"}}} if i + 1 < count else {}),
        )
        for i in range(count)
    ]
    started = time.monotonic()
    results = send(api, bulk(*operations))
    elapsed = time.monotonic() - started
    assert [result["bulkId"] for result in results] == [f"u{i}" for i in range(count)]
    assert {result["status"] for result in results} == {"201"}
    first = api.get(results[0]["location"].split("/scim/v2")[1]).get_json()
    assert first[ENTERPRISE]["manager"]["value"] == results[1]["location"].rsplit("/", 1)[1]
    print(f"1000 chained POSTs in one bulk: {elapsed:.1f} s")


def test_a_cycle_answers_409_in_request_order_while_the_rest_applies(api: Api) -> None:
    results = send(
        api,
        bulk(
            post_group("waits", "Waits", "bulkId:a"),
            post_user("a", "a@example.com", **{ENTERPRISE: {"manager": {"value": "bulkId:b"}}}),
            post_user("b", "b@example.com", **{ENTERPRISE: {"manager": {"value": "bulkId:a"}}}),
            post_user("free", "free@example.com"),
        ),
    )
    assert [result["bulkId"] for result in results] == ["waits", "a", "b", "free"]
    slot_error(results[0], 409, "invalidValue", "'a'", "whose operation failed (status 409)")
    slot_error(results[1], 409, "invalidValue", "circular bulkId reference", "'b'")
    slot_error(results[2], 409, "invalidValue", "circular bulkId reference", "'a'")
    assert results[3]["status"] == "201"
    assert user_names(api) == ["free@example.com"]


def test_a_password_inside_a_patch_path_is_not_echoed(
    app: Flask, database: Database, api: Api
) -> None:
    """A path into the write-only ``password`` can carry the secret (``password[value eq ...]``):
    the refusal names the attribute and the rule, never the path's text, alone or in /Bulk."""
    secret = "Path-Secret-8c1d"
    user = api.create_user("pathpw@example.com")
    paths = [
        f'password[value eq "{secret}"]',
        f'password[value eq "{secret}"',  # does not even parse
        f"password.{secret}",
        f'urn:ietf:params:scim:schemas:core:2.0:User:password[value eq "{secret}"]',
    ]
    for path in paths:
        response = api.patch(
            f"/Users/{user['id']}", patch_body({"op": "add", "path": path, "value": "x"})
        )
        assert response.status_code == 400, path
        assert secret not in response.get_data(as_text=True), path
        assert "password" in response.get_json()["detail"]
    results = send(
        api,
        bulk(
            {
                "method": "PATCH",
                "path": f"/Users/{user['id']}",
                "data": patch_body({"op": "add", "path": paths[0], "value": "x"}),
            }
        ),
    )
    assert results[0]["status"] == "400"
    assert secret not in json.dumps(results)
    assert not [row for row in all_event_rows_as_text(database) if secret in row]
