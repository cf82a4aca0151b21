"""The admin API, ``/admin/v1`` (DESIGN §1): admin tokens only, one organisation's settings,
connections and deprovisioning holds; each change commits with its event, each refusal writes
nothing but its event; another organisation's ids are 404s."""

from __future__ import annotations

import csv
import io
import json
import threading
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.test import TestResponse

from scim_server.services import organizations, tokens
from scim_server.store.db import Database
from scim_server.store.models import Organization
from tests.api.audit_support import Auditor, auditor_for, client_address, client_at, request_id
from tests.api.test_lifecycle import cli, configure, send_invitation, set_active
from tests.api.test_users_errors import assert_error
from tests.api.test_write_conflicts import _wait_for_a_lock_wait
from tests.conftest import Api, Tenant, make_tenant, store_snapshot

ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"


def tokens_of_scope(database: Database, slug: str, scope: str) -> str:
    with database.transaction(write=True) as session:
        return tokens.issue_token(session, tokens.get_organization(session, slug), scope)


def admin_token(database: Database, slug: str) -> str:
    return tokens_of_scope(database, slug, "admin")


class Admin:
    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client, self.token = client, token

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> TestResponse:
        sent = {"Authorization": f"Bearer {self.token}", **headers}
        if body is not None:
            return self.client.open(f"/admin/v1{path}", method=method, json=body, headers=sent)
        return self.client.open(f"/admin/v1{path}", method=method, headers=sent)


@pytest.fixture
def admin(app: Flask, database: Database, api: Api) -> Admin:
    return Admin(app.test_client(), admin_token(database, api.tenant.slug))


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


def test_only_an_admin_token_is_accepted(
    app: Flask, database: Database, api: Api, admin: Admin
) -> None:
    assert admin.call("GET", "/organization").status_code == 200
    anonymous = app.test_client().get("/admin/v1/organization")
    assert anonymous.status_code == 401
    for token in (api.tenant.token, tokens_of_scope(database, api.tenant.slug, "audit")):
        refused = Admin(app.test_client(), token).call("GET", "/organization")
        assert refused.status_code == 403, refused.get_data(as_text=True)


def test_settings_are_read_and_changed_with_their_event(
    api: Api, admin: Admin, auditor: Auditor
) -> None:
    shown = admin.call("GET", "/organization").get_json()
    assert (shown["slug"], shown["seatLimit"], shown["deprovisionLimit"]) == (
        api.tenant.slug,
        None,
        "50",
    )
    rid = request_id("settings")
    response = admin.call(
        "PATCH",
        "/organization",
        {"seatLimit": 25, "deprovisionLimit": "10%", "allowedDomains": ["Acme.COM"]},
        **{"X-Request-Id": rid},
    )
    assert response.status_code == 200, response.get_json()
    settings = response.get_json()["settings"]
    assert (settings["seatLimit"], settings["deprovisionLimit"]) == (25, "10%")
    assert settings["allowedDomains"] == ["acme.com"]
    event = auditor.one(rid)
    assert (event["operation"], event["actorType"], event["status"]) == ("org.update", "admin", 200)
    assert event["changes"]["seatLimit"] == [None, 25]
    assert admin.call("GET", "/organization").get_json()["seatLimit"] == 25


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"seatLimit": "many"}, ['"seatLimit" must be an integer or null, got "many"']),
        ({"seatLimit": 0}, ["seatLimit: must be between 1 and 2147483647, got 0"]),
        ({"timezone": "Mars/Base"}, ["timezone: 'Mars/Base' is not a time zone name"]),
        ({"deprovisionLimit": "150%"}, ["deprovisionLimit: must be between 1% and 100%"]),
        # one domain per element (they were joined with commas and split again)
        ({"allowedDomains": ["a.com,b.com"]}, ['"allowedDomains": each element is one domain']),
        ({"exemptDomains": ["a.com", " "]}, ['"exemptDomains": each element is one domain']),
        ({"ssoDomain": "10.0.0.1"}, ["is an IP address, not a domain name"]),
        # digits of other scripts (int() and a Unicode \d read them) are no number here
        ({"deprovisionLimit": "\uff15\uff10"}, ["deprovisionLimit:", "is not a number of users"]),
        ({"deprovisionLimit": "\u0665%"}, ["deprovisionLimit:", "is not a number of users"]),
        ({"shoeSize": 42}, ['unknown setting "shoeSize"; the settings are: ssoDomain,']),
        ({}, ["the body must be a JSON object of the settings to change"]),
        (
            {"ssoDomain": "acme.com", "allowedDomains": ["other.com"]},
            ["enforces SSO has exactly one domain (acme.com)", "also name other.com"],
        ),
    ],
)
def test_a_bad_setting_is_refused_and_changes_nothing(
    api: Api, admin: Admin, auditor: Auditor, body: dict[str, Any], words: list[str]
) -> None:
    before = admin.call("GET", "/organization").get_json()
    rid = request_id("bad")
    response = admin.call("PATCH", "/organization", body, **{"X-Request-Id": rid})
    assert_error(response, 400, "invalidValue", *words)
    assert admin.call("GET", "/organization").get_json() == before
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["changes"]) == (
        "org.update",
        "refused",
        None,
    )


def test_connections_are_listed(api: Api, admin: Admin) -> None:
    api.create_user("owned@acme.com")
    (listed,) = admin.call("GET", "/connections").get_json()["connections"]
    assert (listed["id"], listed["name"], listed["usersOwned"]) == (
        api.tenant.connection_id,
        "test connection",
        1,
    )


def test_a_hold_is_listed_released_and_rejected(
    api: Api, admin: Admin, auditor: Auditor, database: Database
) -> None:
    configure(database, api.tenant.slug, "--deprovision-limit", "1")
    ids = [api.create_user(f"h{i}@acme.com")["id"] for i in range(4)]
    assert set_active(api, ids[0], False).status_code == 200
    assert set_active(api, ids[1], False).status_code == 503  # one more: held
    (hold,) = admin.call("GET", "/deprovisioning/holds").get_json()["holds"]
    assert (hold["state"], hold["count"], hold["connection"]["id"]) == (
        "held",
        1,
        api.tenant.connection_id,
    )
    shown = admin.call("GET", f"/deprovisioning/holds/{hold['id']}").get_json()
    assert [user["id"] for user in shown["users"]] == [ids[0]]

    base = f"/connections/{api.tenant.connection_id}/deprovisioning"
    rid = request_id("release")
    released = admin.call("POST", f"{base}/release", {"for": "30m"}, **{"X-Request-Id": rid})
    assert released.status_code == 200, released.get_json()
    assert released.get_json()["state"] == "released"
    event = auditor.one(rid)
    assert (event["operation"], event["actorType"]) == ("deprovisioning.release", "admin")
    assert event["changes"]["deprovisioning"] == ["held", "released"]
    assert set_active(api, ids[1], False).status_code == 200  # the retry goes through

    rejected = admin.call("POST", f"{base}/reject")
    assert (rejected.status_code, rejected.get_json()["state"]) == (200, "rejected")
    assert set_active(api, ids[2], False).status_code == 409
    assert admin.call("GET", "/deprovisioning/holds").get_json()["holds"] == []
    listed = admin.call("GET", "/deprovisioning/holds?all=true").get_json()["holds"]
    assert [hold["state"] for hold in listed] == ["rejected"]


def test_nothing_to_reject_is_a_conflict(api: Api, admin: Admin, database: Database) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    response = admin.call("POST", f"/connections/{api.tenant.connection_id}/deprovisioning/reject")
    assert_error(response, 409, None, "is held or released; nothing to reject")
    assert store_snapshot(database, api.tenant.org_id) == before


def test_another_organisation_s_ids_are_not_found(
    app: Flask, admin: Admin, database: Database
) -> None:
    other: Tenant = make_tenant(database)
    configure(database, other.slug, "--deprovision-limit", "1")
    theirs = Api(app.test_client(), other)
    ids = [theirs.create_user(f"o{i}@acme.com")["id"] for i in range(2)]
    assert set_active(theirs, ids[0], False).status_code == 200
    assert set_active(theirs, ids[1], False).status_code == 503
    (hold,) = (
        Admin(app.test_client(), admin_token(database, other.slug))
        .call("GET", "/deprovisioning/holds")
        .get_json()["holds"]
    )
    assert admin.call("GET", "/deprovisioning/holds").get_json()["holds"] == []
    assert_error(admin.call("GET", f"/deprovisioning/holds/{hold['id']}"), 404, None, "not found")
    released = admin.call("POST", f"/connections/{other.connection_id}/deprovisioning/release")
    assert_error(released, 404, None, f'connection "{other.connection_id}" not found')
    assert set_active(theirs, ids[1], False).status_code == 503  # still held
    listed = admin.call("GET", "/connections").get_json()["connections"]
    assert other.connection_id not in [connection["id"] for connection in listed]


def scim_status(app: Flask, token: str) -> int:
    return (
        client_at(app, client_address())
        .get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
        .status_code
    )


def test_a_connection_is_created_with_its_token_shown_once(
    app: Flask, admin: Admin, auditor: Auditor
) -> None:
    rid = request_id("create")
    response = admin.call(
        "POST", "/connections", {"name": "Okta production", "idp": "okta"}, **{"X-Request-Id": rid}
    )
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert (created["name"], created["idp"]) == ("Okta production", "okta")
    assert created["baseUrl"] == "http://localhost/scim/v2"
    assert scim_status(app, created["token"]) == 200
    event = auditor.one(rid)
    assert (event["operation"], event["resourceId"], event["status"]) == (
        "connection.create",
        created["id"],
        201,
    )
    assert created["token"].startswith(event["tokenPrefix"])
    assert created["token"] not in str(event)
    listed = admin.call("GET", "/connections").get_json()["connections"]
    assert created["id"] in [connection["id"] for connection in listed]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"name": " "}, ['"name" must not be empty']),
        ({"name": "x", "idp": "onelogin"}, ["idp must be one of okta, entra, generic"]),
        ({"idp": "okta"}, ['the body must be a JSON object of "idp", "name" (name required)']),
    ],
)
def test_a_bad_connection_is_refused(admin: Admin, body: dict[str, Any], words: list[str]) -> None:
    before = admin.call("GET", "/connections").get_json()
    assert_error(admin.call("POST", "/connections", body), 400, "invalidValue", *words)
    assert admin.call("GET", "/connections").get_json() == before


def test_rotate_keeps_the_old_token_for_the_overlap_and_revoke_ends_all(
    app: Flask, api: Api, admin: Admin, auditor: Auditor
) -> None:
    path = f"/connections/{api.tenant.connection_id}"
    rotated = admin.call("POST", f"{path}/rotate", {"overlap": "1h"})
    assert rotated.status_code == 200, rotated.get_json()
    new_token = rotated.get_json()["token"]
    (previous,) = rotated.get_json()["previousTokens"]
    assert (previous["revoked"], api.tenant.token.startswith(previous["prefix"])) == (False, True)
    assert scim_status(app, new_token) == 200
    assert scim_status(app, api.tenant.token) == 200  # still within the overlap
    rid = request_id("revoke")
    revoked = admin.call("POST", f"{path}/revoke", **{"X-Request-Id": rid})
    assert revoked.status_code == 200, revoked.get_json()
    assert {entry["revoked"] for entry in revoked.get_json()["revoked"]} == {True}
    assert (scim_status(app, new_token), scim_status(app, api.tenant.token)) == (401, 401)
    event = auditor.one(rid)
    assert (event["operation"], event["actorType"]) == ("connection.revoke", "admin")
    assert new_token not in str(event)


def test_another_organisation_s_connection_cannot_be_rotated_or_revoked(
    app: Flask, admin: Admin, database: Database
) -> None:
    other = make_tenant(database)
    for action in ("rotate", "revoke"):
        response = admin.call("POST", f"/connections/{other.connection_id}/{action}")
        assert_error(response, 404, None, f'connection "{other.connection_id}" not found')
    assert scim_status(app, other.token) == 200


def test_an_oauth_client_secret_is_issued_once_and_buys_access_tokens(
    app: Flask, api: Api, admin: Admin, auditor: Auditor
) -> None:
    path = f"/connections/{api.tenant.connection_id}/oauth-client"
    rid = request_id("oauth")
    created = admin.call("POST", path, **{"X-Request-Id": rid})
    assert created.status_code == 200, created.get_json()
    assert created.headers["Cache-Control"] == "no-store"
    body = created.get_json()
    assert body["clientId"] == api.tenant.connection_id
    assert body["tokenEndpoint"] == "http://localhost/oauth/token"
    assert body["previousTokens"] == []
    issued = app.test_client().post(
        body["tokenEndpoint"],
        data={
            "grant_type": "client_credentials",
            "client_id": body["clientId"],
            "client_secret": body["clientSecret"],
        },
    )
    assert issued.status_code == 200, issued.get_data(as_text=True)
    assert scim_status(app, issued.get_json()["access_token"]) == 200
    event = auditor.one(rid)
    assert (event["operation"], event["actorType"]) == ("connection.oauth", "admin")
    assert body["clientSecret"].startswith(event["tokenPrefix"])
    assert body["clientSecret"] not in str(event)

    replaced = admin.call("POST", path, {"overlap": "0"})
    assert replaced.status_code == 200, replaced.get_json()
    assert [(p["scope"], p["revoked"]) for p in replaced.get_json()["previousTokens"]] == [
        ("client", True),
        ("scim", True),
    ]
    assert scim_status(app, issued.get_json()["access_token"]) == 401
    assert scim_status(app, api.tenant.token) == 200  # the bearer token is another credential
    for bad in ({"overlap": "31d"}, {"overlap": 5}, {"lifetime": "1h"}):
        assert admin.call("POST", path, bad).status_code == 400


def test_the_tokens_are_listed_by_prefix(api: Api, admin: Admin, auditor: Auditor) -> None:
    rid = request_id("tokens")
    listed = admin.call("GET", "/tokens", **{"X-Request-Id": rid})
    assert listed.status_code == 200, listed.get_json()
    kinds = {(t["prefix"], t["kind"]) for t in listed.get_json()["tokens"]}
    assert kinds == {
        (api.tenant.token[:11], "connection"),
        (admin.token[:11], "admin"),
        (auditor.token[:11], "audit"),
    }
    assert api.tenant.token not in listed.get_data(as_text=True)
    assert auditor.one(rid)["operation"] == "token.list"
    assert admin.call("GET", "/tokens?all=maybe").status_code == 400


def test_a_leaked_token_is_revoked_by_prefix_and_never_echoed(
    app: Flask, api: Api, admin: Admin, auditor: Auditor, database: Database
) -> None:
    rid = request_id("revoke-token")
    revoked = admin.call(
        "POST", "/tokens/revoke", {"prefix": auditor.token}, **{"X-Request-Id": rid}
    )  # the whole token, pasted
    assert revoked.status_code == 200, revoked.get_json()
    assert revoked.get_json() == {
        "prefix": auditor.token[:11],
        "scope": "audit",
        "revoked": True,
        "expires": None,
        "issuedTokens": [],
    }
    assert auditor.token not in revoked.get_data(as_text=True)
    assert auditor.get().status_code == 401
    event = Auditor(app.test_client(), tokens_of_scope(database, api.tenant.slug, "audit")).one(rid)
    assert (event["operation"], event["resourceId"]) == ("token.revoke", auditor.token[:11])
    assert auditor.token not in json.dumps(event)
    again = admin.call("POST", "/tokens/revoke", {"prefix": auditor.token[:11]})
    assert again.status_code == 404
    other = make_tenant(database)
    theirs = admin.call("POST", "/tokens/revoke", {"prefix": other.token[:11]})
    assert theirs.status_code == 404
    assert scim_status(app, other.token) == 200
    assert admin.call("POST", "/tokens/revoke", {"prefix": ""}).status_code == 400


def test_another_organisation_s_connection_gets_no_oauth_client(
    admin: Admin, database: Database
) -> None:
    other = make_tenant(database)
    response = admin.call("POST", f"/connections/{other.connection_id}/oauth-client")
    assert_error(response, 404, None, f'connection "{other.connection_id}" not found')


def test_ownership_moves_from_one_connection_to_another(
    app: Flask, api: Api, admin: Admin, auditor: Auditor, database: Database
) -> None:
    created = admin.call("POST", "/connections", {"name": "Entra", "idp": "entra"}).get_json()
    user = api.create_user("moved@acme.com")
    entra = Api(app.test_client(), Tenant(api.tenant.slug, api.tenant.org_id, created["token"], ""))
    assert set_active(entra, user["id"], False).status_code == 409  # owned by the first one
    rid = request_id("transfer")
    moved = admin.call(
        "POST",
        "/connections/transfer",
        {"from": api.tenant.connection_id, "to": "Entra"},
        **{"X-Request-Id": rid},
    )
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json() == {
        "from": {"id": api.tenant.connection_id, "name": "test connection"},
        "to": {"id": created["id"], "name": "Entra"},
        "users": 1,
        "groups": 0,
    }
    assert set_active(entra, user["id"], False).status_code == 200
    event = auditor.one(rid)
    assert (event["operation"], event["actorType"]) == ("connection.transfer", "admin")
    assert event["changes"]["owner"] == [api.tenant.connection_id, created["id"]]

    other = make_tenant(database)
    before = store_snapshot(database, api.tenant.org_id)
    for body in (
        {"from": "Entra", "to": "Entra"},
        {"from": other.connection_id, "to": "Entra"},
        {"from": "Entra"},
        {"from": "Entra", "to": 7},
    ):
        refused = admin.call("POST", "/connections/transfer", body)
        assert refused.status_code == 400, (body, refused.get_json())
    assert store_snapshot(database, api.tenant.org_id) == before


def test_invitations_are_listed_resent_and_cancelled_without_their_links(
    api: Api, admin: Admin, auditor: Auditor, database: Database
) -> None:
    user = api.create_user("invitee@acme.com")
    assert user[ACCESS]["status"] == "invited"
    sent_link = send_invitation(database, api, user["id"])  # the mailer took it: the link exists
    listed = admin.call("GET", "/invitations?pending=true")
    assert listed.status_code == 200, listed.get_json()
    (first,) = listed.get_json()["invitations"]
    assert (first["userId"], first["userName"]) == (user["id"], "invitee@acme.com")

    rid = request_id("resend")
    resent = admin.call(
        "POST", "/invitations/resend", {"user": "INVITEE@acme.com"}, **{"X-Request-Id": rid}
    )
    assert resent.status_code == 200, resent.get_json()
    assert resent.get_json()["id"] == user["id"]
    assert resent.get_json()["invitation"]["id"] != first["id"]
    event = auditor.one(rid)
    assert (event["operation"], event["resourceId"], event["userName"]) == (
        "invitation.resend",
        user["id"],
        "invitee@acme.com",
    )
    pending = admin.call("GET", "/invitations?pending=true").get_json()["invitations"]
    assert [entry["id"] for entry in pending] == [resent.get_json()["invitation"]["id"]]
    with database.engine.connect() as connection:
        links = connection.execute(
            text("SELECT token_hash FROM invitations WHERE user_pk IN "
                 "(SELECT pk FROM users WHERE id = :u)"), {"u": user["id"]}
        ).scalars().all()  # fmt: skip
    everything = json.dumps([listed.get_json(), resent.get_json(), event])
    assert tokens.hash_token(sent_link) in links
    assert sent_link not in everything
    assert not any(link and link in everything for link in links)

    cancelled = admin.call("POST", "/invitations/cancel", {"user": user["id"]})
    assert cancelled.status_code == 200, cancelled.get_json()
    assert admin.call("GET", "/invitations?pending=true").get_json()["invitations"] == []
    assert len(admin.call("GET", "/invitations").get_json()["invitations"]) == 2
    again = admin.call("POST", "/invitations/cancel", {"user": user["id"]})
    assert_error(again, 400, "invalidValue", "user 'invitee@acme.com' has no pending invitation")
    missing = admin.call("POST", "/invitations/resend", {"user": "nobody@acme.com"})
    assert_error(missing, 404, None, 'user "nobody@acme.com" not found')
    assert admin.call("GET", "/invitations?pending=maybe").status_code == 400
    assert admin.call("POST", "/invitations/resend", {"userName": "x"}).status_code == 400


def test_a_locked_user_is_unlocked_and_another_organisation_s_is_not_found(
    api: Api, admin: Admin, auditor: Auditor, database: Database
) -> None:
    user = api.create_user("locked@acme.com")
    with database.engine.begin() as connection:  # what the host product does
        connection.execute(
            text("UPDATE users SET status = 'locked' WHERE id = :i"), {"i": user["id"]}
        )
    rid = request_id("unlock")
    unlocked = admin.call(
        "POST", "/users/unlock", {"user": "locked@acme.com"}, **{"X-Request-Id": rid}
    )
    assert unlocked.status_code == 200, unlocked.get_json()
    assert unlocked.get_json() == {
        "id": user["id"],
        "userName": "locked@acme.com",
        "status": "invited",
    }
    assert api.get(f"/Users/{user['id']}").get_json()[ACCESS]["status"] == "invited"
    event = auditor.one(rid)
    assert event["changes"] == {f"{ACCESS}:status": ["locked", "invited"]}
    assert_error(
        admin.call("POST", "/users/unlock", {"user": user["id"]}),
        400,
        "invalidValue",
        "user 'locked@acme.com' is invited, not locked",
    )
    theirs = Api(api.client, make_tenant(database)).create_user("theirs@acme.com")
    assert_error(
        admin.call("POST", "/users/unlock", {"user": theirs["id"]}),
        404,
        None,
        f'user "{theirs["id"]}" not found',
    )


def test_the_policy_report_lists_users_the_settings_would_refuse(
    api: Api, admin: Admin, auditor: Auditor
) -> None:
    api.create_user("in@acme.com")
    outside = api.create_user("out@elsewhere.com")
    changed = admin.call("PATCH", "/organization", {"allowedDomains": ["acme.com"]})
    assert changed.status_code == 200, changed.get_json()
    rid = request_id("policy")
    report = admin.call("GET", "/policy-check", **{"X-Request-Id": rid})
    assert report.status_code == 200, report.get_json()
    body = report.get_json()
    assert body["count"] == 1
    assert [entry["id"] for entry in body["users"]] == [outside["id"]]
    assert auditor.one(rid)["operation"] == "policy.check"


def test_a_mapping_is_added_and_removed_with_its_members_recomputed(
    api: Api, admin: Admin, auditor: Auditor
) -> None:
    member = api.create_user("lead@acme.com")
    group = api.post(
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Sales Leads",
            "members": [{"value": member["id"]}],
        },
    )
    assert group.status_code == 201
    rid = request_id("map")
    added = admin.call(
        "POST", "/mappings", {"groupPrefix": "sales", "role": "Editor"}, **{"X-Request-Id": rid}
    )
    assert added.status_code == 201, added.get_json()
    mapping = added.get_json()["mapping"]
    assert (mapping["match"], mapping["value"], mapping["role"]) == ("prefix", "sales", "Editor")
    assert added.get_json()["affectedUsers"]["count"] == 1
    assert api.get(f"/Users/{member['id']}").get_json()[ACCESS]["role"] == "Editor"
    event = auditor.one(rid)
    assert (event["operation"], event["actorType"], event["changes"]["role"]) == (
        "mapping.add",
        "admin",
        [None, "Editor"],
    )
    assert [m["id"] for m in admin.call("GET", "/mappings").get_json()["mappings"]] == [
        mapping["id"]
    ]
    # its id in another script's digits names nothing (werkzeug's \d+ read them: a removal)
    arabic_indic = quote("".join(chr(0x660 + int(d)) for d in str(mapping["id"])))
    assert admin.call("DELETE", f"/mappings/{arabic_indic}").status_code == 404
    removed = admin.call("DELETE", f"/mappings/{mapping['id']}")
    assert removed.status_code == 200, removed.get_json()
    assert removed.get_json()["affectedUsers"]["count"] == 1
    assert admin.call("GET", "/mappings").get_json()["mappings"] == []


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"groupName": "x"}, 400, ['exactly one of "groupName", "groupPrefix"']),
        ({"groupName": "x", "groupPrefix": "y", "role": "Editor"}, 400, ["exactly one of"]),
        ({"groupName": "x", "role": "Owner"}, 400, ["no role 'Owner' in this organisation"]),
        ({"groupName": "x", "role": "Editor", "extra": 1}, 400, ["the body must be a JSON"]),
    ],
)
def test_a_bad_mapping_is_refused(
    admin: Admin, body: dict[str, Any], status: int, words: list[str]
) -> None:
    assert_error(admin.call("POST", "/mappings", body), status, "invalidValue", *words)
    assert admin.call("GET", "/mappings").get_json()["mappings"] == []


def test_another_organisation_s_mapping_is_not_found(
    app: Flask, admin: Admin, database: Database
) -> None:
    other = make_tenant(database)
    theirs = Admin(app.test_client(), admin_token(database, other.slug))
    mapping = theirs.call("POST", "/mappings", {"groupName": "x", "role": "Editor"}).get_json()
    response = admin.call("DELETE", f"/mappings/{mapping['mapping']['id']}")
    assert_error(response, 404, None, f"mapping {mapping['mapping']['id']} not found")
    assert len(theirs.call("GET", "/mappings").get_json()["mappings"]) == 1


def _patch_during(database: Database, admin: Admin, org_id: int, held: Any, body: Any) -> Any:
    """PATCH ``body`` while another admin's change ``held(session, org)`` is not committed."""
    answers: list[Any] = []
    with database.transaction(write=True) as session:
        held(session, session.get_one(Organization, org_id))
        thread = threading.Thread(
            target=lambda: answers.append(admin.call("PATCH", "/organization", body))
        )
        thread.start()
        _wait_for_a_lock_wait(database, what="the admin request")
    thread.join(30)
    return answers[0]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_change_is_judged_on_the_settings_a_concurrent_change_left(
    api: Api, admin: Admin, database: Database
) -> None:
    """Two admins: the second change waits for the first and sees what it committed (the row
    was read before the rules lock, and judged stale: SSO and another allowed domain both
    stood, and a default role was recomputed from the wrong one)."""
    assert admin.call("PATCH", "/organization", {"defaultRole": "Editor"}).status_code == 200
    user = api.create_user("plain@acme.com")

    def sso_and_viewer(session: Any, org: Organization) -> None:
        update = organizations.SettingsUpdate(sso_domain="acme.com")
        organizations.change_settings(session, org, update, default_role="Viewer")

    refused = _patch_during(
        database, admin, api.tenant.org_id, sso_and_viewer, {"allowedDomains": ["other.com"]}
    )
    assert_error(refused, 400, "invalidValue", "enforces SSO has exactly one domain (acme.com)")

    def back_to_editor(session: Any, org: Organization) -> None:
        organizations.change_settings(
            session, org, organizations.SettingsUpdate(), default_role="Editor"
        )

    moved = _patch_during(
        database, admin, api.tenant.org_id, back_to_editor, {"defaultRole": "Collaborator"}
    )
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["affectedUsers"]["count"] == 1
    assert api.get(f"/Users/{user['id']}").get_json()[ACCESS]["role"] == "Collaborator"


def test_a_chunked_body_is_read(api: Api, admin: Admin) -> None:
    """No Content-Length (Transfer-Encoding: chunked, as gunicorn hands it on) is still a body:
    ``{"overlap": "0"}`` must end the old token now, not after the default 24 hours."""
    response = admin.client.post(
        f"/admin/v1/connections/{api.tenant.connection_id}/rotate",
        input_stream=io.BytesIO(json.dumps({"overlap": "0"}).encode()),
        headers={
            "Authorization": f"Bearer {admin.token}",
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200, response.get_json()
    (previous,) = response.get_json()["previousTokens"]
    assert previous["revoked"] is True
    assert response.headers["Cache-Control"] == "no-store"  # it carries the new token


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("PATCH", "/organization", {"seatLimit": 2**31}, 400, ["between 1 and 2147483647"]),
        ("PATCH", "/organization", {"deprovisionLimit": 2**63}, 400, ["between 1 and"]),
        ("PATCH", "/organization", {"deactivateOutside": False}, 400, ["nothing to change"]),
        ("POST", "/connections", {"name": "x" * 201}, 400, ["1 to 200 characters"]),
        ("GET", "/deprovisioning/holds/99999999999999999999", None, 404, ["not found"]),
        ("DELETE", "/mappings/2147483648", None, 404, ["mapping 2147483648 not found"]),
        ("POST", "/connections/a%00b/revoke", None, 404, ["not found"]),
        ("DELETE", "/roles/a%00b", None, 404, ["not found"]),
        ("DELETE", "/access-groups/a%00", None, 404, ["not found"]),
        # past Python's 4,300-digit int() (a 500 before)
        ("PATCH", "/organization", {"deprovisionLimit": "9" * 5000}, 400, ["between 1 and"]),
    ],
)
def test_values_past_what_is_stored_are_refused_not_failed(
    admin: Admin, method: str, path: str, body: Any, status: int, words: list[str]
) -> None:
    scim_type = "invalidValue" if status == 400 else None
    assert_error(admin.call(method, path, body), status, scim_type, *words)


def test_huge_durations_are_refused(api: Api, admin: Admin) -> None:
    base = f"/connections/{api.tenant.connection_id}"
    for path, name in ((f"{base}/rotate", "overlap"), (f"{base}/deprovisioning/release", "for")):
        for huge in ("99999999999999999999d", "9" * 5000):  # the second past Python's int()
            response = admin.call("POST", path, {name: huge})
            assert_error(response, 400, "invalidValue", "is longer than the 30 days allowed")
            assert len(response.get_json()["detail"]) < 200


def test_refusals_name_the_api_s_remedies(api: Api, admin: Admin) -> None:
    api.create_user("out@other.com")
    outside = admin.call("PATCH", "/organization", {"ssoDomain": "acme.com"})
    assert_error(outside, 400, "invalidValue", "out@other.com", 'give "deactivateOutside": true')
    both = admin.call(
        "PATCH", "/organization", {"ssoDomain": "acme.com", "allowedDomains": ["x.com"]}
    )
    assert_error(both, 400, "invalidValue", '("allowedDomains": [] clears the list)')
    details = outside.get_json()["detail"] + both.get_json()["detail"]
    assert "--deactivate-outside" not in details
    assert "--allowed-domains" not in details


def test_roles_and_access_groups_are_managed_with_their_events(
    api: Api, admin: Admin, auditor: Auditor
) -> None:
    created = admin.call(
        "POST", "/roles", {"name": "Auditor", "rank": 15, "permissions": ["reports.read"]}
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json() == {
        "name": "Auditor",
        "rank": 15,
        "isAdmin": False,
        "builtIn": False,
        "permissions": ["reports.read"],
        "default": False,
    }
    names = [role["name"] for role in admin.call("GET", "/roles").get_json()["roles"]]
    assert "Auditor" in names
    group = admin.call("POST", "/access-groups", {"name": "EMEA", "campaignIds": ["c1", "c2"]})
    assert group.status_code == 201, group.get_json()
    assert admin.call("GET", "/access-groups").get_json()["accessGroups"] == [
        {"name": "EMEA", "campaignIds": ["c1", "c2"]}
    ]
    member = api.create_user("emea@acme.com")
    api.post(
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "EMEA sales",
            "members": [{"value": member["id"]}],
        },
    )
    assert (
        admin.call(
            "POST", "/mappings", {"groupName": "EMEA sales", "accessGroup": "EMEA"}
        ).status_code
        == 201
    )
    removed = admin.call("DELETE", "/access-groups/emea")  # names are case-insensitive
    assert removed.status_code == 200, removed.get_json()
    assert (
        removed.get_json()["mappingsRemoved"],
        removed.get_json()["affectedUsers"]["count"],
    ) == (
        1,
        1,
    )
    assert admin.call("DELETE", "/roles/Auditor").status_code == 200
    operations = [event["operation"] for event in auditor.events('actorType eq "admin"')]
    for operation in ("role.create", "access_group.create", "access_group.delete", "role.delete"):
        assert operation in operations


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/roles", {"name": "X"}, 400, ["(name, rank required)"]),
        ("POST", "/roles", {"name": "X", "rank": "high"}, 400, ['"rank" must be an integer']),
        ("POST", "/roles", {"name": "X", "rank": 2**40}, 400, ['"rank" must be between']),
        (
            "POST",
            "/roles",
            {"name": "X", "rank": 1, "permissions": "all"},
            400,
            ["list of strings"],
        ),
        ("POST", "/roles", {"name": "Viewer", "rank": 77}, 400, ["exists"]),
        ("DELETE", "/roles/Administrator", None, 400, ["is built in and cannot be deleted"]),
        ("DELETE", "/roles/Nobody", None, 404, ['Role "Nobody" not found']),
        ("DELETE", "/access-groups/Nowhere", None, 404, ['AccessGroup "Nowhere" not found']),
    ],
)
def test_bad_roles_and_access_groups_are_refused(
    admin: Admin, method: str, path: str, body: Any, status: int, words: list[str]
) -> None:
    before = admin.call("GET", "/roles").get_json()
    scim_type = "invalidValue" if status == 400 else None
    assert_error(admin.call(method, path, body), status, scim_type, *words)
    assert admin.call("GET", "/roles").get_json() == before


def test_users_are_exported_as_csv(
    app: Flask, api: Api, admin: Admin, auditor: Auditor, database: Database
) -> None:
    api.create_user("csv@acme.com", title="=SUM(A1)")
    rid = request_id("export")
    response = admin.call("GET", "/users.csv", **{"X-Request-Id": rid})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)  # read whole before the next request
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(row["userName"], row["title"]) for row in rows] == [("csv@acme.com", "'=SUM(A1)")]
    assert text.endswith("\r\n")  # RFC 4180 line ends
    # the CLI's file (its runner reads line ends as \n)
    assert text.replace("\r\n", "\n") == cli_export(database, api.tenant.slug)
    event = auditor.one(rid)
    assert (event["operation"], event["actorType"], event["status"]) == (
        "users.export",
        "admin",
        200,
    )
    other = make_tenant(database)
    Api(app.test_client(), other).create_user("theirs@acme.com")
    assert "theirs@acme.com" not in admin.call("GET", "/users.csv").get_data(as_text=True)


def test_head_and_options_are_logged_as_such_not_as_an_export(
    admin: Admin, auditor: Auditor
) -> None:
    """Flask answers HEAD with the GET's view and OPTIONS by itself, under the GET's
    operation: a HEAD of users.csv was logged 'users exported as CSV (streamed)'."""
    for method, said in (("HEAD", "no body was sent"), ("OPTIONS", "nothing was read")):
        rid = request_id(method.lower())
        response = admin.call(method, "/users.csv", **{"X-Request-Id": rid})
        assert response.status_code == 200
        assert response.get_data() == b""
        event = auditor.one(rid)
        assert (event["operation"], event["status"]) == ("users.export", 200)
        assert said in event["detail"]
        assert "exported" not in event["detail"]


def cli_export(database: Database, slug: str) -> str:
    return cli(database, "users", "export", "--org", slug)
