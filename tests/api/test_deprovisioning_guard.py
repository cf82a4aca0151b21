"""The mass-deprovisioning guard (DESIGN §5.4 item 8), through the HTTP surface and the CLI.

One connection may deactivate or delete at most the organisation's limit of users within its
window; the deprovisioning of one more user opens a hold: it and every later deprovisioning from
that connection answer 503 with ``Retry-After``, write nothing and are one event each, until an
admin releases (the retries pass) or rejects (409, the IdP stops retrying) the hold.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from scim_server.services import tokens
from scim_server.store.db import Database
from scim_server.store.models import Deprovision, DeprovisioningHold
from tests.api.audit_support import Auditor, auditor_for, request_id, run_cli
from tests.api.test_bulk import bulk, send
from tests.api.test_lifecycle import cli, configure, set_active
from tests.api.test_users_errors import assert_error
from tests.conftest import USER_SCHEMA, Api, Tenant, make_tenant, patch_body, store_snapshot

CONNECTION = "test connection"  # the name conftest's tenants give their connection


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


def users(api: Api, count: int, prefix: str = "u") -> list[str]:
    return [api.create_user(f"{prefix}{i}@acme.com")["id"] for i in range(count)]


def held(api: Api, response: Any, limit: str) -> None:
    assert_error(
        response,
        503,
        None,
        f'deprovisioning from connection "{CONNECTION}" is held since ',
        f'as many as organisation "{api.tenant.slug}" allows ({limit})',
        "Nothing was changed",
        f'scim-server deprovisioning release --org {api.tenant.slug} --connection "{CONNECTION}"',
    )
    assert response.headers["Retry-After"] == "600"


def active_flags(api: Api, ids: list[str]) -> list[bool]:
    return [api.get(f"/Users/{user_id}").get_json()["active"] for user_id in ids]


def holds(database: Database, org_id: int) -> list[tuple[Any, ...]]:
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT state, rule FROM deprovisioning_holds WHERE org_id = :o ORDER BY pk"),
            {"o": org_id},
        ).all()
    return [tuple(row) for row in rows]


def move_back(database: Database, model: Any, column: str, org_id: int, minutes: int) -> None:
    """Time passing, without sleeping: move the guard's timestamps ``minutes`` into the past."""
    with database.transaction(write=True) as session:
        for row in session.scalars(select(model).where(model.org_id == org_id)):
            if getattr(row, column) is not None:
                setattr(row, column, getattr(row, column) - timedelta(minutes=minutes))


def test_a_new_organisation_has_the_default_guard(api: Api, database: Database) -> None:
    shown = json.loads(cli(database, "org", "show", api.tenant.slug, "--json"))
    assert (shown["deprovisionLimit"], shown["deprovisionWindowMinutes"]) == ("50", 10)
    text_output = cli(database, "org", "show", api.tenant.slug)
    assert "deprovision limit:" in text_output
    assert "50 users" in text_output
    assert "10 minutes" in text_output


def test_the_deprovisioning_past_the_limit_is_held_and_writes_nothing(
    api: Api, auditor: Auditor, database: Database
) -> None:
    configure(database, api.tenant.slug, "--deprovision-limit", "3")
    ids = users(api, 6)
    for user_id in ids[:3]:  # as many as the limit: no hold
        assert set_active(api, user_id, False).status_code == 200
    assert holds(database, api.tenant.org_id) == []

    before = store_snapshot(database, api.tenant.org_id)
    attempts = [
        ("user.patch", lambda rid: set_active(api, ids[3], False, headers={"X-Request-Id": rid})),
        (
            "user.replace",
            lambda rid: api.put(
                f"/Users/{ids[4]}",
                {"schemas": [USER_SCHEMA], "userName": "u4@acme.com", "active": False},
                headers={"X-Request-Id": rid},
            ),
        ),
        ("user.delete", lambda rid: api.delete(f"/Users/{ids[5]}", headers={"X-Request-Id": rid})),
    ]
    for operation, attempt in attempts:  # the first opens the hold, the others meet it
        rid = request_id("held")
        response = attempt(rid)
        held(api, response, "3 users in 10 minutes")
        assert "it deactivated or deleted 3 users" in response.get_json()["detail"]
        event = auditor.one(rid)
        assert (event["operation"], event["outcome"], event["status"]) == (
            operation,
            "failed",  # as every 5xx: the IdP is to retry
            503,
        )
        assert event["detail"] == response.get_json()["detail"]
        assert event["changes"] is None
        assert holds(database, api.tenant.org_id) == [("held", "3 users in 10 minutes")]
    assert store_snapshot(database, api.tenant.org_id) == before
    assert active_flags(api, ids) == [False, False, False, True, True, True]


def test_what_takes_nothing_away_passes_while_held(api: Api, database: Database) -> None:
    configure(database, api.tenant.slug, "--deprovision-limit", "1")
    first, second, third = users(api, 3)
    assert set_active(api, first, False).status_code == 200
    held(api, set_active(api, second, False), "1 users in 10 minutes")  # one more: held
    # creating, changing, reactivating; deactivating or deleting who is already deactivated
    api.create_user("new@acme.com")
    renamed = api.patch(
        f"/Users/{second}", patch_body({"op": "replace", "path": "displayName", "value": "S"})
    )
    assert renamed.status_code == 200
    assert set_active(api, first, False).status_code == 200
    assert set_active(api, first, True).status_code == 200
    held(api, set_active(api, first, False), "1 users in 10 minutes")
    with database.engine.begin() as connection:  # deactivated by an admin, not by the IdP
        connection.execute(
            text("UPDATE users SET active = :f, status = 'deactivated' WHERE id = :id"),
            {"f": False, "id": third},
        )
    assert api.delete(f"/Users/{third}").status_code == 204


def test_the_hold_is_per_connection_and_per_organisation(
    app: Flask, api: Api, database: Database
) -> None:
    configure(database, api.tenant.slug, "--deprovision-limit", "1")
    ids = users(api, 3)
    assert set_active(api, ids[0], False).status_code == 200
    held(api, set_active(api, ids[1], False), "1 users in 10 minutes")

    with database.transaction(write=True) as session:
        org = tokens.get_organization(session, api.tenant.slug)
        other, token = tokens.create_connection(session, org, "second idp", "generic")
    second = Api(app.test_client(), Tenant(api.tenant.slug, api.tenant.org_id, token, other.id))
    own = second.create_user("theirs@acme.com")["id"]
    assert set_active(second, own, False).status_code == 200  # its own count: 1 of 1

    elsewhere = Api(app.test_client(), make_tenant(database))
    configure(database, elsewhere.tenant.slug, "--deprovision-limit", "1")
    theirs = elsewhere.create_user("x@acme.com")["id"]
    assert set_active(elsewhere, theirs, False).status_code == 200


def test_deprovisions_older_than_the_window_do_not_count(api: Api, database: Database) -> None:
    # ten digits with leading zeros are 5 minutes (a review caught them read as too many)
    window = ("--deprovision-window", "0000000005")
    configure(database, api.tenant.slug, "--deprovision-limit", "2", *window)
    ids = users(api, 4)
    assert set_active(api, ids[0], False).status_code == 200
    move_back(database, Deprovision, "at", api.tenant.org_id, 6)  # out of the 5-minute window
    assert set_active(api, ids[1], False).status_code == 200
    assert holds(database, api.tenant.org_id) == []
    assert api.delete(f"/Users/{ids[2]}").status_code == 204  # 2 of 2 within 5 minutes
    held(api, set_active(api, ids[3], False), "2 users in 5 minutes")


def test_release_lets_the_retries_through_then_counts_afresh(
    api: Api, auditor: Auditor, database: Database
) -> None:
    slug = api.tenant.slug
    configure(database, slug, "--deprovision-limit", "2")
    ids = users(api, 9)
    for user_id in ids[:2]:
        assert set_active(api, user_id, False).status_code == 200
    held(api, set_active(api, ids[2], False), "2 users in 10 minutes")

    output = cli(database, "deprovisioning", "release", "--org", slug, "--connection", CONNECTION)
    assert f"deprovisioning from {CONNECTION} released: it passes uncounted until" in output
    (event,) = auditor.events('operation eq "deprovisioning.release"')
    assert (event["actorType"], event["resourceType"]) == ("cli", "Connection")
    assert event["changes"]["deprovisioning"] == ["held", "released"]
    assert event["changes"]["heldUsers"] == [None, 2]

    for user_id in ids[2:6]:  # the IdP's retry, and more: the grace period is uncounted
        assert set_active(api, user_id, False).status_code == 200
    move_back(database, Deprovision, "at", api.tenant.org_id, 61)  # the grace period is over
    move_back(database, DeprovisioningHold, "until", api.tenant.org_id, 61)
    assert set_active(api, ids[6], False).status_code == 200
    assert set_active(api, ids[7], False).status_code == 200  # 2 of 2 after the grace period
    held(api, set_active(api, ids[8], False), "2 users in 10 minutes")
    assert [state for state, _ in holds(database, api.tenant.org_id)] == ["released", "held"]


def test_reject_refuses_with_409_until_released(
    api: Api, auditor: Auditor, database: Database
) -> None:
    slug = api.tenant.slug
    configure(database, slug, "--deprovision-limit", "1")
    ids = users(api, 3)
    assert set_active(api, ids[0], False).status_code == 200
    held(api, set_active(api, ids[1], False), "1 users in 10 minutes")
    output = cli(
        database, "deprovisioning", "reject", "--org", slug, "--connection", CONNECTION,
        "--for", "4h",
    )  # fmt: skip
    assert "rejected: refused (409) until" in output
    (event,) = auditor.events('operation eq "deprovisioning.reject"')
    assert event["changes"]["deprovisioning"] == ["held", "rejected"]

    before = store_snapshot(database, api.tenant.org_id)
    for attempt in (lambda: set_active(api, ids[1], False), lambda: api.delete(f"/Users/{ids[2]}")):
        assert_error(
            attempt(),
            409,
            None,
            f'deprovisioning from connection "{CONNECTION}" was rejected by an admin of '
            f'organisation "{slug}"',
            "fix the assignments in the identity provider",
            f'scim-server deprovisioning release --org {slug} --connection "{CONNECTION}"',
        )
    assert store_snapshot(database, api.tenant.org_id) == before

    listed = json.loads(cli(database, "deprovisioning", "list", "--org", slug, "--all", "--json"))
    assert [(hold["state"], hold["count"]) for hold in listed] == [("rejected", 1)]
    assert json.loads(cli(database, "deprovisioning", "list", "--org", slug, "--json")) == []

    # ending a rejection counts again at once: one user passes, one more is held
    cli(database, "deprovisioning", "release", "--org", slug, "--connection", CONNECTION)
    assert set_active(api, ids[1], False).status_code == 200
    held(api, api.delete(f"/Users/{ids[2]}"), "1 users in 10 minutes")


def test_a_planned_offboarding_can_be_released_ahead(api: Api, database: Database) -> None:
    slug = api.tenant.slug
    configure(database, slug, "--deprovision-limit", "2")
    ids = users(api, 5)
    cli(
        database, "deprovisioning", "release", "--org", slug, "--connection", CONNECTION,
        "--for", "30m",
    )  # fmt: skip
    for user_id in ids:
        assert api.delete(f"/Users/{user_id}").status_code == 204
    assert holds(database, api.tenant.org_id) == [("released", "2 users in 10 minutes")]


def test_admin_commands_refuse_what_makes_no_sense(api: Api, database: Database) -> None:
    slug = api.tenant.slug
    result = run_cli(
        database, "deprovisioning", "reject", "--org", slug, "--connection", CONNECTION
    )
    assert result.exit_code == 1
    assert (
        f"no deprovisioning of connection '{CONNECTION}' is held or released; nothing to reject"
        in result.output
    )
    result = run_cli(database, "deprovisioning", "release", "--org", slug, "--connection", "nope")
    assert result.exit_code == 1
    assert "no connection 'nope'" in result.output
    result = run_cli(database, "deprovisioning", "show", "--org", slug, "12345")
    assert result.exit_code == 1
    assert f"no deprovisioning hold 12345 in organisation {slug!r}" in (result.output)
    for options, message in (
        (
            ("--deprovision-limit", "0"),
            "--deprovision-limit: must be between 1 and 2147483647, got '0'",
        ),
        (("--deprovision-limit", "150%"), "must be between 1% and 100%, got '150%'"),
        (("--deprovision-limit", "many"), "'many' is not a number of users (50), a percentage"),
        (("--deprovision-window", "0"), "must be between 1 and 1440 minutes, got 0"),
        (("--deprovision-window", "5m"), "'5m' is not a whole number of minutes"),
        (("--deprovision-window", "\u0665"), "is not a whole number of minutes"),
        (("--deprovision-limit", "\uff15"), "is not a number of users (50), a percentage"),
        (("--deprovision-limit", "9" * 5000), "must be between 1 and 2147483647"),
        (("--seat-limit", "\uff15\uff10"), "is not a whole number (or 'none')"),
        (("--seat-limit", "1_0"), "is not a whole number (or 'none')"),
        (("--soft-delete-retention", "\u0663\u0660"), "is not a whole number of days"),
    ):
        result = run_cli(database, "org", "update", slug, *options)
        assert result.exit_code == 1, result.output
        assert message in result.output


def test_a_percentage_of_the_users(api: Api, database: Database) -> None:
    configure(database, api.tenant.slug, "--deprovision-limit", "10%")
    ids = users(api, 20)
    assert api.delete(f"/Users/{ids[0]}").status_code == 204
    # 10% of the 20 users the window began with (19 left, 1 deleted in it): 2
    assert api.delete(f"/Users/{ids[1]}").status_code == 204
    held(api, api.delete(f"/Users/{ids[2]}"), "10% of the users in 10 minutes")
    shown = cli(database, "org", "show", api.tenant.slug)
    assert "10% of the users" in shown


def test_the_guard_can_be_turned_off(api: Api, database: Database) -> None:
    configure(database, api.tenant.slug, "--deprovision-limit", "1")
    configure(database, api.tenant.slug, "--deprovision-limit", "off")
    ids = users(api, 4)
    for user_id in ids:
        assert set_active(api, user_id, False).status_code == 200
    assert holds(database, api.tenant.org_id) == []
    assert "off (no mass-deprovisioning guard)" in cli(database, "org", "show", api.tenant.slug)


def test_list_and_show_name_the_wave(api: Api, database: Database) -> None:
    slug = api.tenant.slug
    configure(database, slug, "--deprovision-limit", "2")
    ids = users(api, 3, prefix="wave")
    assert set_active(api, ids[0], False).status_code == 200
    assert api.delete(f"/Users/{ids[1]}").status_code == 204
    held(api, set_active(api, ids[2], False), "2 users in 10 minutes")
    (hold,) = json.loads(cli(database, "deprovisioning", "list", "--org", slug, "--json"))
    assert (hold["state"], hold["count"], hold["connection"]["name"]) == ("held", 2, CONNECTION)
    assert f"{CONNECTION} ({api.tenant.connection_id}) 2 users since" in cli(
        database, "deprovisioning", "list", "--org", slug
    )
    shown = json.loads(
        cli(database, "deprovisioning", "show", "--org", slug, str(hold["id"]), "--json")
    )
    assert [(user["id"], user["userName"]) for user in shown["users"]] == [
        (ids[0], "wave0@acme.com"),
        (ids[1], "wave1@acme.com"),
    ]
    assert "wave1@acme.com" in cli(
        database, "deprovisioning", "show", "--org", slug, str(hold["id"])
    )


def test_bulk_operations_past_the_limit_are_held_one_by_one(api: Api, database: Database) -> None:
    configure(database, api.tenant.slug, "--deprovision-limit", "1")
    ids = users(api, 3)
    deactivate = patch_body({"op": "replace", "path": "active", "value": False})
    results = send(
        api,
        bulk(
            *[
                {"method": "PATCH", "path": f"/Users/{user_id}", "data": deactivate}
                for user_id in ids
            ]
        ),
    )
    assert [result["status"] for result in results] == ["200", "503", "503"]
    assert "is held since" in results[1]["response"]["detail"]
    assert active_flags(api, ids) == [False, True, True]


def test_concurrent_deprovisions_never_pass_the_limit(
    app: Flask, api: Api, database: Database
) -> None:
    configure(database, api.tenant.slug, "--deprovision-limit", "3")
    ids = users(api, 8)
    start = threading.Barrier(len(ids))
    statuses: list[int] = []

    def deactivate(user_id: str) -> None:
        client = Api(app.test_client(), api.tenant)
        start.wait()
        statuses.append(set_active(client, user_id, False).status_code)

    threads = [threading.Thread(target=deactivate, args=(user_id,)) for user_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 3 + [503] * 5
    assert active_flags(api, ids).count(False) == 3
    assert holds(database, api.tenant.org_id) == [("held", "3 users in 10 minutes")]


def test_a_user_counts_once_however_often_deactivated(api: Api, database: Database) -> None:
    configure(database, api.tenant.slug, "--deprovision-limit", "2")
    flapping, second, third = users(api, 3)
    for _ in range(3):
        assert set_active(api, flapping, False).status_code == 200
        assert set_active(api, flapping, True).status_code == 200
    assert set_active(api, second, False).status_code == 200  # 2 users of 2
    held(api, set_active(api, third, False), "2 users in 10 minutes")


def test_a_release_still_running_can_be_rejected(api: Api, database: Database) -> None:
    slug = api.tenant.slug
    configure(database, slug, "--deprovision-limit", "1")
    ids = users(api, 3)
    target = ("--org", slug, "--connection", CONNECTION)
    cli(database, "deprovisioning", "release", *target, "--for", "2h")
    assert set_active(api, ids[0], False).status_code == 200
    assert set_active(api, ids[1], False).status_code == 200  # approved: uncounted
    output = cli(database, "deprovisioning", "reject", *target)
    assert "rejected: refused (409) until" in output
    assert set_active(api, ids[2], False).status_code == 409
    result = run_cli(database, "deprovisioning", "release", *target, "--for", "31d")
    assert result.exit_code == 1
    assert "--for: '31d' is longer than the 30 days allowed" in result.output
