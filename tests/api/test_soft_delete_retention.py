"""Soft-deleted users are purged after their organisation's retention period (DESIGN §5.3).

Each organisation keeps its soft-deleted users for ``softDeleteRetentionDays`` (30 unless set);
``users purge --all``, run daily by the operator's scheduler, removes every organisation's users
past their own period, so a soft-deleted person's data does not stay for ever because nobody
remembered a number of days."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import text

from scim_server.store.db import Database
from tests.api.audit_support import database_fails_on, run_cli
from tests.api.test_access_cli import last_event
from tests.api.test_lifecycle import cli, configure
from tests.conftest import Api, make_tenant


def _soft_deleted(api: Api, database: Database, user_name: str, days_ago: float) -> str:
    """A user soft-deleted ``days_ago`` days ago (its deletion time set back in the store)."""
    uid = api.create_user(user_name)["id"]
    assert api.delete(f"/Users/{uid}").status_code == 204
    _age(database, uid, days_ago)
    return uid


def _age(database: Database, uid: str, days_ago: float) -> None:
    moment = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=days_ago)
    with database.engine.begin() as connection:
        connection.execute(
            text("UPDATE users SET deleted_at = :t WHERE id = :i"), {"t": moment, "i": uid}
        )


def _stored(database: Database, uid: str) -> bool:
    with database.engine.connect() as connection:
        found = connection.execute(text("SELECT count(*) FROM users WHERE id = :i"), {"i": uid})
        return bool(found.scalar())


def _settings(database: Database, slug: str) -> dict[str, object]:
    shown: dict[str, object] = json.loads(cli(database, "org", "show", slug, "--json"))
    return shown


def test_the_retention_is_a_setting_of_the_cli_and_the_admin_api(
    app: Flask, database: Database, api: Api
) -> None:
    slug = api.tenant.slug
    assert _settings(database, slug)["softDeleteRetentionDays"] == 30
    out = cli(database, "org", "update", slug, "--soft-delete-retention", "7")
    assert "softDeleteRetentionDays" in out
    assert "7 (was 30)" in out
    assert _settings(database, slug)["softDeleteRetentionDays"] == 7
    admin = json.loads(
        cli(database, "token", "create", "--org", slug, "--scope", "admin", "--json")
    )["token"]
    headers = {"Authorization": f"Bearer {admin}"}
    client = app.test_client()
    changed = client.patch(
        "/admin/v1/organization", json={"softDeleteRetentionDays": 0}, headers=headers
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["settings"]["softDeleteRetentionDays"] == 0
    event = last_event(database, api.tenant.org_id, "org.update")
    assert event.changes == {"softDeleteRetentionDays": [7, 0]}
    for wrong in (-1, 3651, "ten", None, True):
        refused = client.patch(
            "/admin/v1/organization", json={"softDeleteRetentionDays": wrong}, headers=headers
        )
        assert refused.status_code == 400, wrong
        assert "softDeleteRetentionDays" in refused.get_json()["detail"]
    bad = run_cli(database, "org", "update", slug, "--soft-delete-retention", "-3")
    assert bad.exit_code != 0
    assert "--soft-delete-retention" in bad.output


def test_purge_without_a_number_of_days_keeps_the_organisation_s_period(
    database: Database, api: Api
) -> None:
    slug = api.tenant.slug
    configure(database, slug, "--delete-mode", "soft", "--soft-delete-retention", "10")
    old = _soft_deleted(api, database, "old@acme.com", 11)
    recent = _soft_deleted(api, database, "recent@acme.com", 9)
    out = json.loads(cli(database, "users", "purge", "--org", slug, "--json"))
    assert out == {"org": slug, "purged": 1, "users": [{"id": old, "userName": "old@acme.com"}]}
    assert (_stored(database, old), _stored(database, recent)) == (False, True)
    event = last_event(database, api.tenant.org_id, "users.purge")
    assert event.detail == "soft-deleted more than 10 days ago"


def test_purge_all_applies_each_organisation_s_own_period(
    app: Flask, database: Database, api: Api
) -> None:
    other = Api(app.test_client(), make_tenant(database))
    configure(database, api.tenant.slug, "--delete-mode", "soft", "--soft-delete-retention", "5")
    configure(database, other.tenant.slug, "--delete-mode", "soft")  # 30 days
    first_old = _soft_deleted(api, database, "a@acme.com", 6)
    other_kept = _soft_deleted(other, database, "b@acme.com", 6)
    other_old = _soft_deleted(other, database, "c@acme.com", 31)
    out = json.loads(cli(database, "users", "purge", "--all", "--json"))
    assert out["failed"] == []
    mine = {
        entry["org"]: entry
        for entry in out["purged"]
        if entry["org"] in (api.tenant.slug, other.tenant.slug)
    }
    assert mine[api.tenant.slug]["users"] == [{"id": first_old, "userName": "a@acme.com"}]
    assert mine[other.tenant.slug]["users"] == [{"id": other_old, "userName": "c@acme.com"}]
    assert not _stored(database, first_old)
    assert not _stored(database, other_old)
    assert _stored(database, other_kept)
    assert last_event(database, other.tenant.org_id, "users.purge").detail == (
        "soft-deleted more than 30 days ago"
    )
    # a second run finds nothing, and writes no event of nothing into either log
    events_before = _count_events(database)
    again = json.loads(cli(database, "users", "purge", "--all", "--json"))
    assert not [e for e in again["purged"] if e["org"] in (api.tenant.slug, other.tenant.slug)]
    assert _count_events(database) == events_before


def _count_events(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM audit_events")).scalar() or 0)


@pytest.mark.parametrize(
    "arguments",
    [("users", "purge"), ("users", "purge", "--all", "--org", "x")],
)
def test_purge_names_one_organisation_or_all(
    database: Database, arguments: tuple[str, ...]
) -> None:
    result = run_cli(database, *arguments)
    assert result.exit_code == 2
    assert "give either --org SLUG or --all" in result.output


def test_one_organisation_s_failure_stops_no_other_s_purge(
    app: Flask, database: Database, api: Api
) -> None:
    """A daily purge of every organisation must not be blocked for ever by one that fails."""
    other = Api(app.test_client(), make_tenant(database))
    marker = f"fail-{uuid.uuid4().hex[:8]}@acme.com"
    configure(database, api.tenant.slug, "--delete-mode", "soft")
    configure(database, other.tenant.slug, "--delete-mode", "soft")
    uid = api.create_user(marker, emails=[{"value": marker}])["id"]
    assert api.delete(f"/Users/{uid}").status_code == 204
    _age(database, uid, 40)
    purged = _soft_deleted(other, database, "d@acme.com", 40)
    with database_fails_on(database, marker, action="DELETE"):
        result = run_cli(database, "users", "purge", "--all", "--json")
    assert result.exit_code == 1
    assert api.tenant.slug in result.stderr
    assert "could not purge" in result.stderr
    reported = json.loads(result.stdout)
    assert reported["failed"] == [api.tenant.slug]
    done = [entry for entry in reported["purged"] if entry["org"] == other.tenant.slug]
    assert done == [
        {"org": other.tenant.slug, "purged": 1, "users": [{"id": purged, "userName": "d@acme.com"}]}
    ]
    assert _stored(database, uid)
    assert not _stored(database, purged)


def test_purge_takes_no_period_beyond_the_longest_retention(database: Database) -> None:
    result = run_cli(database, "users", "purge", "--all", "--older-than", "800000")
    assert result.exit_code == 2
    assert "0<=x<=3650" in result.output
