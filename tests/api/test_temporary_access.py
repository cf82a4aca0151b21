"""Temporary access (DESIGN §5.4 item 4, issue #5): ``accessExpiresAt`` ends at 23:59:59 of its
date in the organisation's time zone, at most 30 days ahead; past it the user reads ``expired``
and takes no seat; a user with temporary access cannot hold an admin role, directly or through a
mapped group (409)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from scim_server.store.db import Database
from tests.api.audit_support import Auditor, auditor_for, request_id, run_cli
from tests.api.test_lifecycle import ACCESS, configure
from tests.api.test_users_errors import assert_error
from tests.conftest import USER_SCHEMA, Api, patch_body, store_snapshot

EXPIRES = f"{ACCESS}:accessExpiresAt"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ADMIN_CONFLICT = ("has temporary access", 'cannot hold the admin role "Administrator"')


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


def end_of(day: date, zone: str) -> str:
    moment = datetime.combine(day, time(23, 59, 59), tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def in_days(days: int) -> date:
    return datetime.now(UTC).date() + timedelta(days=days)


def temporary(user_name: str, day: date, **attributes: Any) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA, ACCESS],
        "userName": user_name,
        ACCESS: {"accessExpiresAt": f"{day.isoformat()}T08:00:00Z"},
        **attributes,
    }


def refused(
    api: Api,
    auditor: Auditor,
    database: Database,
    method: str,
    path: str,
    body: Any,
    operation: str,
    status: int,
    scim_type: str | None,
    *words: str,
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    rid = request_id("temp")
    response = api.request(method, path, body, headers={"X-Request-Id": rid})
    assert_error(response, status, scim_type, *words)
    assert store_snapshot(database, api.tenant.org_id) == before
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["status"]) == (operation, "refused", status)
    assert (event["scimType"], event["detail"]) == (scim_type, response.get_json()["detail"])
    assert event["changes"] is None


def test_access_ends_at_the_end_of_the_day_in_the_organisation_time_zone(
    api: Api, database: Database
) -> None:
    configure(database, api.tenant.slug, "--timezone", "Europe/Paris")
    day = in_days(10)
    user = api.post("/Users", temporary("t@acme.com", day)).get_json()
    assert user[ACCESS]["accessExpiresAt"] == end_of(day, "Europe/Paris")
    assert user[ACCESS]["status"] == "invited"
    # re-sending what was read back (as Okta does) keeps the same instant
    again = api.put(f"/Users/{user['id']}", {**user, "schemas": [USER_SCHEMA, ACCESS]})
    assert again.status_code == 200, again.get_json()
    assert again.get_json()[ACCESS]["accessExpiresAt"] == end_of(day, "Europe/Paris")
    # the limit is today + 30 days (in the organisation's zone)
    last = datetime.now(ZoneInfo("Europe/Paris")).date() + timedelta(days=30)
    ok = api.post("/Users", temporary("last@acme.com", last))
    assert ok.status_code == 201
    # removing it ends temporary access
    removed = api.patch(
        f"/Users/{user['id']}", patch_body({"op": "remove", "path": EXPIRES})
    ).get_json()
    assert "accessExpiresAt" not in removed[ACCESS]


def test_more_than_30_days_ahead_is_refused(api: Api, auditor: Auditor, database: Database) -> None:
    day = datetime.now(UTC).date() + timedelta(days=32)
    refused(
        api,
        auditor,
        database,
        "POST",
        "/Users",
        temporary("far@acme.com", day),
        "user.create",
        400,
        "invalidValue",
        f"accessExpiresAt {day.isoformat()} is more than 30 days ahead",
        "(23:59:59, UTC)",
    )
    user = api.create_user("near@acme.com")
    body = patch_body({"op": "add", "path": EXPIRES, "value": f"{day.isoformat()}T00:00:00Z"})
    refused(
        api,
        auditor,
        database,
        "PATCH",
        f"/Users/{user['id']}",
        body,
        "user.patch",
        400,
        "invalidValue",
        "is more than 30 days ahead",
    )


def test_past_the_end_the_user_is_expired_and_takes_no_seat(
    api: Api, auditor: Auditor, database: Database
) -> None:
    configure(database, api.tenant.slug, "--seat-limit", "1", "--sso-domain", "acme.com")
    gone = api.post("/Users", temporary("gone@acme.com", in_days(-1))).get_json()
    assert gone[ACCESS]["status"] == "expired"
    assert api.get(f"/Users/{gone['id']}").get_json()[ACCESS]["status"] == "expired"
    api.create_user("seat@acme.com")  # the expired user holds no seat
    # extending the access makes it count again: refused while the seat is taken
    body = patch_body(
        {"op": "replace", "path": EXPIRES, "value": f"{in_days(5).isoformat()}T00:00:00Z"}
    )
    refused(
        api,
        auditor,
        database,
        "PATCH",
        f"/Users/{gone['id']}",
        body,
        "user.patch",
        403,
        None,
        "seat limit reached (1 of 1)",
    )


def test_a_temporary_user_cannot_hold_an_admin_role_directly(
    api: Api, auditor: Auditor, database: Database
) -> None:
    admin = {"roles": [{"value": "Administrator"}]}
    refused(
        api,
        auditor,
        database,
        "POST",
        "/Users",
        temporary("tadmin@acme.com", in_days(3), **admin),
        "user.create",
        409,
        None,
        *ADMIN_CONFLICT,
    )
    existing = api.create_user("boss@acme.com", **admin)
    body = patch_body(
        {"op": "add", "path": EXPIRES, "value": f"{in_days(3).isoformat()}T00:00:00Z"}
    )
    refused(
        api,
        auditor,
        database,
        "PATCH",
        f"/Users/{existing['id']}",
        body,
        "user.patch",
        409,
        None,
        'user "boss@acme.com" has temporary access',
        "remove the role or the group membership, or clear accessExpiresAt first",
    )
    # a non-admin role is fine
    api.post("/Users", temporary("ed@acme.com", in_days(3), roles=[{"value": "Editor"}]))


def test_a_temporary_user_cannot_be_created_with_an_admin_default_role(
    api: Api, auditor: Auditor, database: Database
) -> None:
    """A new user's access is computed without a recomputation (issue #7): the default role
    still counts as an admin role it would hold."""
    result = run_cli(database, "org", "update", api.tenant.slug, "--default-role", "Administrator")
    assert result.exit_code == 0, result.output
    refused(
        api,
        auditor,
        database,
        "POST",
        "/Users",
        temporary("tdefault@acme.com", in_days(3)),
        "user.create",
        409,
        None,
        'user "tdefault@acme.com" has temporary access',
        *ADMIN_CONFLICT,
    )
    # a direct role is not the default: it wins, and is no admin role
    created = api.post("/Users", temporary("ted@acme.com", in_days(3), roles=[{"value": "Editor"}]))
    assert created.status_code == 201, created.get_json()
    assert created.get_json()[ACCESS]["role"] == "Editor"


def test_a_temporary_user_cannot_get_an_admin_role_from_a_mapped_group(
    api: Api, auditor: Auditor, database: Database
) -> None:
    slug = api.tenant.slug
    result = run_cli(
        database,
        "mapping",
        "add",
        "--org",
        slug,
        "--group-name",
        "Admins",
        "--role",
        "Administrator",
    )
    assert result.exit_code == 0, result.output
    temp = api.post("/Users", temporary("tg@acme.com", in_days(3))).get_json()
    group = api.post("/Groups", {"schemas": [GROUP], "displayName": "Admins"}).get_json()
    body = patch_body({"op": "add", "path": "members", "value": [{"value": temp["id"]}]})
    refused(
        api,
        auditor,
        database,
        "PATCH",
        f"/Groups/{group['id']}",
        body,
        "group.patch",
        409,
        None,
        'user "tg@acme.com" has temporary access',
        *ADMIN_CONFLICT,
    )
    assert "members" not in api.get(f"/Groups/{group['id']}").get_json()
    # an admin mapping onto a group a temporary user is in is refused by the CLI too
    other = api.post(
        "/Groups", {"schemas": [GROUP], "displayName": "Ops", "members": [{"value": temp["id"]}]}
    )
    assert other.status_code == 201
    other.get_json()  # a group response streams its members: read it to the end
    before = store_snapshot(database, api.tenant.org_id)
    cli = run_cli(
        database, "mapping", "add", "--org", slug, "--group-name", "Ops", "--role", "Administrator"
    )
    assert cli.exit_code != 0
    assert "has temporary access" in cli.output
    assert store_snapshot(database, api.tenant.org_id) == before
    default = run_cli(database, "org", "update", slug, "--default-role", "Administrator")
    assert default.exit_code != 0
    assert 'cannot hold the admin role "Administrator"' in default.output
