"""Seat limit on ingest (DESIGN §5.4 item 5, issue #5): invited and active users outside the
exempt domains may not exceed the limit; the write that would answers 403 with the count,
writes nothing, and is one refused audit event. Two concurrent creates at the last seat cannot
both succeed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask

from scim_server.store.db import Database
from tests.api.audit_support import Auditor, auditor_for, request_id
from tests.api.test_lifecycle import ACCESS, configure, set_active
from tests.api.test_users_errors import assert_error
from tests.conftest import USER_SCHEMA, Api, store_snapshot


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


def refused(
    api: Api,
    auditor: Auditor,
    database: Database,
    method: str,
    path: str,
    body: Any,
    operation: str,
    used: int,
    limit: int,
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    rid = request_id("seat")
    response = api.request(method, path, body, headers={"X-Request-Id": rid})
    assert_error(
        response,
        403,
        None,
        f'seat limit reached ({used} of {limit}) for organisation "{api.tenant.slug}"',
        "invited and active users count against it, except addresses in its exempt domains",
    )
    assert store_snapshot(database, api.tenant.org_id) == before
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["status"]) == (operation, "refused", 403)
    assert (event["scimType"], event["detail"]) == (None, response.get_json()["detail"])
    assert event["changes"] is None


def new_user(user_name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}


def test_creates_beyond_the_limit_are_refused_exempt_domains_do_not_count(
    api: Api, auditor: Auditor, database: Database
) -> None:
    configure(database, api.tenant.slug, "--seat-limit", "2", "--exempt-domains", "Vendor.com")
    api.create_user("a@acme.com")  # invited: counts
    api.create_user("b@acme.com")  # SSO or not, active or invited: counts
    refused(api, auditor, database, "POST", "/Users", new_user("c@acme.com"), "user.create", 2, 2)
    # exempt: the userName's domain (normalised), or the primary email when userName is not one
    api.create_user("ext@VENDOR.com.")
    api.create_user("jdoe", emails=[{"value": "jdoe@vendor.com", "primary": True}])
    # a user created deactivated takes no seat
    api.create_user("off@acme.com", active=False)


def test_an_exempt_domain_at_the_end_of_a_malformed_address_takes_a_seat(
    api: Api, auditor: Auditor, database: Database
) -> None:
    """ "seat2@acme.com,x@vendor.com" is no vendor.com address (a mailer reads two addresses):
    it is not exempt."""
    configure(database, api.tenant.slug, "--seat-limit", "1", "--exempt-domains", "vendor.com")
    api.create_user("a@acme.com")
    body = new_user("seat2@acme.com,x@vendor.com")
    refused(api, auditor, database, "POST", "/Users", body, "user.create", 1, 1)
    api.create_user("x@vendor.com")  # the real thing still is


def test_deactivated_users_free_seats_and_reactivation_counts(
    api: Api, auditor: Auditor, database: Database
) -> None:
    configure(database, api.tenant.slug, "--seat-limit", "2")
    a = api.create_user("a@acme.com")["id"]
    api.create_user("b@acme.com")
    assert set_active(api, a, False).status_code == 200
    c = api.create_user("c@acme.com")["id"]
    off = {"op": "replace", "path": "active", "value": True}
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [off]}
    refused(api, auditor, database, "PATCH", f"/Users/{a}", body, "user.patch", 2, 2)
    put = new_user("a@acme.com", active=True)
    refused(api, auditor, database, "PUT", f"/Users/{a}", put, "user.replace", 2, 2)
    # a user that already holds a seat keeps being updated at the limit
    assert set_active(api, c, True).status_code == 200
    assert api.put(f"/Users/{c}", new_user("c@acme.com", title="T")).status_code == 200
    # deleting one frees a seat
    assert api.delete(f"/Users/{c}").status_code == 204
    assert set_active(api, a, True).get_json()[ACCESS]["status"] == "invited"
    # a lower limit refuses new seats only; nobody is deactivated
    configure(database, api.tenant.slug, "--seat-limit", "1")
    assert api.list_users(filter="active eq true")["totalResults"] == 2
    refused(api, auditor, database, "POST", "/Users", new_user("d@acme.com"), "user.create", 2, 1)


def test_leaving_an_exempt_domain_takes_a_seat(
    api: Api, auditor: Auditor, database: Database
) -> None:
    configure(database, api.tenant.slug, "--seat-limit", "1", "--exempt-domains", "vendor.com")
    api.create_user("a@acme.com")
    v = api.create_user("v@vendor.com")["id"]
    body = new_user("v@acme.com")
    refused(api, auditor, database, "PUT", f"/Users/{v}", body, "user.replace", 1, 1)
    # a soft-deleted user takes no seat
    configure(database, api.tenant.slug, "--delete-mode", "soft", "--exempt-domains", "")
    listed = api.list_users(filter='userName eq "a@acme.com"')["Resources"]
    assert api.delete(f"/Users/{listed[0]['id']}").status_code == 204
    assert api.delete(f"/Users/{v}").status_code == 204
    api.create_user("new@acme.com")


def test_two_creates_at_the_last_seat_cannot_both_succeed(
    app: Flask, api: Api, database: Database
) -> None:
    configure(database, api.tenant.slug, "--seat-limit", "3")
    api.create_user("a@acme.com")
    api.create_user("b@acme.com")
    for round_ in range(3):
        start = threading.Barrier(2)
        statuses: list[int] = []

        def create(name: str, barrier: threading.Barrier, out: list[int]) -> None:
            client = Api(app.test_client(), api.tenant)
            barrier.wait()
            out.append(client.post("/Users", new_user(name)).status_code)

        threads = [
            threading.Thread(target=create, args=(f"r{round_}x{i}@acme.com", start, statuses))
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [201, 403]
        assert api.list_users()["totalResults"] == 3
        latest = api.list_users(filter=f'userName sw "r{round_}x"')["Resources"][0]
        assert api.delete(f"/Users/{latest['id']}").status_code == 204
