"""``POST /Bulk`` (RFC 7644 §3.7): bulkId references in any order, failOnErrors, limits, and every
operation going through its single request's rules, transaction and audit event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from scim2_models import BulkResponse, Context, Group, User

from scim_server.app import create_app
from scim_server.config import Settings
from scim_server.store.db import Database
from tests.api.audit_support import Auditor, auditor_for, request_id
from tests.api.test_domain_policy import configure
from tests.api.test_guards import other_connection
from tests.api.test_users_errors import assert_error
from tests.conftest import USER_SCHEMA, Api, make_tenant, patch_body, store_snapshot

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def bulk(*operations: Any, fail_on_errors: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [BULK_REQUEST], "Operations": list(operations)}
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    return body


def post_user(bulk_id: str, user_name: str, **attributes: Any) -> dict[str, Any]:
    data = {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}
    return {"method": "POST", "path": "/Users", "bulkId": bulk_id, "data": data}


def post_group(bulk_id: str, name: str, *members: str) -> dict[str, Any]:
    data: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": name}
    if members:
        data["members"] = [{"value": member} for member in members]
    return {"method": "POST", "path": "/Groups", "bulkId": bulk_id, "data": data}


def send(api: Api, body: Any, rid: str | None = None) -> list[dict[str, Any]]:
    """POST /Bulk; the BulkResponse's operations (asserting the envelope)."""
    headers = {"X-Request-Id": rid} if rid else {}
    response = api.post("/Bulk", body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/scim+json"
    document = response.get_json()
    assert document["schemas"] == [BULK_RESPONSE]
    operations: list[dict[str, Any]] = document["Operations"]
    if all(operation.get("method") in METHODS for operation in operations):
        # a standard client reads it back unchanged (scim2-models writes status as a string too)
        read = BulkResponse[User | Group].model_validate(document, scim_ctx=Context.BULK_RESPONSE)
        assert read.model_dump(scim_ctx=Context.BULK_RESPONSE) == document
    return operations


def by_bulk_id(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {result["bulkId"]: result for result in results if "bulkId" in result}


def slot_error(result: dict[str, Any], status: int, scim_type: str | None, *words: str) -> None:
    """An operation answered with an error in its slot: status and a SCIM error body."""
    assert result["status"] == str(status), result
    response = result["response"]
    assert response["schemas"] == [ERROR]
    assert response["status"] == str(status)
    assert response.get("scimType") == scim_type, response
    for word in words:
        assert word in response["detail"], response["detail"]


def user_names(api: Api) -> list[str]:
    return sorted(user["userName"] for user in api.list_users()["Resources"])


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


# -- bulkId references -------------------------------------------------------------------------


def test_group_with_members_created_earlier_in_the_same_request(api: Api) -> None:
    results = send(
        api,
        bulk(
            post_user("u1", "ann@example.com"),
            post_user("u2", "bob@example.com"),
            post_group("g1", "Engineers", "bulkId:u1", "bulkId:u2"),
        ),
    )
    assert [result["bulkId"] for result in results] == ["u1", "u2", "g1"]
    for result in results:
        assert result["method"] == "POST"
        assert result["status"] == "201"  # a string, as RFC 7644 §3.7.3 writes it
        assert "response" not in result
    ann_id = results[0]["location"].rsplit("/", 1)[1]
    bob_id = results[1]["location"].rsplit("/", 1)[1]
    assert results[0]["location"].endswith(f"/scim/v2/Users/{ann_id}")
    assert results[2]["location"].split("/")[-2] == "Groups"

    group = api.get(results[2]["location"].split("/scim/v2")[1]).get_json()
    assert group["displayName"] == "Engineers"
    assert sorted(member["value"] for member in group["members"]) == sorted([ann_id, bob_id])
    assert results[2]["version"] == group["meta"]["version"]
    ann = api.get(f"/Users/{ann_id}").get_json()
    assert ann["userName"] == "ann@example.com"
    assert ann["groups"][0]["display"] == "Engineers"
    # ann's version as created; joining the group changed her ``groups``, so her ETag moved on
    assert results[0]["version"] != ann["meta"]["version"]
    assert results[0]["version"].split("-")[0] == ann["meta"]["version"].split("-")[0]


def test_forward_references_run_the_referenced_operation_first(api: Api) -> None:
    """A group naming a user created later, a PATCH of a user created later (bulkId in path),
    a manager created later: each referenced POST runs before the operation that needs it."""
    results = send(
        api,
        bulk(
            post_group("g", "Later members", "bulkId:late"),
            {
                "method": "patch",  # methods are case-insensitive
                "path": "/Users/bulkId:late",
                "bulkId": "p",
                "data": patch_body({"op": "replace", "path": "displayName", "value": "Patched"}),
            },
            post_user("report", "rep@example.com", **{ENTERPRISE: {"manager": "bulkId:boss"}}),
            post_user("late", "late@example.com"),
            post_user("boss", "boss@example.com"),
        ),
    )
    # the referenced operations ran first; the results are in request order, as clients match
    assert [result["bulkId"] for result in results] == ["g", "p", "report", "late", "boss"]
    assert [result["status"] for result in results] == ["201", "200", "201", "201", "201"]
    found = by_bulk_id(results)
    late_id = found["late"]["location"].rsplit("/", 1)[1]
    boss_id = found["boss"]["location"].rsplit("/", 1)[1]
    assert found["p"]["method"] == "PATCH"
    assert found["p"]["location"] == found["late"]["location"]

    late = api.get(f"/Users/{late_id}").get_json()
    assert late["displayName"] == "Patched"
    assert late["groups"][0]["display"] == "Later members"
    assert late["meta"]["version"] == found["p"]["version"]
    report = api.get(found["report"]["location"].split("/scim/v2")[1]).get_json()
    # Entra's bare-id manager, resolved then normalised as the single POST normalises it
    assert report[ENTERPRISE]["manager"] == {"value": boss_id}


def test_circular_references_are_refused_with_409_while_the_rest_applies(
    api: Api, auditor: Auditor
) -> None:
    rid = request_id("bulk-cycle")
    results = send(
        api,
        bulk(
            post_user("a", "a@example.com", **{ENTERPRISE: {"manager": {"value": "bulkId:b"}}}),
            post_user("b", "b@example.com", **{ENTERPRISE: {"manager": {"value": "bulkId:a"}}}),
            post_user("self", "self@example.com", **{ENTERPRISE: {"manager": "bulkId:self"}}),
            post_user("ok", "ok@example.com"),
            post_group("g", "Needs a", "bulkId:a"),
        ),
        rid,
    )
    found = by_bulk_id(results)
    assert len(results) == 5
    for name in ("a", "b", "self"):
        slot_error(found[name], 409, "invalidValue", "circular bulkId reference")
        assert "location" not in found[name]
    slot_error(found["g"], 409, "invalidValue", "'a'", "whose operation failed (status 409)")
    assert found["ok"]["status"] == "201"
    assert user_names(api) == ["ok@example.com"]
    assert api.get("/Groups").get_json()["totalResults"] == 0
    # each refusal is its own event, named as the single request would be
    events = auditor.events(f'requestId eq "{rid}"')
    refused = [event for event in events if event["outcome"] == "refused"]
    assert sorted(event["operation"] for event in refused) == [
        "group.create",
        "user.create",
        "user.create",
        "user.create",
    ]
    assert {event["status"] for event in refused} == {409}


def test_reference_to_a_failed_or_undeclared_bulk_id_is_409(api: Api) -> None:
    results = send(
        api,
        bulk(
            post_user("bad", ""),  # userName empty: the POST fails
            post_group("g1", "Has bad", "bulkId:bad"),
            post_group("g2", "Has ghost", "bulkId:ghost"),
            post_group("g3", "Fine"),
        ),
    )
    found = by_bulk_id(results)
    assert found["bad"]["status"] == "400"
    slot_error(found["g1"], 409, "invalidValue", "'bad'", "whose operation failed (status 400)")
    slot_error(found["g2"], 409, "invalidValue", "'ghost'", "no POST operation")
    assert found["g3"]["status"] == "201"
    groups = api.get("/Groups").get_json()["Resources"]
    assert [group["displayName"] for group in groups] == ["Fine"]


# -- failOnErrors ------------------------------------------------------------------------------


def test_fail_on_errors_stops_after_that_many_errors(
    api: Api, database: Database, auditor: Auditor
) -> None:
    api.create_user("taken@example.com")
    keep = api.create_user("keep@example.com")
    rid = request_id("bulk-stop")
    results = send(
        api,
        bulk(
            post_user("e1", "taken@example.com"),  # 409 uniqueness
            post_user("ok1", "ok1@example.com"),
            post_user("e2", "TAKEN@example.com"),  # 409 again: the second error
            post_user("never", "never@example.com"),
            {"method": "DELETE", "path": f"/Users/{keep['id']}", "bulkId": "del"},
            fail_on_errors=2,
        ),
        rid,
    )
    # the operations after the second error are neither run nor reported
    assert [result["bulkId"] for result in results] == ["e1", "ok1", "e2"]
    slot_error(results[0], 409, "uniqueness", "taken@example.com")
    slot_error(results[2], 409, "uniqueness")
    assert user_names(api) == ["keep@example.com", "ok1@example.com", "taken@example.com"]
    # nor logged: the request's event says where it stopped
    events = auditor.events(f'requestId eq "{rid}"')
    assert [(event["operation"], event["status"]) for event in events] == [
        ("user.create", 409),
        ("user.create", 201),
        ("user.create", 409),
        ("bulk", 200),
    ]
    assert events[-1]["detail"] == (
        "bulk: 3 of 5 operations run, 1 succeeded, 2 failed; stopped after failOnErrors=2 errors"
    )


def test_without_fail_on_errors_every_operation_runs(api: Api) -> None:
    results = send(
        api,
        bulk(
            post_user("e1", ""),
            post_user("e2", ""),
            post_user("e3", ""),
            post_user("ok", "ok@example.com"),
        ),
    )
    assert [result["status"] for result in results] == ["400", "400", "400", "201"]
    assert user_names(api) == ["ok@example.com"]


# -- policies, preconditions, tenants ----------------------------------------------------------


def test_domain_policy_refusal_in_its_slot_while_the_others_apply(
    api: Api, auditor: Auditor, database: Database
) -> None:
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    rid = request_id("bulk-domain")
    results = send(
        api,
        bulk(
            post_user("in", "in@acme.com"),
            post_user("out", "out@gmail.com"),
            post_group("g", "Acme", "bulkId:in"),
        ),
        rid,
    )
    found = by_bulk_id(results)
    slot_error(found["out"], 400, "invalidValue", "gmail.com", api.tenant.slug)
    assert "location" not in found["out"]
    assert found["in"]["status"] == "201"
    assert found["g"]["status"] == "201"
    assert user_names(api) == ["in@acme.com"]

    events = auditor.events(f'requestId eq "{rid}"')
    assert [(event["operation"], event["status"], event["outcome"]) for event in events] == [
        ("user.create", 201, "success"),
        ("user.create", 400, "refused"),
        ("group.create", 201, "success"),
        ("bulk", 200, "success"),
    ]
    created, refused, group, request_event = events
    # the operation's own event, as its single request would write it, tied to the bulk request
    assert created["userName"] == "in@acme.com"
    assert created["resourceId"] == found["in"]["location"].rsplit("/", 1)[1]
    assert created["changes"]["userName"] == [None, "in@acme.com"]
    assert created["detail"] == "bulk Operations[0] (bulkId 'in')"
    assert refused["scimType"] == "invalidValue"
    assert refused["changes"] is None
    assert refused["detail"] == (
        f"bulk Operations[1] (bulkId 'out'): {found['out']['response']['detail']}"
    )
    assert group["changes"]["members"]["added"] == [created["resourceId"]]
    assert request_event["detail"] == "bulk: 3 of 3 operations run, 2 succeeded, 1 failed"
    assert {event["actor"] for event in events} == {api.tenant.connection_id}


def test_version_is_if_match(api: Api) -> None:
    user = api.create_user("v@example.com")
    current = user["meta"]["version"]
    path = f"/Users/{user['id']}"
    stale = {
        "method": "PATCH",
        "path": path,
        "version": 'W/"999"',
        "data": patch_body({"op": "replace", "path": "displayName", "value": "Stale"}),
    }
    fresh = {
        "method": "PUT",
        "path": path,
        "version": current,
        "data": {"schemas": [USER_SCHEMA], "userName": "v@example.com", "displayName": "Fresh"},
    }
    results = send(api, bulk(stale, fresh))
    slot_error(results[0], 412, None, 'W/"999"', current)
    assert results[0]["location"].endswith(path)
    assert results[1]["status"] == "200"
    stored = api.get(path).get_json()
    assert stored["displayName"] == "Fresh"
    assert results[1]["version"] == stored["meta"]["version"] != current
    # a stale version on DELETE keeps the user
    results = send(api, bulk({"method": "DELETE", "path": path, "version": current}))
    slot_error(results[0], 412, None)
    assert api.get(path).status_code == 200


def test_another_organisations_resources_are_404_in_their_slot(
    app: Flask, api: Api, database: Database
) -> None:
    other = Api(app.test_client(), make_tenant(database, "other"))
    theirs = other.create_user("theirs@example.com")
    their_group = other.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "T"})
    before = store_snapshot(database, other.tenant.org_id)
    results = send(
        api,
        bulk(
            {
                "method": "PUT",
                "path": f"/Users/{theirs['id']}",
                "data": {"schemas": [USER_SCHEMA], "userName": "stolen@example.com"},
            },
            {"method": "DELETE", "path": f"/Users/{theirs['id']}"},
            {"method": "DELETE", "path": f"/Groups/{their_group.get_json()['id']}"},
            post_group("g", "Mine", theirs["id"]),
        ),
    )
    slot_error(results[0], 404, None, theirs["id"])
    slot_error(results[1], 404, None, theirs["id"])
    slot_error(results[2], 404, None)
    slot_error(results[3], 400, "invalidValue", "no such user in this organisation")
    assert store_snapshot(database, other.tenant.org_id) == before
    assert other.get(f"/Groups/{their_group.get_json()['id']}").status_code == 200


def test_delete_and_group_patch_answer_as_their_single_requests(api: Api) -> None:
    user = api.create_user("gone@example.com")
    stays = api.create_user("stays@example.com")
    group = api.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "G"}).get_json()
    results = send(
        api,
        bulk(
            {
                "method": "PATCH",
                "path": f"/Groups/{group['id']}",
                "data": patch_body(
                    {"op": "Add", "path": "members", "value": [{"value": stays["id"]}]}
                ),
            },
            {"method": "DELETE", "path": f"/Users/{user['id']}"},
        ),
    )
    assert results[0]["status"] == "204"
    assert results[0]["version"] == api.get(f"/Groups/{group['id']}").get_json()["meta"]["version"]
    assert results[1]["status"] == "204"
    assert results[1]["location"].endswith(f"/Users/{user['id']}")
    assert "version" not in results[1]
    assert api.get(f"/Users/{user['id']}").status_code == 404
    members = api.get(f"/Groups/{group['id']}").get_json()["members"]
    assert [member["value"] for member in members] == [stays["id"]]


# -- malformed requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], ["JSON object"]),
        ({"Operations": []}, ["schemas", BULK_REQUEST]),
        ({"schemas": [BULK_REQUEST]}, ["Operations is required"]),
        ({"schemas": [BULK_REQUEST], "Operations": {}}, ["Operations is required"]),
        ({"schemas": [BULK_REQUEST], "Operations": [], "failOnErrors": 0}, ["failOnErrors"]),
        ({"schemas": [BULK_REQUEST], "Operations": [], "failOnErrors": "1"}, ["failOnErrors"]),
        (
            bulk(post_user("same", "x@example.com"), post_user("same", "y@example.com")),
            ["'same'", "Operations[0]", "Operations[1]", "unique"],
        ),
    ],
)
def test_a_malformed_request_is_400_and_writes_nothing(
    api: Api, database: Database, body: Any, words: list[str]
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    assert_error(api.post("/Bulk", body), 400, "invalidSyntax", *words)
    assert store_snapshot(database, api.tenant.org_id) == before


def test_a_malformed_operation_is_an_error_in_its_slot(api: Api, auditor: Auditor) -> None:
    rid = request_id("bulk-malformed")
    results = send(
        api,
        bulk(
            "not an object",
            {"method": "GET", "path": "/Users", "bulkId": "get"},
            {"method": "POST", "path": "/Roles", "bulkId": "roles", "data": {}},
            {"method": "POST", "path": "/Users", "data": {"userName": "nobulkid@example.com"}},
            {"method": "PUT", "path": "/Users", "data": {"userName": "noid@example.com"}},
            {"method": "PATCH", "path": "/Users/abc"},
            {"method": "DELETE", "path": "/Users/a/b"},
            post_user("fine", "fine@example.com"),
        ),
        rid,
    )
    assert len(results) == 8
    slot_error(results[0], 400, "invalidSyntax", "Operations[0] must be an object")
    slot_error(results[1], 400, "invalidSyntax", "Operations[1].method", "'GET'")
    assert results[1]["method"] == "GET"
    slot_error(results[2], 400, "invalidSyntax", "Operations[2].path", "/Roles")
    slot_error(results[3], 400, "invalidSyntax", "Operations[3].bulkId is required")
    slot_error(results[4], 400, "invalidSyntax", "Operations[4].path of a PUT")
    slot_error(results[5], 400, "invalidSyntax", "Operations[5].data is required")
    slot_error(results[6], 400, "invalidSyntax", "Operations[6].path")
    assert results[7]["status"] == "201"
    assert user_names(api) == ["fine@example.com"]
    # each is a refusal event, named as its single request when it says which one it is
    events = auditor.events(f'requestId eq "{rid}"')
    assert [(event["operation"], event["status"]) for event in events] == [
        ("bulk.operation", 400),
        ("bulk.operation", 400),
        ("bulk.operation", 400),
        ("user.create", 400),
        ("user.replace", 400),
        ("user.patch", 400),
        ("bulk.operation", 400),
        ("user.create", 201),
        ("bulk", 200),
    ]
    assert (
        events[1]["detail"]
        == f"bulk Operations[1] (bulkId 'get'): {results[1]['response']['detail']}"
    )
    assert events[-1]["detail"] == "bulk: 8 of 8 operations run, 1 succeeded, 7 failed"


def test_bad_operation_data_gets_the_single_requests_error(api: Api) -> None:
    results = send(
        api,
        bulk(
            post_user("n", "n@example.com", active="maybe"),
            {
                "method": "PATCH",
                "path": "/Users/bulkId:n",
                "data": {"schemas": ["nope"], "Operations": []},
            },
        ),
    )
    assert results[0]["status"] == "400"
    assert results[0]["response"]["scimType"] in {"invalidValue", "invalidSyntax"}
    assert "active" in results[0]["response"]["detail"]
    slot_error(results[1], 409, "invalidValue", "'n'")
    # location is required but for a failed POST (RFC 7644 §3.7): the path as sent
    assert results[1]["location"].endswith("/Users/bulkId:n")


# -- limits (RFC 7644 §3.7.4) ------------------------------------------------------------------


@pytest.fixture
def limited(database: Database, api: Api) -> Api:
    """The same organisation, through a server with small limits."""
    settings = Settings(
        database_url=database.url,
        max_body_bytes=1000,
        bulk_max_operations=3,
        bulk_max_payload_bytes=4000,
    )
    app = create_app(settings, database=database)
    app.config["TESTING"] = True
    return Api(app.test_client(), api.tenant)


def test_limits_are_advertised_from_the_settings(api: Api, limited: Api) -> None:
    assert api.get("/ServiceProviderConfig").get_json()["bulk"] == {
        "supported": True,
        "maxOperations": 1000,
        "maxPayloadSize": 1024 * 1024,
    }
    assert limited.get("/ServiceProviderConfig").get_json()["bulk"] == {
        "supported": True,
        "maxOperations": 3,
        "maxPayloadSize": 4000,
    }


def test_over_max_operations_is_413_and_writes_nothing_but_its_event(
    limited: Api, database: Database, auditor: Auditor
) -> None:
    before = store_snapshot(database, limited.tenant.org_id)
    rid = request_id("bulk-ops")
    body = bulk(*(post_user(f"u{n}", f"u{n}@example.com") for n in range(4)))
    response = limited.post("/Bulk", body, headers={"X-Request-Id": rid})
    assert_error(response, 413, None, "4 operations", "maxOperations (3)")
    assert store_snapshot(database, limited.tenant.org_id) == before
    event = auditor.one(rid)
    assert (event["operation"], event["status"], event["outcome"]) == ("bulk", 413, "refused")
    assert event["detail"] == response.get_json()["detail"]


def test_over_max_payload_size_is_413_with_the_bulk_limit(
    limited: Api, database: Database, auditor: Auditor
) -> None:
    before = store_snapshot(database, limited.tenant.org_id)
    rid = request_id("bulk-size")
    body = bulk(post_user("big", "big@example.com", displayName="x" * 5000))
    response = limited.post("/Bulk", body, headers={"X-Request-Id": rid})
    assert_error(response, 413, None, "maxPayloadSize (4000 bytes)")
    assert store_snapshot(database, limited.tenant.org_id) == before
    event = auditor.one(rid)
    assert (event["operation"], event["status"]) == ("bulk", 413)
    # without Content-Length (chunked), the body is cut off at the same limit
    response = limited.post(
        "/Bulk",
        data=json.dumps(body),
        content_type="application/scim+json",
        headers={"Transfer-Encoding": "chunked"},
        # what a WSGI server passes for a chunked body: no length, a terminated stream
        environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True},
    )
    assert_error(response, 413, None, "maxPayloadSize (4000 bytes)")
    assert store_snapshot(database, limited.tenant.org_id) == before


def test_bulk_payload_uses_its_own_limit_not_the_general_body_limit(limited: Api) -> None:
    """SCIM_MAX_BODY_BYTES (1000 here) bounds every other endpoint; /Bulk is bounded by
    SCIM_BULK_MAX_PAYLOAD_BYTES (4000) alone."""
    user = {"schemas": [USER_SCHEMA], "userName": "long@example.com", "displayName": "y" * 1500}
    assert limited.post("/Users", user).status_code == 413
    results = send(limited, bulk({"method": "POST", "path": "/Users", "bulkId": "l", "data": user}))
    assert results[0]["status"] == "201"


# -- the single requests' rules, through /Bulk -------------------------------------------------


def test_seat_limit_and_ownership_apply_per_operation(
    app: Flask, api: Api, database: Database
) -> None:
    configure(database, api.tenant.slug, "--seat-limit", "2")
    okta_user = api.create_user("okta@example.com")
    entra = Api(app.test_client(), other_connection(database, api.tenant, "Entra prod"))
    results = send(
        entra,
        bulk(
            post_user("s1", "s1@example.com"),  # the second seat
            post_user("s2", "s2@example.com"),  # over the limit: 403
            {
                "method": "PATCH",
                "path": f"/Users/{okta_user['id']}",
                "data": patch_body({"op": "replace", "path": "displayName", "value": "Mine"}),
            },
        ),
    )
    assert results[0]["status"] == "201"
    slot_error(results[1], 403, None, "seat limit reached (2 of 2)")
    slot_error(results[2], 409, None, "belongs to connection", "transfer")
    assert user_names(api) == ["okta@example.com", "s1@example.com"]
    assert "displayName" not in api.get(f"/Users/{okta_user['id']}").get_json()


def test_entra_patch_shapes_are_normalised_in_bulk_as_alone(api: Api) -> None:
    """Capitalised ops and booleans as strings (DESIGN §4.1), in a PATCH operation's data."""
    user = api.create_user("entra@example.com")
    results = send(
        api,
        bulk(
            {
                "method": "PATCH",
                "path": f"/Users/{user['id']}",
                "data": patch_body({"op": "Replace", "path": "active", "value": "False"}),
            }
        ),
    )
    assert results[0]["status"] == "200", results
    assert api.get(f"/Users/{user['id']}").get_json()["active"] is False
