"""Organisation settings, single-domain SSO and the policy report through the CLI (issue #5)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select, text

from scim_server.audit.chain import verify
from scim_server.services import organizations
from scim_server.store.db import Database
from scim_server.store.models import Organization
from tests.api.test_access_cli import last_event, ok, refused
from tests.conftest import Api, Tenant, store_snapshot

DEFAULTS = {
    "ssoDomain": None,
    "allowedDomains": [],
    "allowSubdomains": False,
    "seatLimit": None,
    "exemptDomains": [],
    "timezone": "UTC",
    "deleteMode": "hard",
    "deprovisionLimit": "50",
    "deprovisionWindowMinutes": 10,
    "softDeleteRetentionDays": 30,
}


def show(database: Database, slug: str) -> dict[str, object]:
    shown: dict[str, object] = json.loads(ok(database, "org", "show", slug, "--json"))
    return shown


def settings_rows(database: Database, org_id: int) -> list[tuple[object, ...]]:
    with database.engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text("SELECT * FROM organizations WHERE id = :o"), {"o": org_id}
            )
        ]


def test_org_create_with_settings_and_show(database: Database) -> None:
    slug = f"set-{uuid.uuid4().hex[:8]}"
    out = ok(
        database,
        "org",
        "create",
        slug,
        "--name",
        "Settings Co",
        "--sso-domain",
        "Bücher.Example.",
        "--seat-limit",
        "25",
        "--exempt-domains",
        "Vendor.com, partner.org",
        "--timezone",
        "Europe/Paris",
        "--delete-mode",
        "soft",
    )
    assert out == f"organisation {slug} created\n"
    assert show(database, slug) == {
        "slug": slug,
        "name": "Settings Co",
        "defaultRole": None,
        **DEFAULTS,
        "ssoDomain": "xn--bcher-kva.example",
        "seatLimit": 25,
        "exemptDomains": ["vendor.com", "partner.org"],
        "timezone": "Europe/Paris",
        "deleteMode": "soft",
    }
    lines = ok(database, "org", "show", slug).splitlines()
    assert "SSO domain:          xn--bcher-kva.example" in lines
    assert "allowed domains:     none" in lines
    assert "seat limit:          25" in lines
    with database.transaction(write=False) as session:
        org_id = session.scalar(select(Organization.id).where(Organization.slug == slug))
    assert org_id is not None
    event = last_event(database, org_id, "org.create")
    assert event.changes is not None
    assert event.changes["ssoDomain"] == [None, "xn--bcher-kva.example"]
    assert event.changes["seatLimit"] == [None, 25]


def test_org_show_of_a_new_organisation_shows_the_defaults(
    database: Database, tenant: Tenant
) -> None:
    shown = show(database, tenant.slug)
    assert {key: shown[key] for key in DEFAULTS} == DEFAULTS
    lines = ok(database, "org", "show", tenant.slug).splitlines()
    assert "SSO domain:          none (SSO not enforced)" in lines
    assert "allowed domains:     any" in lines
    assert "no organisation 'nope'" in refused(database, "org", "show", "nope")


def test_org_update_changes_only_what_is_given_and_is_audited(
    database: Database, tenant: Tenant
) -> None:
    out = ok(
        database,
        "org",
        "update",
        tenant.slug,
        "--allowed-domains",
        "acme.com,ACME.com.,b.io",
        "--allow-subdomains",
    )
    assert f"allowedDomains of {tenant.slug}: acme.com, b.io (was none)" in out
    assert f"allowSubdomains of {tenant.slug}: yes (was no)" in out
    event = last_event(database, tenant.org_id, "org.update")
    assert event.changes == {
        "allowedDomains": [[], ["acme.com", "b.io"]],
        "allowSubdomains": [False, True],
    }
    result = json.loads(
        ok(database, "org", "update", tenant.slug, "--seat-limit", "none", "--json")
    )
    assert result["settings"]["allowedDomains"] == ["acme.com", "b.io"]
    ok(database, "org", "update", tenant.slug, "--no-subdomains", "--allowed-domains", "")
    shown = show(database, tenant.slug)
    assert (shown["allowedDomains"], shown["allowSubdomains"]) == ([], False)
    with database.transaction(write=False) as session:
        assert verify(session, tenant.org_id).ok


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--sso-domain", "acme"), "--sso-domain: 'acme' is not a domain name"),
        (("--allowed-domains", "ok.com,bad_domain.com"), "--allowed-domains"),
        (("--exempt-domains", "a..com"), "--exempt-domains"),
        (("--timezone", "Mars/Olympus"), "'Mars/Olympus' is not a time zone name"),
        (("--seat-limit", "0"), "must be between 1 and 2147483647, got 0"),
        (("--seat-limit", "ten"), "not a whole number"),
        (("--delete-mode", "shred"), "shred"),
        (("--sso-domain", "a.com", "--no-sso"), "mutually exclusive"),
        ((), "nothing to change"),
    ],
)
def test_invalid_settings_are_refused_and_change_nothing(
    database: Database, tenant: Tenant, options: tuple[str, ...], message: str
) -> None:
    before = settings_rows(database, tenant.org_id)
    assert message in refused(database, "org", "update", tenant.slug, *options)
    assert settings_rows(database, tenant.org_id) == before


def test_sso_allows_exactly_one_domain(database: Database, tenant: Tenant) -> None:
    ok(database, "org", "update", tenant.slug, "--allowed-domains", "acme.com,other.com")
    before = settings_rows(database, tenant.org_id)
    out = refused(database, "org", "update", tenant.slug, "--sso-domain", "acme.com")
    assert "exactly one domain (acme.com)" in out
    assert "other.com" in out
    assert settings_rows(database, tenant.org_id) == before
    ok(database, "org", "update", tenant.slug, "--sso-domain", "acme.com", "--allowed-domains", "")
    out = refused(database, "org", "update", tenant.slug, "--allowed-domains", "acme.com,b.com")
    assert "exactly one domain" in out
    ok(database, "org", "update", tenant.slug, "--no-sso", "--allowed-domains", "a.com,b.com")
    assert show(database, tenant.slug)["ssoDomain"] is None


def test_enabling_sso_with_users_outside_is_refused_naming_them(
    api: Api, database: Database, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(organizations, "LISTED_IN_MESSAGE", 2)
    api.create_user("in@acme.com")
    for name in ("x@gmail.com", "y@acme.com.evil.org", "z@yahoo.com"):
        api.create_user(name)
    api.create_user("jdoe", emails=[{"value": "jdoe@hotmail.com"}])
    inactive = api.create_user("old@aol.com", active=False)
    before = store_snapshot(database, tenant.org_id)
    settings = settings_rows(database, tenant.org_id)
    out = refused(database, "org", "update", tenant.slug, "--sso-domain", "acme.com")
    assert (
        "4 users not deactivated (invited or active) have an address outside it: "
        "x@gmail.com, y@acme.com.evil.org" in out
    )
    assert "and 2 more" in out
    assert "old@aol.com" not in out
    assert "--deactivate-outside" in out
    assert store_snapshot(database, tenant.org_id) == before
    assert settings_rows(database, tenant.org_id) == settings
    assert inactive["active"] is False


def test_no_longer_allowing_subdomains_under_sso_is_checked_too(
    api: Api, database: Database, tenant: Tenant
) -> None:
    ok(database, "org", "update", tenant.slug, "--sso-domain", "acme.com", "--allow-subdomains")
    api.create_user("eu@eu.acme.com")
    out = refused(database, "org", "update", tenant.slug, "--no-subdomains")
    assert (
        "1 user not deactivated (invited or active) has an address outside it: eu@eu.acme.com"
        in out
    )
    assert show(database, tenant.slug)["allowSubdomains"] is True


def test_deactivate_outside_deactivates_them_like_a_scim_patch(
    api: Api, database: Database, tenant: Tenant
) -> None:
    inside = api.create_user("in@acme.com", emails=[{"value": "in@acme.com"}])
    outside = api.create_user("out@gmail.com")
    mixed = api.create_user("mixed@acme.com", emails=[{"value": "m@gmail.com"}])
    result = json.loads(
        ok(
            database,
            "org",
            "update",
            tenant.slug,
            "--sso-domain",
            "acme.com",
            "--deactivate-outside",
            "--json",
        )
    )
    assert result["settings"]["ssoDomain"] == "acme.com"
    deactivated = result["deactivatedUsers"]
    assert deactivated["count"] == 2
    assert [u["userName"] for u in deactivated["users"]] == ["out@gmail.com", "mixed@acme.com"]
    for user in (outside, mixed):
        now = api.get(f"/Users/{user['id']}").get_json()
        assert now["active"] is False
        assert now["meta"]["version"] != user["meta"]["version"]
    assert api.get(f"/Users/{inside['id']}").get_json()["active"] is True
    # the indexed column follows the document: a filter finds them
    found = api.list_users(filter="active eq false")
    assert {u["id"] for u in found["Resources"]} == {outside["id"], mixed["id"]}
    event = last_event(database, tenant.org_id, "org.update")
    assert event.changes is not None
    assert event.changes["ssoDomain"] == [None, "acme.com"]
    assert event.changes["deactivatedUsers"]["count"] == 2
    assert event.changes["deactivatedUsers"]["users"][0] == {
        "id": outside["id"],
        "userName": "out@gmail.com",
        "active": [True, False],
    }
    with database.transaction(write=False) as session:
        assert verify(session, tenant.org_id).ok
    text_out = ok(database, "org", "update", tenant.slug, "--timezone", "America/New_York")
    assert f"timezone of {tenant.slug}: America/New_York (was UTC)" in text_out


def test_policy_check_lists_refused_users_and_changes_nothing(
    api: Api, database: Database, tenant: Tenant
) -> None:
    api.create_user("ok@acme.com")
    bad = api.create_user("bad@gmail.com")
    sub = api.create_user("sub@eu.acme.com")
    gone = api.create_user("jdoe", emails=[{"value": "j@old.example"}], active=False)
    assert "0 users of" in ok(database, "policy", "check", "--org", tenant.slug)
    ok(database, "org", "update", tenant.slug, "--allowed-domains", "acme.com")
    before = store_snapshot(database, tenant.org_id)
    settings = settings_rows(database, tenant.org_id)
    with database.transaction(write=False) as session:
        events_before = verify(session, tenant.org_id).events

    report = json.loads(ok(database, "policy", "check", "--org", tenant.slug, "--json"))
    assert report["org"] == tenant.slug
    assert report["count"] == 3
    assert [(u["id"], u["active"], u["address"]) for u in report["users"]] == [
        (bad["id"], True, "bad@gmail.com"),
        (sub["id"], True, "sub@eu.acme.com"),
        (gone["id"], False, "j@old.example"),
    ]
    assert report["users"][0]["reason"] == (
        f'email domain "gmail.com" is not allowed for organisation "{tenant.slug}" '
        '(allowed: acme.com): "bad@gmail.com"'
    )
    lines = ok(database, "policy", "check", "--org", tenant.slug).splitlines()
    assert lines[0] == f"3 users of {tenant.slug} are outside the current domain policy"
    assert lines[3].startswith(f"  jdoe ({gone['id']}) [inactive]: ")

    assert store_snapshot(database, tenant.org_id) == before
    assert settings_rows(database, tenant.org_id) == settings
    with database.transaction(write=False) as session:
        assert verify(session, tenant.org_id).events == events_before  # not even an event
    ok(database, "org", "update", tenant.slug, "--allow-subdomains")
    assert json.loads(ok(database, "policy", "check", "--org", tenant.slug, "--json"))["count"] == 2
    assert "no organisation 'nope'" in refused(database, "policy", "check", "--org", "nope")
