"""The order of DESIGN §5.4: uniqueness (item 1) is answered before the policies (items 2-5).

An IdP that creates a user it already provisioned gets 409 ``uniqueness`` (Okta and Entra then
match the existing user) even when the request would also break the domain policy or take a
seat past the limit; a request that is new is still refused by the policy, and both write
nothing but their event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from scim_server.store.db import Database
from tests.api.audit_support import Auditor, auditor_for
from tests.api.test_bulk import bulk, by_bulk_id, post_user, send, slot_error
from tests.api.test_lifecycle import configure
from tests.api.test_temporary_access import refused
from tests.conftest import USER_SCHEMA, Api, patch_body


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


def _user(user_name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}


OPERATIONS = {"POST": "user.create", "PUT": "user.replace", "PATCH": "user.patch"}


@pytest.fixture
def refuses(api: Api, auditor: Auditor, database: Database) -> Callable[..., None]:
    """``refuses(method, path, body, status, scimType, *words)``: refused so, nothing written
    but the event (temporary access's check)."""

    def check(method: str, path: str, body: Any, *expected: Any) -> None:
        refused(api, auditor, database, method, path, body, OPERATIONS[method], *expected)

    return check


GMAIL = [{"value": "alice@gmail.com", "type": "home"}]


def test_a_taken_user_name_is_409_before_the_domain_policy(
    api: Api, database: Database, refuses: Callable[..., None]
) -> None:
    api.create_user("alice@acme.com")
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    taken = _user("ALICE@acme.com", emails=GMAIL)
    refuses("POST", "/Users", taken, 409, "uniqueness", "ALICE@acme.com")
    fresh = _user("bob@acme.com", emails=GMAIL)
    refuses("POST", "/Users", fresh, 400, "invalidValue", "gmail.com")


def test_a_taken_user_name_is_409_before_the_seat_limit(
    api: Api, database: Database, refuses: Callable[..., None]
) -> None:
    api.create_user("alice@acme.com")
    configure(database, api.tenant.slug, "--seat-limit", "1")
    taken = _user("alice@acme.com")
    refuses("POST", "/Users", taken, 409, "uniqueness", "alice@acme.com")
    fresh = _user("bob@acme.com")
    refuses("POST", "/Users", fresh, 403, None, "seat limit reached")


def test_a_rename_to_a_taken_user_name_is_409_before_the_domain_policy(
    api: Api, database: Database, refuses: Callable[..., None]
) -> None:
    api.create_user("alice@acme.com")
    bob = api.create_user("bob@acme.com")
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    rename = patch_body(
        {"op": "replace", "path": "userName", "value": "alice@acme.com"},
        {"op": "add", "path": "emails", "value": GMAIL},
    )
    path = f"/Users/{bob['id']}"
    refuses("PATCH", path, rename, 409, "uniqueness", "alice@acme.com")
    put = _user("alice@acme.com", emails=GMAIL)
    refuses("PUT", path, put, 409, "uniqueness", "alice@acme.com")
    # bob's own name, and a new one, still meet the policy
    keep = _user("bob@acme.com", emails=GMAIL)
    refuses("PUT", path, keep, 400, "invalidValue", "gmail.com")


def test_in_a_bulk_a_taken_user_name_is_409_in_its_slot(api: Api, database: Database) -> None:
    api.create_user("alice@acme.com")
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    results = send(
        api,
        bulk(
            post_user("again", "alice@acme.com", emails=GMAIL),
            post_user("fresh", "carol@acme.com", emails=GMAIL),
        ),
    )
    slots = by_bulk_id(results)
    slot_error(slots["again"], 409, "uniqueness", "alice@acme.com")
    slot_error(slots["fresh"], 400, "invalidValue", "gmail.com")


def test_a_soft_deleted_user_holds_no_name_so_the_policy_answers(
    api: Api, database: Database, refuses: Callable[..., None]
) -> None:
    configure(database, api.tenant.slug, "--delete-mode", "soft")
    ghost = api.create_user("ghost@acme.com")
    assert api.delete(f"/Users/{ghost['id']}").status_code == 204
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    again = _user("ghost@acme.com", emails=GMAIL)
    refuses("POST", "/Users", again, 400, "invalidValue", "gmail.com")
