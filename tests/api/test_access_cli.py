"""The roles / access-group / mapping / default-role CLI (issue #4): outputs, refusals, audit."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from scim_server.audit.chain import verify
from scim_server.cli import main
from scim_server.services import access
from scim_server.store.db import Database
from scim_server.store.models import AuditEvent, GroupMapping, Role
from tests.conftest import USER_SCHEMA, Api, Tenant

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"
MIGRATION = (
    Path(__file__).resolve().parents[2]
    / "scim_server/store/migrations/versions/0003_groups_roles.py"
)


def run(database: Database, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"SCIM_DATABASE_URL": database.url})
    return result.exit_code, result.output


def ok(database: Database, *args: str) -> str:
    code, out = run(database, *args)
    assert code == 0, out
    return out


def refused(database: Database, *args: str) -> str:
    code, out = run(database, *args)
    assert code != 0, out
    return out


def last_event(database: Database, org_id: int, operation: str) -> AuditEvent:
    with database.transaction(write=False) as session:
        event = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.org_id == org_id, AuditEvent.operation == operation)
            .order_by(AuditEvent.seq.desc())
        ).first()
    assert event is not None, operation
    return event


def event_count(database: Database, org_id: int) -> int:
    with database.transaction(write=False) as session:
        return (
            session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.org_id == org_id)
            )
            or 0
        )


def test_built_in_roles_match_the_migration_that_seeds_existing_organisations() -> None:
    spec = importlib.util.spec_from_file_location("migration_0003", MIGRATION)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert [(r.name, r.rank, r.is_admin, list(r.permissions)) for r in access.BUILT_IN_ROLES] == [
        tuple(row) for row in module.BUILT_IN
    ]


# -- roles -----------------------------------------------------------------------------------


def test_role_list_shows_the_seeded_roles(database: Database, tenant: Tenant) -> None:
    out = ok(database, "role", "list", "--org", tenant.slug)
    assert out.splitlines() == [
        "  100  Administrator  [admin, built-in]",
        "   40  Editor  [built-in]",
        "   30  Collaborator  [built-in]",
        "   20  Campaign Status Updater  [built-in]",
        "   10  Viewer  [built-in]",
    ]
    listed = json.loads(ok(database, "role", "list", "--org", tenant.slug, "--json"))
    assert listed[0] == {
        "name": "Administrator",
        "rank": 100,
        "isAdmin": True,
        "builtIn": True,
        "permissions": ["*"],
        "default": False,
    }
    assert [r["name"] for r in listed] == [
        "Administrator",
        "Editor",
        "Collaborator",
        "Campaign Status Updater",
        "Viewer",
    ]


def test_role_create_and_delete_are_audited(database: Database, tenant: Tenant) -> None:
    out = ok(
        database,
        "role",
        "create",
        "--org",
        tenant.slug,
        "Reviewer",
        "--rank",
        "25",
        "--permission",
        "campaigns.read",
        "--permission",
        "campaigns.review",
    )
    assert out == f"role Reviewer (rank 25) created in {tenant.slug}\n"
    listed = json.loads(ok(database, "role", "list", "--org", tenant.slug, "--json"))
    assert {
        "name": "Reviewer",
        "rank": 25,
        "isAdmin": False,
        "builtIn": False,
        "permissions": ["campaigns.read", "campaigns.review"],
        "default": False,
    } in listed
    created = last_event(database, tenant.org_id, "role.create")
    assert created.actor_type == "cli"
    assert created.resource_type == "Role"
    assert created.resource_id == "Reviewer"
    assert created.changes == {
        "name": [None, "Reviewer"],
        "rank": [None, 25],
        "isAdmin": [None, False],
        "permissions": [None, ["campaigns.read", "campaigns.review"]],
    }
    ok(database, "mapping", "add", "--org", tenant.slug, "--group-name", "QA", "--role", "reviewer")
    out = ok(database, "role", "delete", "--org", tenant.slug, "REVIEWER", "--json")
    assert json.loads(out) == {
        "deleted": "Reviewer",
        "mappingsRemoved": 1,
        "affectedUsers": {"count": 0, "users": []},
    }
    deleted = last_event(database, tenant.org_id, "role.delete")
    assert deleted.changes == {
        "name": ["Reviewer", None],
        "mappingsRemoved": 1,
        "affectedUsers": {"count": 0, "users": []},
    }
    assert json.loads(ok(database, "mapping", "list", "--org", tenant.slug, "--json")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("editor", "--rank", "5"), "role 'Editor' already exists (names are case-insensitive)"),
        (("Lead", "--rank", "40"), "rank 40 is already the rank of role 'Editor'"),
        (("  ", "--rank", "5"), "role name must not be empty"),
        (("x" * 101, "--rank", "5"), "role name is 101 characters long; at most 100"),
    ],
)
def test_role_create_refusals(
    database: Database, tenant: Tenant, args: tuple[str, ...], message: str
) -> None:
    before = event_count(database, tenant.org_id)
    out = refused(database, "role", "create", "--org", tenant.slug, *args)
    assert message in out
    assert event_count(database, tenant.org_id) == before  # a refusal writes nothing


def test_role_delete_refusals(database: Database, tenant: Tenant) -> None:
    assert "role 'Viewer' is built in and cannot be deleted" in refused(
        database, "role", "delete", "--org", tenant.slug, "viewer"
    )
    assert (
        "no role 'Owner' in this organisation; its roles are: Administrator, Editor, "
        "Collaborator, Campaign Status Updater, Viewer"
    ) in refused(database, "role", "delete", "--org", tenant.slug, "Owner")
    ok(database, "role", "create", "--org", tenant.slug, "Guest", "--rank", "1")
    ok(database, "org", "update", tenant.slug, "--default-role", "guest")
    assert "role 'Guest' is the organisation's default role" in refused(
        database, "role", "delete", "--org", tenant.slug, "Guest"
    )
    assert "no organisation 'nope'" in refused(database, "role", "list", "--org", "nope")


def test_deleting_a_role_recomputes_its_holders(
    api: Api, database: Database, tenant: Tenant
) -> None:
    ok(database, "role", "create", "--org", tenant.slug, "Lead", "--rank", "50")
    ok(database, "org", "update", tenant.slug, "--default-role", "Viewer")
    ok(database, "mapping", "add", "--org", tenant.slug, "--group-name", "Leads", "--role", "Lead")
    holder = api.create_user("holder@acme.com", roles=[{"value": "Editor"}])
    direct = api.create_user("direct@acme.com", roles=[{"value": "Lead"}])
    assert (
        api.post(
            "/Groups",
            {"schemas": [GROUP], "displayName": "Leads", "members": [{"value": holder["id"]}]},
        ).status_code
        == 201
    )
    assert api.get(f"/Users/{holder['id']}").get_json()[ACCESS]["role"] == "Lead"
    out = json.loads(ok(database, "role", "delete", "--org", tenant.slug, "Lead", "--json"))
    assert out["mappingsRemoved"] == 1
    users = {u["userName"]: u for u in out["affectedUsers"]["users"]}
    assert users["holder@acme.com"]["role"] == ["Lead", "Editor"]
    assert users["direct@acme.com"]["role"] == ["Lead", "Viewer"]
    assert users["direct@acme.com"]["id"] == direct["id"]
    assert api.get(f"/Users/{holder['id']}").get_json()[ACCESS]["role"] == "Editor"
    assert api.get(f"/Users/{direct['id']}").get_json()[ACCESS]["role"] == "Viewer"


# -- access groups ---------------------------------------------------------------------------


def test_access_group_create_list_delete(api: Api, database: Database, tenant: Tenant) -> None:
    out = ok(
        database,
        "access-group",
        "create",
        "--org",
        tenant.slug,
        "Spring",
        "--campaign",
        "c-1",
        "--campaign",
        "c-2",
        "--campaign",
        "c-1",
    )
    assert out == f"access group Spring created in {tenant.slug} (2 campaign(s))\n"
    ok(database, "access-group", "create", "--org", tenant.slug, "Empty")
    assert ok(database, "access-group", "list", "--org", tenant.slug).splitlines() == [
        "Empty: (no campaigns)",
        "Spring: c-1, c-2",
    ]
    assert json.loads(ok(database, "access-group", "list", "--org", tenant.slug, "--json")) == [
        {"name": "Empty", "campaignIds": []},
        {"name": "Spring", "campaignIds": ["c-1", "c-2"]},
    ]
    assert "access group 'Spring' already exists" in refused(
        database, "access-group", "create", "--org", tenant.slug, "SPRING"
    )
    created = last_event(database, tenant.org_id, "access_group.create")
    assert created.changes == {"name": [None, "Empty"], "campaignIds": [None, []]}

    ok(
        database,
        "mapping",
        "add",
        "--org",
        tenant.slug,
        "--group-prefix",
        "campaign",
        "--access-group",
        "spring",
    )
    user = api.create_user("ag@acme.com")
    assert (
        api.post(
            "/Groups",
            {
                "schemas": [GROUP],
                "displayName": "Campaign team",
                "members": [{"value": user["id"]}],
            },
        ).status_code
        == 201
    )
    assert api.get(f"/Users/{user['id']}").get_json()[ACCESS]["accessGroups"] == [
        {"value": "Spring", "display": "Spring"}
    ]
    out = ok(database, "access-group", "delete", "--org", tenant.slug, "spring")
    assert out.splitlines() == [
        "access group Spring deleted, with 1 mapping(s)",
        "access changed for 1 user",
        f"  ag@acme.com ({user['id']}): access groups Spring -> none",
    ]
    assert set(api.get(f"/Users/{user['id']}").get_json()[ACCESS]) == {
        "status"
    }  # no role, no access groups
    deleted = last_event(database, tenant.org_id, "access_group.delete")
    assert deleted.changes is not None
    assert deleted.changes["affectedUsers"]["users"][0]["accessGroups"] == [["Spring"], []]
    assert "no access group 'Spring' in this organisation; its access groups are: Empty" in (
        refused(database, "access-group", "delete", "--org", tenant.slug, "Spring")
    )


# -- mappings --------------------------------------------------------------------------------


def test_mapping_add_list_remove(database: Database, tenant: Tenant) -> None:
    ok(database, "access-group", "create", "--org", tenant.slug, "Spring")
    out = ok(
        database,
        "mapping",
        "add",
        "--org",
        tenant.slug,
        "--group-name",
        "Engineering",
        "--role",
        "editor",
    )
    assert out.splitlines()[0].endswith(": group named Engineering -> role Editor")
    assert out.splitlines()[1] == "access changed for 0 users"
    ok(
        database,
        "mapping",
        "add",
        "--org",
        tenant.slug,
        "--group-prefix",
        "app-",
        "--access-group",
        "Spring",
    )
    ok(
        database,
        "mapping",
        "add",
        "--org",
        tenant.slug,
        "--group-external-id",
        "00gA",
        "--role",
        "Administrator",
    )
    lines = ok(database, "mapping", "list", "--org", tenant.slug).splitlines()
    assert [line.split(None, 1)[1] for line in lines] == [
        "group named Engineering -> role Editor",
        "groups named app-* -> access group Spring",
        "group with externalId 00gA -> role Administrator",
    ]
    listed = json.loads(ok(database, "mapping", "list", "--org", tenant.slug, "--json"))
    assert [(m["match"], m["value"], m["role"], m["accessGroup"]) for m in listed] == [
        ("name", "Engineering", "Editor", None),
        ("prefix", "app-", None, "Spring"),
        ("external_id", "00gA", "Administrator", None),
    ]
    assert all(m["created"].endswith("Z") for m in listed)

    # by id
    ok(database, "mapping", "remove", "--org", tenant.slug, str(listed[1]["id"]))
    removed = last_event(database, tenant.org_id, "mapping.remove")
    assert removed.resource_id == str(listed[1]["id"])
    assert removed.changes == {
        "match": ["prefix", None],
        "value": ["app-", None],
        "accessGroup": ["Spring", None],
        "affectedUsers": {"count": 0, "users": []},
    }
    # by what it matches and grants (names case-insensitive, as when added)
    ok(
        database,
        "mapping",
        "remove",
        "--org",
        tenant.slug,
        "--group-name",
        "ENGINEERING",
        "--role",
        "Editor",
    )
    remaining = json.loads(ok(database, "mapping", "list", "--org", tenant.slug, "--json"))
    assert [m["value"] for m in remaining] == ["00gA"]
    added = last_event(database, tenant.org_id, "mapping.add")
    assert added.changes is not None
    assert added.changes["match"] == [None, "external_id"]
    assert added.changes["role"] == [None, "Administrator"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--role", "Editor"), "give exactly one of --group-name, --group-prefix"),
        (("--group-name", "a", "--group-prefix", "b", "--role", "Editor"), "give exactly one of"),
        (("--group-name", "a"), "give exactly one of --role, --access-group"),
        (("--group-name", "a", "--role", "Editor", "--access-group", "x"), "give exactly one of"),
        (("--group-name", " ", "--role", "Editor"), "must not be empty"),
        (("--group-name", "a", "--role", "Owner"), "no role 'Owner' in this organisation"),
        (("--group-name", "a", "--access-group", "x"), "no access group 'x'"),
        (("--group-name", "x" * 513, "--role", "Editor"), "longer than 512 characters"),
    ],
)
def test_mapping_add_refusals(
    database: Database, tenant: Tenant, args: tuple[str, ...], message: str
) -> None:
    assert message in refused(database, "mapping", "add", "--org", tenant.slug, *args)


def test_duplicate_mappings_are_refused(database: Database, tenant: Tenant) -> None:
    ok(database, "mapping", "add", "--org", tenant.slug, "--group-name", "Eng", "--role", "Viewer")
    assert "this mapping exists already" in refused(
        database, "mapping", "add", "--org", tenant.slug, "--group-name", "ENG", "--role", "viewer"
    )
    # externalIds are exact: another case is another mapping
    ok(
        database,
        "mapping",
        "add",
        "--org",
        tenant.slug,
        "--group-external-id",
        "a",
        "--role",
        "Viewer",
    )
    ok(
        database,
        "mapping",
        "add",
        "--org",
        tenant.slug,
        "--group-external-id",
        "A",
        "--role",
        "Viewer",
    )
    # the same match granting something else is another mapping
    ok(database, "mapping", "add", "--org", tenant.slug, "--group-name", "Eng", "--role", "Editor")


def test_mapping_remove_refusals(database: Database, tenant: Tenant) -> None:
    assert "no mapping 999999 in this organisation" in refused(
        database, "mapping", "remove", "--org", tenant.slug, "999999"
    )
    assert "no such mapping" in refused(
        database,
        "mapping",
        "remove",
        "--org",
        tenant.slug,
        "--group-name",
        "x",
        "--role",
        "Viewer",
    )
    assert "either by its id" in refused(database, "mapping", "remove", "--org", tenant.slug)
    assert "either by its id" in refused(
        database, "mapping", "remove", "--org", tenant.slug, "1", "--group-name", "x"
    )


def test_a_mapping_of_another_organisation_cannot_be_removed(
    database: Database, tenant: Tenant
) -> None:
    ok(database, "org", "create", "other-org-cli", "--name", "Other")
    out = ok(
        database,
        "mapping",
        "add",
        "--org",
        "other-org-cli",
        "--group-name",
        "x",
        "--role",
        "Viewer",
        "--json",
    )
    other_id = json.loads(out)["mapping"]["id"]
    assert f"no mapping {other_id} in this organisation" in refused(
        database, "mapping", "remove", "--org", tenant.slug, str(other_id)
    )


# -- default role ----------------------------------------------------------------------------


def test_org_update_default_role(api: Api, database: Database, tenant: Tenant) -> None:
    plain = api.create_user("plain@acme.com")
    given = api.create_user("given@acme.com", roles=[{"value": "Editor"}])
    out = ok(database, "org", "update", tenant.slug, "--default-role", "viewer")
    assert out.splitlines() == [
        f"default role of {tenant.slug}: Viewer (was none)",
        "access changed for 1 user",
        f"  plain@acme.com ({plain['id']}): role none -> Viewer",
    ]
    event = last_event(database, tenant.org_id, "org.update")
    assert event.resource_type == "Organization"
    assert event.resource_id == tenant.slug
    assert event.changes == {
        "defaultRole": [None, "Viewer"],
        "affectedUsers": {
            "count": 1,
            "users": [
                {
                    "id": plain["id"],
                    "userName": "plain@acme.com",
                    "role": [None, "Viewer"],
                    "accessGroups": [[], []],
                }
            ],
        },
    }
    assert "   10  Viewer  [built-in, default]" in ok(
        database, "role", "list", "--org", tenant.slug
    )
    out = json.loads(
        ok(database, "org", "update", tenant.slug, "--default-role", "Collaborator", "--json")
    )
    assert out["defaultRole"] == "Collaborator"
    assert [u["role"] for u in out["affectedUsers"]["users"]] == [["Viewer", "Collaborator"]]
    assert api.get(f"/Users/{given['id']}").get_json()[ACCESS]["role"] == "Editor"
    ok(database, "org", "update", tenant.slug, "--default-role", "NONE")
    assert set(api.get(f"/Users/{plain['id']}").get_json()[ACCESS]) == {
        "status"
    }  # no role, no access groups
    out = ok(database, "org", "update", tenant.slug, "--default-role", "none")
    assert "access changed for 0 users" in out
    assert "no role 'Owner'" in refused(
        database, "org", "update", tenant.slug, "--default-role", "Owner"
    )
    assert "no organisation 'nope'" in refused(
        database, "org", "update", "nope", "--default-role", "none"
    )


def test_affected_users_are_listed_up_to_a_bound(
    api: Api, database: Database, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(access, "MAX_LISTED_USERS", 2)
    for n in range(3):
        api.create_user(f"u{n}@acme.com")
    out = json.loads(
        ok(database, "org", "update", tenant.slug, "--default-role", "Viewer", "--json")
    )
    assert out["affectedUsers"]["count"] == 3
    assert len(out["affectedUsers"]["users"]) == 2
    event = last_event(database, tenant.org_id, "org.update")
    assert event.changes is not None
    assert event.changes["affectedUsers"]["count"] == 3
    assert len(event.changes["affectedUsers"]["users"]) == 2


def test_text_output_shows_the_first_users_and_a_count(
    api: Api, database: Database, tenant: Tenant
) -> None:
    for n in range(22):
        api.create_user(f"t{n:02d}@acme.com")
    lines = ok(database, "org", "update", tenant.slug, "--default-role", "Viewer").splitlines()
    assert lines[1] == "access changed for 22 users"
    assert len(lines) == 2 + 20 + 1
    assert lines[-1].startswith("  ... and 2 more")


def test_cli_changes_keep_the_audit_chain_valid(database: Database, tenant: Tenant) -> None:
    ok(database, "role", "create", "--org", tenant.slug, "Guest", "--rank", "1")
    ok(database, "access-group", "create", "--org", tenant.slug, "AG")
    ok(database, "mapping", "add", "--org", tenant.slug, "--group-name", "G", "--role", "Guest")
    ok(database, "org", "update", tenant.slug, "--default-role", "Guest")
    with database.transaction(write=False) as session:
        assert verify(session, tenant.org_id).ok
        roles = session.scalar(
            select(func.count()).select_from(Role).where(Role.org_id == tenant.org_id)
        )
        mappings = session.scalar(
            select(func.count())
            .select_from(GroupMapping)
            .where(GroupMapping.org_id == tenant.org_id)
        )
    assert (roles, mappings) == (6, 1)


@pytest.mark.parametrize(
    ("first", "second", "taken_on"),
    [
        ("ΣΑΣ", "\u03c3\u03b1\u03c3", {"postgresql"}),  # PostgreSQL: the same (final sigma)
        ("ΣΑΣ", "\u03c3\u03b1\u03c2", {"sqlite", "postgresql"}),  # Python: the same
        ("İT", "i\u0307t", {"sqlite", "postgresql"}),  # Python folds İ to i + U+0307
        ("İT", "it", {"postgresql"}),  # PostgreSQL folds İ to i
    ],
)
def test_a_role_or_access_group_name_taken_by_either_fold_is_refused_cleanly(
    database: Database, tenant: Tenant, first: str, second: str, taken_on: set[str]
) -> None:
    """The unique index folds with the database's lower(), the access rules with Python's: a
    name either calls taken is refused with a message, writing nothing (where only the index
    said so, it was a traceback in the CLI and a 500 in the admin API)."""
    ok(database, "role", "create", "--org", tenant.slug, first, "--rank", "50")
    ok(database, "access-group", "create", "--org", tenant.slug, first)
    engine = "sqlite" if database.url.startswith("sqlite") else "postgresql"
    for kind, extra in (("role", ("--rank", "51")), ("access-group", ())):
        before = event_count(database, tenant.org_id)
        code, out = run(database, kind, "create", "--org", tenant.slug, second, *extra)
        if engine not in taken_on:
            assert code == 0, out
            continue
        assert code == 1, out
        assert "already exists (names are case-insensitive)" in out, out
        assert event_count(database, tenant.org_id) == before


def test_an_admin_names_a_role_as_a_users_roles_value_does(
    api: Api, database: Database, tenant: Tenant
) -> None:
    """One fold for names, the access rules' (Python's): 'ix' is not the role 'İx' (Python
    folds İ to i and a combining dot), for a mapping as for a user's roles value, on both
    databases; PostgreSQL's lower() alone had found it for the mapping."""
    ok(database, "role", "create", "--org", tenant.slug, "İx", "--rank", "50")
    refusal = refused(
        database, "mapping", "add", "--org", tenant.slug, "--group-name", "g", "--role", "ix"
    )
    assert "no role 'ix'" in refusal
    posted = api.post(
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "ix@acme.com", "roles": [{"value": "ix"}]},
    )
    assert posted.status_code == 400
    assert "must name a role" in posted.get_json()["detail"]
    ok(database, "mapping", "add", "--org", tenant.slug, "--group-name", "g", "--role", "İX")


def test_a_mapping_id_in_another_scripts_digits_is_no_id(
    database: Database, tenant: Tenant
) -> None:
    ok(database, "mapping", "add", "--org", tenant.slug, "--group-name", "g", "--role", "Editor")
    (listed,) = json.loads(ok(database, "mapping", "list", "--org", tenant.slug, "--json"))
    other_script = "".join(chr(0x660 + int(d)) for d in str(listed["id"]))
    code, message = run(database, "mapping", "remove", "--org", tenant.slug, other_script)
    assert code == 2
    assert "is not a whole number" in message
    assert json.loads(ok(database, "mapping", "list", "--org", tenant.slug, "--json")) == [listed]
