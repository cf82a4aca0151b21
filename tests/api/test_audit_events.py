"""Every request is exactly one provisioning-log event, saying who did what and how it ended
(DESIGN §6, issue #3 items 1-3 and 7). Events are read back as an auditor reads them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text, update

from scim_server.services import tokens
from scim_server.store.db import Database
from scim_server.store.models import ApiToken
from scim_server.store.types import utcnow
from tests.api.audit_support import (
    ENTERPRISE,
    EVENT_FIELDS,
    SEARCH_REQUEST,
    SYSTEM_CHAIN,
    Auditor,
    all_event_rows_as_text,
    auditor_for,
    client_address,
    client_at,
    database_fails_on,
    events_from,
    request_id,
    run_cli,
    system_events,
)
from tests.conftest import USER_SCHEMA, Api, make_tenant, patch_body, store_snapshot

USER_AGENT = "Okta SCIM Client 1.0.0"
DEPARTMENT = f"{ENTERPRISE}:department"
STATUS = "urn:ietf:params:scim:schemas:extension:access:2.0:User:status"


@pytest.fixture
def address() -> str:
    return client_address()


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


def _call(api: Api, address: str, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    """A request from ``address`` with an IdP's User-Agent (and the given X-Request-Id)."""
    headers = {"User-Agent": USER_AGENT}
    rid = kwargs.pop("rid", None)
    if rid is not None:
        headers["X-Request-Id"] = rid
    return api.request(
        method, path, body, headers=headers, environ_base={"REMOTE_ADDR": address}, **kwargs
    )


def _parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_each_user_operation_is_one_event_saying_who_what_and_how(
    api: Api, auditor: Auditor, address: str
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    # The server assigns a request id when the client sends none; the event carries that one.
    created = _call(
        api,
        address,
        "POST",
        "/Users",
        {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": "bjensen@example.com",
            "externalId": "00u1",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
            ENTERPRISE: {"department": "Tour Operations"},
        },
    )
    assert created.status_code == 201
    user_id = created.get_json()["id"]
    rids = {"create": created.headers["X-Request-Id"]}
    assert rids["create"]

    def call(label: str, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        rids[label] = request_id(label)
        response = _call(api, address, method, path, body, rid=rids[label], **kwargs)
        assert response.headers["X-Request-Id"] == rids[label]
        return response

    assert call("read", "GET", f"/Users/{user_id}").status_code == 200
    wanted = {"filter": 'userName eq "bjensen@example.com"'}
    assert call("list", "GET", "/Users", query_string=wanted).status_code == 200
    search = {"schemas": [SEARCH_REQUEST], "filter": 'name.familyName eq "Jensen"'}
    assert call("search", "POST", "/Users/.search", search).status_code == 200
    replaced = call(
        "replace",
        "PUT",
        f"/Users/{user_id}",
        {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": "bjensen@example.com",
            "externalId": "00u1",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
            "title": "Tour Guide",
            ENTERPRISE: {"department": "Sales"},
        },
    )
    assert replaced.status_code == 200
    patched = call(
        "patch",
        "PATCH",
        f"/Users/{user_id}",
        patch_body(
            {"op": "replace", "path": "active", "value": False},
            {"op": "replace", "path": "title", "value": "Tour Guide"},  # unchanged: not recorded
        ),
    )
    assert patched.status_code == 200
    assert call("delete", "DELETE", f"/Users/{user_id}").status_code == 204

    events = auditor.events()
    # One event per request, numbered 1, 2, 3, ... and each sealing the one before it.
    assert [event["seq"] for event in events] == list(range(1, 8))
    assert [event["prevHash"] for event in events[1:]] == [event["hash"] for event in events[:-1]]
    by_operation = {event["operation"]: event for event in events}
    assert list(by_operation) == [
        "user.create",
        "user.read",
        "user.list",
        "user.search",
        "user.replace",
        "user.patch",
        "user.delete",
    ]
    moments = [_parse_time(event["time"]) for event in events]
    assert moments == sorted(moments)
    assert started <= moments[0] <= moments[-1] <= datetime.now(UTC) + timedelta(seconds=5)

    for label, event in zip(rids, events, strict=True):
        assert set(event) == EVENT_FIELDS
        assert event["requestId"] == rids[label]
        assert event["actorType"] == "connection"
        assert event["actor"] == api.tenant.connection_id
        assert event["tokenPrefix"] == tokens.token_prefix(api.tenant.token)
        assert event["clientIp"] == address
        assert event["userAgent"] == USER_AGENT
        assert event["outcome"] == "success"
        assert event["scimType"] is None
        assert re.fullmatch(r"[0-9a-f]{64}", event["hash"])

    assert [event["status"] for event in events] == [201, 200, 200, 200, 200, 200, 204]
    for operation in ("user.create", "user.read", "user.replace", "user.patch", "user.delete"):
        event = by_operation[operation]
        assert (event["resourceType"], event["resourceId"]) == ("User", user_id)
        assert event["userName"] == "bjensen@example.com"
        assert event["detail"] is None
    # Searches say what was looked for; they touch no single resource and change nothing.
    assert by_operation["user.list"]["detail"] == 'filter: userName eq "bjensen@example.com"'
    assert by_operation["user.search"]["detail"] == 'filter: name.familyName eq "Jensen"'
    for operation in ("user.read", "user.list", "user.search"):
        assert by_operation[operation]["changes"] is None

    invitation = by_operation["user.create"]["changes"]["invitation"][1]
    assert by_operation["user.create"]["changes"] == {
        "userName": [None, "bjensen@example.com"],
        "externalId": [None, "00u1"],
        "name": [None, {"givenName": "Barbara", "familyName": "Jensen"}],
        "emails": [None, [{"value": "bjensen@example.com", "type": "work", "primary": True}]],
        DEPARTMENT: [None, "Tour Operations"],
        "active": [None, True],
        # the lifecycle (DESIGN §5.3): invited, with an invitation (never its token) in the outbox
        STATUS: [None, "invited"],
        "invitation": [None, invitation],
    }
    assert set(invitation) == {"id", "created", "expires", "sent", "cancelled", "accepted"}
    assert by_operation["user.replace"]["changes"] == {
        DEPARTMENT: ["Tour Operations", "Sales"],
        "title": [None, "Tour Guide"],
    }
    assert by_operation["user.patch"]["changes"] == {
        "active": [True, False],
        STATUS: ["invited", "deactivated"],
    }
    # The delete keeps a tombstone: every value the user had, so the log still says who it was.
    assert by_operation["user.delete"]["changes"] == {
        "userName": ["bjensen@example.com", None],
        "externalId": ["00u1", None],
        "name": [{"givenName": "Barbara", "familyName": "Jensen"}, None],
        "emails": [[{"value": "bjensen@example.com", "type": "work", "primary": True}], None],
        DEPARTMENT: ["Sales", None],
        "active": [False, None],
        "title": ["Tour Guide", None],
        STATUS: ["deactivated", None],
        "deleteMode": [None, "hard"],
    }


def test_a_patch_that_changes_nothing_records_no_change(api: Api, auditor: Auditor) -> None:
    user = api.create_user("same@example.com", displayName="Same")
    response = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "replace", "path": "displayName", "value": "Same"}),
        headers={"X-Request-Id": (rid := request_id("noop"))},
    )
    assert response.status_code == 200
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["changes"]) == ("user.patch", "success", {})


def test_refusals_are_one_event_each_with_scim_type_and_detail(
    api: Api, auditor: Auditor, database: Database, address: str
) -> None:
    existing = api.create_user("taken@example.com", displayName="Taken")
    before = store_snapshot(database, api.tenant.org_id)
    missing = "00000000-0000-4000-8000-000000000000"
    stale = {"If-Match": 'W/"999"'}
    cases: list[tuple[str, str, Any, dict[str, str]]] = [
        ("POST", "/Users", {"schemas": [USER_SCHEMA], "userName": "TAKEN@example.com"}, {}),
        ("POST", "/Users", {"schemas": [USER_SCHEMA], "userName": "new", "active": "yes"}, {}),
        ("GET", f"/Users/{missing}", None, {}),
        ("PATCH", f"/Users/{missing}", patch_body({"op": "remove", "path": "title"}), {}),
        ("GET", "/Me", None, {}),
        (
            "PATCH",
            f"/Users/{existing['id']}",
            patch_body({"op": "replace", "path": "displayName", "value": "Changed"}),
            stale,
        ),
    ]
    responses = []
    for method, path, body, extra in cases:
        rid = request_id("refused")
        headers = {"X-Request-Id": rid, "User-Agent": USER_AGENT, **extra}
        response = api.request(
            method, path, body, headers=headers, environ_base={"REMOTE_ADDR": address}
        )
        responses.append((rid, response))
    assert [response.status_code for _, response in responses] == [409, 400, 404, 404, 501, 412]
    assert store_snapshot(database, api.tenant.org_id) == before  # nothing was written

    events = [auditor.one(rid) for rid, _ in responses]
    expected: list[tuple[Any, ...]] = [
        ("user.create", "refused", 409, "uniqueness", "User", None, "TAKEN@example.com"),
        # the body was refused before it was read as a User: its type is not pinned here
        ("user.create", "refused", 400, "invalidValue", ..., None, None),
        ("user.read", "refused", 404, None, "User", missing, None),
        ("user.patch", "refused", 404, None, "User", missing, None),
        ("me.unsupported", "failed", 501, None, None, None, None),
        ("user.patch", "refused", 412, None, "User", existing["id"], "taken@example.com"),
    ]
    for (_, response), event, row in zip(responses, events, expected, strict=True):
        operation, outcome, status, scim_type, resource_type, resource_id, user_name = row
        body = response.get_json()
        assert event["operation"] == operation
        assert event["outcome"] == outcome
        assert event["status"] == status
        assert event["scimType"] == scim_type == body.get("scimType")
        assert event["detail"] == body["detail"]  # the auditor reads what the IdP was told
        if resource_type is not ...:
            assert event["resourceType"] == resource_type
        assert event["resourceId"] == resource_id
        assert event["userName"] == user_name
        assert event["changes"] is None  # nothing changed, so no change is claimed
        assert event["actor"] == api.tenant.connection_id
        assert event["clientIp"] == address
    assert "already taken" in events[0]["detail"]
    assert "active" in events[1]["detail"]
    # refusals are numbered in the same chain as everything else: no gaps
    seqs = [event["seq"] for event in auditor.events()]
    assert seqs == list(range(1, len(seqs) + 1))


def test_unknown_endpoint_without_a_token_is_one_event_in_the_system_chain(
    app: Flask, database: Database, address: str
) -> None:
    rid = request_id("nowhere")
    response = app.test_client().get(
        "/scim/v2/Userz",
        headers={"X-Request-Id": rid},
        environ_base={"REMOTE_ADDR": address},
    )
    assert response.status_code == 404
    [event] = system_events(database, rid)
    assert event["operation"] == "http.unknown_endpoint"
    assert (event["outcome"], event["status"]) == ("refused", 404)
    assert event["detail"] == response.get_json()["detail"]
    assert (event["actor_type"], event["client_ip"]) == ("anonymous", address)


def test_unknown_endpoint_called_by_a_connection_is_in_its_organisation_log(
    api: Api, auditor: Auditor, database: Database, address: str
) -> None:
    """An IdP configured with a wrong path is refused; its admin must be able to see why, in
    the organisation's own log, attributed to the connection that called."""
    rid = request_id("wrong-path")
    response = api.request(
        "GET", "/Userz", headers={"X-Request-Id": rid}, environ_base={"REMOTE_ADDR": address}
    )
    assert response.status_code == 404
    event = auditor.one(rid)
    assert event["operation"] == "http.unknown_endpoint"
    assert (event["outcome"], event["status"]) == ("refused", 404)
    assert (event["actorType"], event["actor"]) == ("connection", api.tenant.connection_id)
    assert system_events(database, rid) == []


def test_unknown_token_is_an_event_of_the_system_chain_with_only_its_prefix(
    app: Flask, database: Database, address: str
) -> None:
    bogus = tokens.new_token()  # well-formed, never issued
    rid = request_id("bogus")
    response = app.test_client().get(
        "/scim/v2/Users",
        headers={"Authorization": f"Bearer {bogus}", "X-Request-Id": rid},
        environ_base={"REMOTE_ADDR": address},
    )
    assert response.status_code == 401
    [event] = system_events(database, rid)
    assert event["org_id"] == SYSTEM_CHAIN
    assert event["operation"] == "auth.failed"
    assert (event["outcome"], event["status"]) == ("refused", 401)
    assert event["token_prefix"] == tokens.token_prefix(bogus)
    assert len(event["token_prefix"]) < len(bogus) // 3
    assert (event["actor_type"], event["actor"]) == ("anonymous", None)
    assert event["client_ip"] == address
    assert event["detail"] == response.get_json()["detail"]
    assert not any(bogus in row for row in all_event_rows_as_text(database))


def test_missing_token_is_an_event_of_the_system_chain(
    app: Flask, database: Database, address: str
) -> None:
    rid = request_id("anonymous")
    response = app.test_client().get(
        "/scim/v2/Users", headers={"X-Request-Id": rid}, environ_base={"REMOTE_ADDR": address}
    )
    assert response.status_code == 401
    [event] = system_events(database, rid)
    assert (event["operation"], event["status"], event["token_prefix"]) == (
        "auth.failed",
        401,
        None,
    )


def test_a_short_bogus_token_is_not_recorded_whole(
    app: Flask, database: Database, address: str
) -> None:
    """The 'prefix' of a credential no longer than the prefix is the credential itself."""
    secret = "hunter2"
    rid = request_id("short")
    response = app.test_client().get(
        "/scim/v2/Users",
        headers={"Authorization": f"Bearer {secret}", "X-Request-Id": rid},
        environ_base={"REMOTE_ADDR": address},
    )
    assert response.status_code == 401
    [event] = system_events(database, rid)
    assert event["operation"] == "auth.failed"
    assert not any(secret in row for row in all_event_rows_as_text(database))


@pytest.mark.parametrize("how", ["expired", "revoked"])
def test_expired_or_revoked_token_is_an_event_of_its_organisation(
    api: Api, auditor: Auditor, database: Database, address: str, how: str
) -> None:
    assert api.get("/Users").status_code == 200
    values = (
        {"expires_at": utcnow() - timedelta(seconds=1)}
        if how == "expired"
        else {"revoked_at": utcnow()}
    )
    with database.transaction(write=True) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == tokens.hash_token(api.tenant.token))
            .values(**values)
        )
    rid = request_id(how)
    response = api.request(
        "GET", "/Users", headers={"X-Request-Id": rid}, environ_base={"REMOTE_ADDR": address}
    )
    assert response.status_code == 401
    event = auditor.one(rid)
    assert event["operation"] == "auth.failed"
    assert (event["outcome"], event["status"]) == ("refused", 401)
    assert (event["actorType"], event["actor"]) == ("connection", api.tenant.connection_id)
    assert event["tokenPrefix"] == tokens.token_prefix(api.tenant.token)
    assert event["clientIp"] == address
    assert event["detail"] == response.get_json()["detail"]
    assert system_events(database, rid) == []


def test_passwords_and_tokens_never_reach_the_log(
    api: Api, auditor: Auditor, database: Database
) -> None:
    password = "Pa55w0rd-never-logged-7f3a"
    placeholder = "Okta-placeholder-pw-91c2"
    patched_password = "Patched-secret-5d0e"
    user = api.create_user("secretive@example.com", password=password, displayName="S")
    # Okta sends a (placeholder) password with every PUT when password sync is on.
    replaced = api.put(
        f"/Users/{user['id']}",
        {
            "schemas": [USER_SCHEMA],
            "userName": "secretive@example.com",
            "password": placeholder,
            "displayName": "Secretive",
        },
    )
    assert replaced.status_code == 200
    patched = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "replace", "path": "password", "value": patched_password}),
    )
    assert patched.status_code == 200
    refused = api.post(
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "secretive@example.com", "password": password},
    )
    assert refused.status_code == 409
    assert api.delete(f"/Users/{user['id']}").status_code == 204

    events = auditor.events()
    assert [event["operation"] for event in events] == [
        "user.create",
        "user.replace",
        "user.patch",
        "user.create",
        "user.delete",
    ]
    assert all("password" not in (event["changes"] or {}) for event in events)
    assert events[1]["changes"] == {"displayName": ["S", "Secretive"]}
    rows = all_event_rows_as_text(database)
    for secret in (password, placeholder, patched_password, api.tenant.token, auditor.token):
        assert not any(secret in row for row in rows), secret


def test_a_write_that_fails_half_way_leaves_no_change_and_only_a_failure_event(
    api: Api, auditor: Auditor, database: Database
) -> None:
    marker = "trigger-abort@example.com"
    before = store_snapshot(database, api.tenant.org_id)
    rid = request_id("half-way")
    with database_fails_on(database, marker):
        response = api.post(
            "/Users",
            {
                "schemas": [USER_SCHEMA],
                "userName": "half-way@example.com",
                "emails": [{"value": marker, "type": "work"}],
            },
            headers={"X-Request-Id": rid},
        )
    assert response.status_code == 500
    body = response.get_json()
    assert body["detail"] == f"internal error (request id {rid})"
    assert set(body) == {"schemas", "status", "detail"}  # no traceback, no SQL, no trigger text
    # The user row was written before the failing email row: the whole transaction rolled back.
    assert store_snapshot(database, api.tenant.org_id) == before
    assert api.list_users(filter='userName eq "half-way@example.com"')["totalResults"] == 0

    [event] = [event for event in auditor.events() if event["operation"] == "user.create"]
    assert event["requestId"] == rid
    assert (event["outcome"], event["status"]) == ("failed", 500)
    assert event["detail"] == body["detail"]
    assert event["changes"] is None
    seqs = [event["seq"] for event in auditor.events()]
    assert seqs == list(range(1, len(seqs) + 1))  # the rolled-back write took no sequence number


def test_a_delete_that_fails_claims_no_tombstone(
    api: Api, auditor: Auditor, database: Database
) -> None:
    marker = "trigger-abort-delete@example.com"
    user = api.create_user("stays@example.com", emails=[{"value": marker, "type": "work"}])
    rid = request_id("delete-fails")
    with database_fails_on(database, marker, "DELETE"):
        response = api.delete(f"/Users/{user['id']}", headers={"X-Request-Id": rid})
    assert response.status_code == 500
    assert api.get(f"/Users/{user['id']}").status_code == 200  # still there
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["status"]) == ("user.delete", "failed", 500)
    assert (event["resourceId"], event["userName"]) == (user["id"], "stays@example.com")
    assert event["changes"] is None  # the user was not deleted: no tombstone is claimed


def test_a_flood_of_bad_tokens_writes_a_bounded_number_of_events(
    app: Flask, database: Database, address: str
) -> None:
    limit: int = app.extensions["scim_auth_throttle"]._limit
    client = client_at(app, address)
    statuses = set()
    for _ in range(100):
        response = client.get("/scim/v2/Users", headers={"Authorization": "Bearer scim_guess"})
        statuses.add(response.status_code)
    assert statuses == {401}  # every request is refused, recorded or not
    events = events_from(database, address)
    assert 0 < limit < 100
    assert len(events) == limit
    assert {(event["org_id"], event["operation"], event["status"]) for event in events} == {
        (SYSTEM_CHAIN, "auth.failed", 401)
    }
    # Another address is not silenced by this one's flood.
    other = client_address()
    response = client_at(app, other).get(
        "/scim/v2/Users", headers={"Authorization": "Bearer scim_guess"}
    )
    assert response.status_code == 401
    assert len(events_from(database, other)) == 1


def test_other_organisations_never_see_each_others_events(
    app: Flask, database: Database, api: Api, auditor: Auditor
) -> None:
    other = make_tenant(database)
    other_api = Api(app.test_client(), other)
    other_api.create_user("someone-else@example.com")
    api.create_user("ours@example.com")
    events = auditor.events()
    assert [event["userName"] for event in events] == ["ours@example.com"]
    assert [event["seq"] for event in events] == [1]  # each organisation has its own chain
    with database.engine.connect() as connection:
        count = connection.scalar(
            text("SELECT count(*) FROM audit_events WHERE org_id = :o"), {"o": other.org_id}
        )
    assert count == 1


def test_a_refusal_quoting_half_a_surrogate_pair_is_still_recorded(
    api: Api, database: Database, auditor: Auditor
) -> None:
    """An Entra app role is JSON inside a string; one holding ``\\ud800`` decodes to half a
    UTF-16 pair, which the refusal's detail quotes. The event is stored with the escape written
    out (neither database stores the half character); it used to be lost with a logged error."""
    role = json.dumps({"value": "Admin\\ud800"})  # the escape as text, decoded by the server
    rid = request_id("half")
    response = api.post(
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "half@example.com", "roles": [{"value": role}]},
        headers={"X-Request-Id": rid},
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["scimType"] == "invalidValue"
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["status"]) == (
        "user.create",
        "refused",
        400,
    )
    assert "Admin\\ud800" in event["detail"]
    verified = run_cli(database, "audit", "verify", "--org", api.tenant.slug, "--json")
    assert verified.exit_code == 0, verified.stdout


def test_a_request_naming_a_nul_is_recorded_with_the_nul_written_out(
    api: Api, database: Database, auditor: Auditor
) -> None:
    """PostgreSQL's text cannot hold NUL; a 404 for ``/Users/%00`` quotes the id it did not
    find, and its event used to be lost with a logged error."""
    rid = request_id("nul")
    response = api.get("/Users/a%00b", headers={"X-Request-Id": rid})
    assert response.status_code == 404
    event = auditor.one(rid)
    assert (event["operation"], event["status"]) == ("user.read", 404)
    assert "a\\u0000b" in (event["detail"] or "") + (event["resourceId"] or "")
    verified = run_cli(database, "audit", "verify", "--org", api.tenant.slug, "--json")
    assert verified.exit_code == 0, verified.stdout
