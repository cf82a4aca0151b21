"""Domain policy on ingest (DESIGN §5.4 item 2, issue #5): POST, PUT and PATCH are refused with
400 invalidValue naming the domain, the organisation and the allowed set; nothing is written,
and the refusal is one audit event."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from scim_server.store.db import Database
from tests.api.audit_support import Auditor, auditor_for, request_id, run_cli
from tests.api.test_users_errors import assert_error
from tests.conftest import USER_SCHEMA, Api, patch_body, store_snapshot


def configure(database: Database, slug: str, *options: str) -> None:
    result = run_cli(database, "org", "update", slug, *options)
    assert result.exit_code == 0, result.output


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


def refused_with(
    api: Api,
    auditor: Auditor,
    database: Database,
    method: str,
    path: str,
    body: Any,
    operation: str,
    *words: str,
) -> dict[str, Any]:
    """Send a request the policy refuses; check the answer, the store and the audit event."""
    before = store_snapshot(database, api.tenant.org_id)
    rid = request_id("domain")
    response = api.request(method, path, body, headers={"X-Request-Id": rid})
    assert_error(response, 400, "invalidValue", *words)
    assert store_snapshot(database, api.tenant.org_id) == before
    event = auditor.one(rid)
    detail = response.get_json()["detail"]
    assert (event["operation"], event["outcome"], event["status"]) == (operation, "refused", 400)
    assert (event["scimType"], event["detail"]) == ("invalidValue", detail)
    assert event["changes"] is None
    return event


def test_sso_domain_refuses_other_domains_on_create(
    api: Api, auditor: Auditor, database: Database
) -> None:
    configure(database, api.tenant.slug, "--sso-domain", "Acme.COM.")
    slug = api.tenant.slug
    body = {
        "schemas": [USER_SCHEMA],
        "userName": "bob@acme.com",
        "emails": [{"value": "bob@gmail.com", "type": "home"}],
    }
    event = refused_with(
        api,
        auditor,
        database,
        "POST",
        "/Users",
        body,
        "user.create",
        f'email domain "gmail.com" is not allowed for organisation "{slug}" (allowed: acme.com)',
        "bob@gmail.com",
    )
    assert (event["resourceType"], event["userName"]) == ("User", "bob@acme.com")
    # userName counts when it is an email
    refused_with(
        api,
        auditor,
        database,
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "bob@evil.acme.com"},
        "user.create",
        'email domain "evil.acme.com" is not allowed',
    )
    # case, trailing dot: the same domain
    api.create_user("Bob@ACME.com.", emails=[{"value": "bob@Acme.Com", "type": "work"}])
    # a userName that is not an email is not checked; its emails are
    api.create_user("jdoe", emails=[{"value": "jdoe@acme.com"}])


def test_whitelist_with_subdomains_and_internationalised_domains(
    api: Api, auditor: Auditor, database: Database
) -> None:
    configure(
        database,
        api.tenant.slug,
        "--allowed-domains",
        "acme.com,bücher.example",
        "--allow-subdomains",
    )
    api.create_user("a@eu.acme.com")
    api.create_user("b@xn--bcher-kva.example")
    api.create_user("c@BÜCHER.example", emails=[{"value": "c@mail.bücher.example"}])
    refused_with(
        api,
        auditor,
        database,
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "d@notacme.com"},
        "user.create",
        'email domain "notacme.com" is not allowed',
        "(allowed: acme.com, xn--bcher-kva.example and their subdomains)",
    )


def test_replace_is_refused_for_a_new_address_outside_the_policy(
    api: Api, auditor: Auditor, database: Database
) -> None:
    user = api.create_user("bob@acme.com", emails=[{"value": "bob@acme.com", "type": "work"}])
    configure(database, api.tenant.slug, "--sso-domain", "acme.com")
    body = {
        "schemas": [USER_SCHEMA],
        "userName": "bob@acme.com",
        "emails": [{"value": "bob@acme.com", "type": "work"}, {"value": "b@yahoo.com"}],
    }
    event = refused_with(
        api,
        auditor,
        database,
        "PUT",
        f"/Users/{user['id']}",
        body,
        "user.replace",
        'email domain "yahoo.com"',
        api.tenant.slug,
    )
    assert event["resourceId"] == user["id"]


def test_patch_of_the_work_email_value_is_checked(
    api: Api, auditor: Auditor, database: Database
) -> None:
    user = api.create_user("bob@acme.com", emails=[{"value": "bob@acme.com", "type": "work"}])
    configure(database, api.tenant.slug, "--sso-domain", "acme.com")
    patch = patch_body(
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "bob@gmail.com"}
    )
    refused_with(
        api,
        auditor,
        database,
        "PATCH",
        f"/Users/{user['id']}",
        patch,
        "user.patch",
        'email domain "gmail.com" is not allowed',
    )
    allowed = patch_body(
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "robert@acme.com"}
    )
    assert api.patch(f"/Users/{user['id']}", allowed).status_code == 200


def test_path_less_patch_of_user_name_is_checked(
    api: Api, auditor: Auditor, database: Database
) -> None:
    user = api.create_user("bob@acme.com")
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    patch = patch_body({"op": "replace", "value": {"userName": "bob@outlook.com"}})
    refused_with(
        api,
        auditor,
        database,
        "PATCH",
        f"/Users/{user['id']}",
        patch,
        "user.patch",
        'email domain "outlook.com" is not allowed',
        "(allowed: acme.com)",
    )


def test_addresses_already_held_are_not_rechecked_until_reactivation(
    api: Api, auditor: Auditor, database: Database
) -> None:
    """After the policy tightens, the IdP can still update and deactivate earlier users (the
    admin finds them with `policy check`); reactivating one checks every address again."""
    user = api.create_user("eve@gmail.com", emails=[{"value": "eve@gmail.com"}])
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    renamed = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "replace", "path": "displayName", "value": "Eve"}),
    )
    assert renamed.status_code == 200
    put = {
        "schemas": [USER_SCHEMA],
        "userName": "EVE@gmail.com",
        "displayName": "Eve",
        "emails": [{"value": "eve@gmail.com"}],
    }
    assert api.put(f"/Users/{user['id']}", put).status_code == 200
    off = patch_body({"op": "replace", "value": {"active": False}})
    assert api.patch(f"/Users/{user['id']}", off).status_code == 200
    on = patch_body({"op": "replace", "value": {"active": True}})
    refused_with(
        api,
        auditor,
        database,
        "PATCH",
        f"/Users/{user['id']}",
        on,
        "user.patch",
        'email domain "gmail.com" is not allowed',
    )


def test_non_address_email_values_are_refused_only_under_a_policy(
    api: Api, auditor: Auditor, database: Database
) -> None:
    api.create_user("free", emails=[{"value": "not-an-address"}])
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    refused_with(
        api,
        auditor,
        database,
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "x", "emails": [{"value": "nope"}]},
        "user.create",
        '"nope" is not an email address',
    )


def test_no_policy_accepts_any_domain(api: Api, database: Database) -> None:
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    configure(database, api.tenant.slug, "--allowed-domains", "")
    api.create_user("any@anywhere.org")


@pytest.mark.parametrize(
    "address",
    [
        "e1@evil.com,x@acme.com",
        "e1@evil.com;x@acme.com",
        "e3@evil.com>, <x@acme.com",
        "d24@evil.com#@acme.com",
        "Eve <e@evil.com>@acme.com",
        "bob\r\nBcc: e@evil.com@acme.com",
    ],
)
@pytest.mark.parametrize("where", ["userName", "emails"])
def test_text_a_mailer_reads_as_another_address_is_refused(
    api: Api, auditor: Auditor, database: Database, address: str, where: str
) -> None:
    """Ending in "@acme.com" does not make text an acme.com address: handed to a mailer as the
    invitation's recipient, each of these reaches evil.com."""
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    body: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": "plain"}
    if where == "userName":
        body["userName"] = address
    else:
        body["emails"] = [{"value": address, "type": "work"}]
    refused_with(
        api, auditor, database, "POST", "/Users", body, "user.create", "is not an email address"
    )
