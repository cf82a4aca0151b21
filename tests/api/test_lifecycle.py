"""User status lifecycle through SCIM (DESIGN §5.3, issue #5 item 3): invitations, ``active``,
locked users, hard and soft DELETE, API keys, and the invitation/user commands."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from scim_server.services import lifecycle, tokens
from scim_server.store.db import Database
from scim_server.store.models import Invitation, User, UserApiKey
from tests.api.audit_support import (
    Auditor,
    all_event_rows_as_text,
    auditor_for,
    request_id,
    run_cli,
)
from tests.api.test_access_cli import last_event
from tests.api.test_users_errors import assert_error
from tests.conftest import USER_SCHEMA, Api, patch_body, store_snapshot

ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"
STATUS = f"{ACCESS}:status"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def configure(database: Database, slug: str, *options: str) -> None:
    result = run_cli(database, "org", "update", slug, *options)
    assert result.exit_code == 0, result.output


def cli(database: Database, *args: str) -> str:
    result = run_cli(database, *args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


def status_of(api: Api, user_id: str) -> str:
    response = api.get(f"/Users/{user_id}")
    assert response.status_code == 200, response.get_json()
    status: str = response.get_json()[ACCESS]["status"]
    return status


def set_active(api: Api, user_id: str, active: bool, **kwargs: Any) -> Any:
    return api.patch(
        f"/Users/{user_id}",
        patch_body({"op": "replace", "path": "active", "value": active}),
        **kwargs,
    )


def invitations(database: Database, user_id: str) -> list[Invitation]:
    with database.transaction(write=False) as session:
        return list(
            session.scalars(
                select(Invitation)
                .join(User, User.pk == Invitation.user_pk)
                .where(User.id == user_id)
                .order_by(Invitation.created_at, Invitation.id)
            )
        )


def lock(database: Database, user_id: str) -> None:
    """What the host product does after failed sign-ins."""
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE users SET status = 'locked' WHERE id = :i"), {"i": user_id})


def test_sso_organisation_creates_active_users_without_invitation(
    api: Api, database: Database
) -> None:
    configure(database, api.tenant.slug, "--sso-domain", "acme.com")
    user = api.create_user("sso@acme.com")
    assert user[ACCESS] == {"status": "active"}
    assert invitations(database, user["id"]) == []


def test_other_organisations_invite_with_a_hashed_token_valid_a_day(
    api: Api, database: Database, auditor: Auditor
) -> None:
    rid = request_id("invite")
    response = api.post(
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "new@acme.com"},
        headers={"X-Request-Id": rid},
    )
    assert response.status_code == 201
    user = response.get_json()
    assert user[ACCESS]["status"] == "invited"
    [invitation] = invitations(database, user["id"])
    assert invitation.expires_at - invitation.created_at == timedelta(hours=24)
    assert (invitation.sent_at, invitation.cancelled_at) == (None, None)
    assert invitation.token_hash is None  # the link is made when the mailer sends it
    event = auditor.one(rid)
    assert event["changes"][STATUS] == [None, "invited"]
    assert event["changes"]["invitation"][1]["id"] == invitation.id
    assert "token" not in json.dumps(event["changes"]["invitation"]).lower()
    token = send_invitation(database, api, user["id"])
    [sent] = invitations(database, user["id"])
    assert sent.token_hash == tokens.hash_token(token)
    assert not any(
        token in row or sent.token_hash in row for row in all_event_rows_as_text(database)
    )


def test_active_false_and_true_move_between_statuses(api: Api, database: Database) -> None:
    user = api.create_user("cycle@acme.com")
    uid = user["id"]
    first = invitations(database, uid)[0]
    # invited -> deactivated: the pending link stops working
    assert set_active(api, uid, False).get_json()[ACCESS]["status"] == "deactivated"
    assert invitations(database, uid)[0].cancelled_at is not None
    # never accepted: back to invited, with a new invitation
    assert set_active(api, uid, True).get_json()[ACCESS]["status"] == "invited"
    pending = [i for i in invitations(database, uid) if i.cancelled_at is None]
    assert len(pending) == 1
    assert pending[0].id != first.id
    # the mailer sends the link and the host product's sign-up accepts it: active
    with database.transaction(write=True) as session:
        [message] = [
            m
            for m in lifecycle.drain_outbox(session, api.tenant.org_id, None, 100)
            if m["userId"] == uid
        ]
    with database.transaction(write=True) as session:
        lifecycle.accept_invitation(session, str(message["token"]))
    assert status_of(api, uid) == "active"
    assert set_active(api, uid, False).get_json()[ACCESS]["status"] == "deactivated"
    # accepted once: reactivation makes it active, no new invitation
    count = len(invitations(database, uid))
    assert set_active(api, uid, True).get_json()[ACCESS]["status"] == "active"
    assert len(invitations(database, uid)) == count
    # a PUT without active changes nothing; created inactive: deactivated
    put = api.put(f"/Users/{uid}", {"schemas": [USER_SCHEMA], "userName": "cycle@acme.com"})
    assert put.get_json()[ACCESS]["status"] == "active"
    created = api.create_user("off@acme.com", active=False)
    assert created[ACCESS]["status"] == "deactivated"
    assert invitations(database, created["id"]) == []


def test_status_is_read_only(api: Api) -> None:
    user = api.create_user("ro@acme.com", **{ACCESS: {"status": "active"}})
    assert user[ACCESS]["status"] == "invited"


def test_a_locked_user_cannot_be_reactivated_by_scim(
    api: Api, database: Database, auditor: Auditor
) -> None:
    configure(database, api.tenant.slug, "--sso-domain", "acme.com")
    uid = api.create_user("locked@acme.com")["id"]
    lock(database, uid)
    assert status_of(api, uid) == "locked"
    # an IdP update that re-sends active: true (every Okta PUT) is accepted, still locked
    put = api.put(
        f"/Users/{uid}",
        {"schemas": [USER_SCHEMA], "userName": "locked@acme.com", "active": True, "title": "X"},
    )
    assert put.status_code == 200
    assert put.get_json()[ACCESS]["status"] == "locked"
    # deprovisioning always works; the lock stays
    assert set_active(api, uid, False).get_json()[ACCESS]["status"] == "locked"
    # reactivation is refused: 409, nothing written, one refused event
    before = store_snapshot(database, api.tenant.org_id)
    rid = request_id("locked")
    response = set_active(api, uid, True, headers={"X-Request-Id": rid})
    assert_error(
        response,
        409,
        None,
        'user "locked@acme.com" is locked',
        "SCIM cannot unlock it",
        f"scim-server user unlock --org {api.tenant.slug} USERNAME",
    )
    assert store_snapshot(database, api.tenant.org_id) == before
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["status"]) == ("user.patch", "refused", 409)
    assert event["detail"] == response.get_json()["detail"]
    assert event["changes"] is None
    # an admin unlocks: active is false, so deactivated; then SCIM reactivates it
    out = cli(database, "user", "unlock", "--org", api.tenant.slug, "LOCKED@acme.com")
    assert out == "user LOCKED@acme.com unlocked: now deactivated\n"
    unlock = last_event(database, api.tenant.org_id, "user.unlock")
    assert unlock.changes == {STATUS: ["locked", "deactivated"]}
    assert (unlock.actor_type, unlock.resource_id) == ("cli", uid)
    assert set_active(api, uid, True).get_json()[ACCESS]["status"] == "active"
    refused = run_cli(database, "users", "unlock", "--org", api.tenant.slug, "locked@acme.com")
    assert refused.exit_code != 0
    assert "is active, not locked" in refused.output


def _api_key(database: Database, user_id: str) -> str:
    with database.transaction(write=True) as session:
        user = session.scalars(select(User).where(User.id == user_id)).one()
        return lifecycle.issue_api_key(session, user, "ci")


def _keys(database: Database, org_id: int) -> list[UserApiKey]:
    with database.transaction(write=False) as session:
        return list(session.scalars(select(UserApiKey).where(UserApiKey.org_id == org_id)))


def test_hard_delete_removes_the_user_and_revokes_its_api_keys(
    api: Api, database: Database, auditor: Auditor
) -> None:
    uid = api.create_user("gone@acme.com")["id"]
    key = _api_key(database, uid)
    rid = request_id("hard")
    assert api.delete(f"/Users/{uid}", headers={"X-Request-Id": rid}).status_code == 204
    assert api.get(f"/Users/{uid}").status_code == 404
    [stored] = _keys(database, api.tenant.org_id)
    assert stored.revoked_at is not None
    assert stored.user_pk is None
    changes = auditor.one(rid)["changes"]
    assert changes["deleteMode"] == [None, "hard"]
    assert changes["apiKeysRevoked"] == [None, [key[:10]]]
    assert changes[STATUS] == ["invited", None]
    with database.engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM users WHERE id = :i"), {"i": uid}
            ).scalar()
            == 0
        )


def test_soft_delete_hides_the_user_and_frees_its_user_name(
    api: Api, database: Database, auditor: Auditor
) -> None:
    configure(database, api.tenant.slug, "--delete-mode", "soft")
    user = api.create_user("soft@acme.com", externalId="ext-soft")
    uid = user["id"]
    _api_key(database, uid)
    group = api.post(
        "/Groups", {"schemas": [GROUP], "displayName": "Team", "members": [{"value": uid}]}
    ).get_json()
    rid = request_id("soft")
    assert api.delete(f"/Users/{uid}", headers={"X-Request-Id": rid}).status_code == 204
    assert auditor.one(rid)["changes"]["deleteMode"] == [None, "soft"]
    # gone for SCIM: read, replace, patch, delete, lists and filters
    assert api.get(f"/Users/{uid}").status_code == 404
    assert set_active(api, uid, False).status_code == 404
    assert api.delete(f"/Users/{uid}").status_code == 404
    assert api.list_users()["totalResults"] == 0
    assert api.list_users(filter='externalId eq "ext-soft"')["totalResults"] == 0
    assert "members" not in api.get(f"/Groups/{group['id']}").get_json()
    add = api.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "add", "path": "members", "value": [{"value": uid}]}),
    )
    assert_error(add, 400, "invalidValue", "no such user")
    # its keys are revoked, its row is kept (deleted_at) until purged
    assert all(k.revoked_at is not None for k in _keys(database, api.tenant.org_id))
    with database.engine.connect() as connection:
        row = connection.execute(
            text("SELECT deleted_at FROM users WHERE id = :i"), {"i": uid}
        ).one()
    assert row[0] is not None
    # the userName is free again (case-insensitively)
    again = api.create_user("SOFT@acme.com")
    assert again["id"] != uid
    # purge: nothing is older than a day; everything is older than 0 days
    out = cli(database, "users", "purge", "--org", api.tenant.slug, "--older-than", "1")
    assert out == f"purged 0 users of {api.tenant.slug}\n"
    out = cli(database, "users", "purge", "--org", api.tenant.slug, "--older-than", "0", "--json")
    assert json.loads(out) == {
        "org": api.tenant.slug,
        "purged": 1,
        "users": [{"id": uid, "userName": "soft@acme.com"}],
    }
    event = last_event(database, api.tenant.org_id, "users.purge")
    assert event.changes == {
        "purgedUsers": {"count": 1, "users": [{"id": uid, "userName": "soft@acme.com"}]}
    }
    with database.engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM users WHERE id = :i"), {"i": uid}
            ).scalar()
            == 0
        )
    assert api.get(f"/Users/{again['id']}").status_code == 200


def send_invitation(database: Database, api: Api, user_id: str) -> str:
    """What the mailer does (``invitation drain``): the token of the user's link."""
    with database.transaction(write=True) as session:
        messages = lifecycle.drain_outbox(session, api.tenant.org_id, None, 100)
    [token] = [m["token"] for m in messages if m["userId"] == user_id]
    return str(token)


def test_invitation_commands(api: Api, database: Database) -> None:
    slug = api.tenant.slug
    user = api.create_user("inv@acme.com")
    first = invitations(database, user["id"])[0]
    first_link = send_invitation(database, api, user["id"])
    listed = json.loads(cli(database, "invitation", "list", "--org", slug, "--json"))
    assert [(i["id"], i["userName"], i["cancelled"]) for i in listed] == [
        (first.id, "inv@acme.com", None)
    ]
    out = cli(database, "invitation", "resend", "--org", slug, "inv@acme.com")
    assert "the previous link no longer works" in out
    old, new = invitations(database, user["id"])
    assert old.id == first.id
    assert old.cancelled_at is not None
    assert new.cancelled_at is None
    new_link = send_invitation(database, api, user["id"])
    assert new_link != first_link
    with pytest.raises(lifecycle.ServiceError), database.transaction(write=True) as session:
        lifecycle.accept_invitation(session, first_link)  # the previous link no longer works
    event = last_event(database, api.tenant.org_id, "invitation.resend")
    assert event.changes is not None
    assert event.changes["invitation"][1]["id"] == new.id
    pending = json.loads(cli(database, "invitation", "list", "--org", slug, "--pending", "--json"))
    assert [i["id"] for i in pending] == [new.id]
    assert cli(database, "invitation", "cancel", "--org", slug, "inv@acme.com") == (
        "invitation of inv@acme.com cancelled\n"
    )
    assert last_event(database, api.tenant.org_id, "invitation.cancel").resource_id == user["id"]
    assert (
        json.loads(cli(database, "invitation", "list", "--org", slug, "--pending", "--json")) == []
    )
    again = run_cli(database, "invitation", "cancel", "--org", slug, "inv@acme.com")
    assert again.exit_code != 0
    assert "has no pending invitation" in again.output
    # only invited users get invitations
    set_active(api, user["id"], False)
    refused = run_cli(database, "invitation", "resend", "--org", slug, "inv@acme.com")
    assert refused.exit_code != 0
    assert "is deactivated, not invited" in refused.output
    missing = run_cli(database, "invitation", "resend", "--org", slug, "nobody@acme.com")
    assert missing.exit_code != 0
    assert "no user 'nobody@acme.com'" in missing.output


def test_deactivate_outside_sets_the_status_and_cancels_invitations(
    api: Api, database: Database
) -> None:
    outside = api.create_user("out@gmail.com")
    inside = api.create_user("in@acme.com")
    configure(database, api.tenant.slug, "--sso-domain", "acme.com", "--deactivate-outside")
    assert status_of(api, outside["id"]) == "deactivated"
    assert invitations(database, outside["id"])[0].cancelled_at is not None
    assert status_of(api, inside["id"]) == "invited"


def test_soft_deleted_users_are_not_recomputed_or_reported(api: Api, database: Database) -> None:
    configure(database, api.tenant.slug, "--delete-mode", "soft")
    uid = api.create_user("ghost@gmail.com")["id"]
    assert api.delete(f"/Users/{uid}").status_code == 204
    out = cli(database, "org", "update", api.tenant.slug, "--default-role", "Viewer", "--json")
    assert json.loads(out)["affectedUsers"] == {"count": 0, "users": []}
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    report = json.loads(cli(database, "policy", "check", "--org", api.tenant.slug, "--json"))
    assert report["count"] == 0
