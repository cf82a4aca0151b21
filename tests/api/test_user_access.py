"""Effective role and access groups on Users (DESIGN §5.2), through HTTP and the CLI.

A user's ``role`` and ``accessGroups`` (access extension) and ``groups`` are computed, shown on
every user response, and recomputed in the transaction of whatever changes them: the user's own
``roles``, a membership, a group's rename or deletion, a mapping, the default role.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from scim_server.cli import main
from scim_server.services import access
from scim_server.store.db import Database
from scim_server.store.models import AuditEvent, Group, GroupMember, Organization, User
from scim_server.store.types import utcnow
from tests.conftest import (
    USER_SCHEMA,
    Api,
    StatementCounter,
    make_tenant,
    patch_body,
    store_snapshot,
)

ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
BUILT_IN = "Administrator, Editor, Collaborator, Campaign Status Updater, Viewer"


def cli(database: Database, *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env={"SCIM_DATABASE_URL": database.url})
    assert result.exit_code == 0, result.output
    return result.output


def role_of(user: dict[str, Any]) -> str | None:
    extension = user.get(ACCESS) or {}
    role: str | None = extension.get("role")
    return role


def access_groups_of(user: dict[str, Any]) -> list[str]:
    return [g["value"] for g in (user.get(ACCESS) or {}).get("accessGroups", [])]


def read(api: Api, user_id: str) -> dict[str, Any]:
    response = api.get(f"/Users/{user_id}")
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def create_group(
    api: Api, name: str, members: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP], "displayName": name, **extra}
    if members:
        body["members"] = [{"value": member} for member in members]
    response = api.post("/Groups", body)
    assert response.status_code == 201, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


def members_op(op: str, *user_ids: str) -> dict[str, Any]:
    return patch_body({"op": op, "path": "members", "value": [{"value": u} for u in user_ids]})


def events(database: Database, org_id: int, operation: str) -> list[AuditEvent]:
    with database.transaction(write=False) as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.org_id == org_id, AuditEvent.operation == operation)
                .order_by(AuditEvent.seq)
            )
        )


# -- rendering and direct roles ---------------------------------------------------------------


def test_a_new_organisation_has_no_default_role(api: Api, database: Database) -> None:
    user = api.create_user("nobody@acme.com")
    assert set(user[ACCESS]) == {"status"}  # no role, no access groups
    assert ACCESS in user["schemas"]  # for its status
    assert "groups" not in user
    cli(database, "org", "update", api.tenant.slug, "--default-role", "Viewer")
    shown = read(api, user["id"])
    assert shown[ACCESS] == {"role": "Viewer", "status": "invited"}
    assert shown["schemas"][-1] == ACCESS
    assert role_of(api.create_user("next@acme.com")) == "Viewer"
    listed = api.list_users()["Resources"]
    assert [role_of(u) for u in listed] == ["Viewer", "Viewer"]


def test_direct_roles_resolve_to_the_highest_rank_and_are_audited(
    api: Api, database: Database
) -> None:
    user = api.create_user(
        "direct@acme.com", roles=[{"value": "Viewer"}, {"value": "editor", "primary": True}]
    )
    assert role_of(user) == "Editor"  # the role's own spelling, not the value's
    assert user["roles"] == [{"value": "Viewer"}, {"value": "editor", "primary": True}]
    created = events(database, api.tenant.org_id, "user.create")[-1]
    assert created.changes is not None
    assert created.changes[f"{ACCESS}:role"] == [None, "Editor"]
    assert f"{ACCESS}:accessGroups" not in created.changes


def test_a_new_user_stores_what_a_recomputation_gives(api: Api, database: Database) -> None:
    """A create computes the new user's access without recomputing it (it has no group and no
    stored access yet, issue #7): what it stores and audits must be what a recomputation of
    every user gives, whatever the roles, the default role and the mappings."""
    slug = api.tenant.slug
    cli(database, "role", "create", "--org", slug, "Guest", "--rank", "5")
    cli(database, "access-group", "create", "--org", slug, "Everything")
    # mappings exist, but a new user is in no group: they cannot apply
    cli(database, "mapping", "add", "--org", slug, "--group-name", "All", "--role", "Administrator")
    cli(
        database,
        "mapping",
        "add",
        "--org",
        slug,
        "--group-name",
        "All",
        "--access-group",
        "Everything",
    )
    for default in (None, "Guest", "Viewer"):
        if default is not None:
            cli(database, "org", "update", slug, "--default-role", default)
        for roles in ([], [{"value": "guest"}], [{"value": "Viewer"}, {"value": "editor"}]):
            user_name = f"new-{default}-{len(roles)}@acme.com".lower()
            created = api.create_user(user_name, roles=roles)
            ranked = ["guest", "viewer", "editor"]  # lowest rank first
            names = sorted((r["value"].lower() for r in roles), key=ranked.index)
            role = names[-1].capitalize() if names else default
            assert role_of(created) == role, (user_name, created)
            assert access_groups_of(created) == []
            event = events(database, api.tenant.org_id, "user.create")[-1]
            assert event.changes is not None
            assert event.changes.get(f"{ACCESS}:role") == ([None, role] if role else None)
            assert f"{ACCESS}:accessGroups" not in event.changes
            assert role_of(read(api, created["id"])) == role
        # every user of the organisation, recomputed: nothing to change
        with database.transaction(write=True) as session:
            assert access.recompute_access(session, api.tenant.org_id) == {}


def standing_admin(api: Api) -> None:
    """Another active administrator, so that taking the role from a test's user is not refused
    by the last-admin guard (tests/api/test_guards.py tests the guard itself)."""
    api.create_user("standing-admin@acme.com", roles=[{"value": "Administrator"}])


def test_patching_roles_recomputes_in_the_same_response(api: Api, database: Database) -> None:
    standing_admin(api)
    cli(database, "org", "update", api.tenant.slug, "--default-role", "Viewer")
    user = api.create_user("patch@acme.com")
    assert role_of(user) == "Viewer"
    response = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "add", "path": "roles", "value": [{"value": "Administrator"}]}),
    )
    assert response.status_code == 200, response.get_json()
    assert role_of(response.get_json()) == "Administrator"
    assert role_of(read(api, user["id"])) == "Administrator"
    patched = events(database, api.tenant.org_id, "user.patch")[-1]
    assert patched.changes is not None
    assert patched.changes[f"{ACCESS}:role"] == ["Viewer", "Administrator"]
    assert patched.changes["roles"] == [None, [{"value": "Administrator"}]]

    response = api.patch(f"/Users/{user['id']}", patch_body({"op": "remove", "path": "roles"}))
    assert role_of(response.get_json()) == "Viewer"  # back to the default role


def test_a_patch_that_leaves_roles_alone_does_not_recompute(
    api: Api, database: Database, count_statements: StatementCounter
) -> None:
    user = api.create_user("quiet@acme.com", roles=[{"value": "Editor"}])
    count_statements.statements.clear()
    response = api.patch(
        f"/Users/{user['id']}", patch_body({"op": "replace", "path": "title", "value": "CTO"})
    )
    assert role_of(response.get_json()) == "Editor"
    assert not [s for s in count_statements.statements if "user_access" in s.split("FROM", 1)[0]]
    assert not [s for s in count_statements.statements if "group_mappings" in s]
    changes = events(database, api.tenant.org_id, "user.patch")[-1].changes
    assert changes == {"title": [None, "CTO"]}


def test_put_replaces_roles_and_okta_style_readonly_echo_is_ignored(api: Api) -> None:
    user = api.create_user("put@acme.com", roles=[{"value": "Editor"}])
    body = {k: v for k, v in user.items() if k != "roles"}  # Okta echoes id, meta, groups, ...
    body["roles"] = [{"value": "Collaborator"}]
    body[ACCESS] = {"role": "Administrator"}  # readOnly: ignored, not a way to escalate
    response = api.put(f"/Users/{user['id']}", body)
    assert response.status_code == 200, response.get_json()
    assert role_of(response.get_json()) == "Collaborator"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_an_unknown_role_is_refused_naming_it_and_the_roles(
    api: Api, database: Database, method: str
) -> None:
    user = api.create_user("typo@acme.com", roles=[{"value": "Viewer"}])
    before = store_snapshot(database, api.tenant.org_id)
    roles = [{"value": "Viewer"}, {"value": "Edtior"}]
    if method == "POST":
        response = api.post(
            "/Users", {"schemas": [USER_SCHEMA], "userName": "b@acme.com", "roles": roles}
        )
    elif method == "PUT":
        response = api.put(f"/Users/{user['id']}", {"userName": "typo@acme.com", "roles": roles})
    else:
        response = api.patch(
            f"/Users/{user['id']}",
            patch_body({"op": "add", "path": "roles", "value": [{"value": "Edtior"}]}),
        )
    assert response.status_code == 400
    error = response.get_json()
    assert error["scimType"] == "invalidValue"
    assert error["detail"] == (
        'roles value "Edtior" must name a role of this organisation (case-insensitive); '
        f"its roles are: {BUILT_IN}"
    )
    assert store_snapshot(database, api.tenant.org_id) == before


def test_custom_roles_are_accepted_and_listed_in_the_refusal(api: Api, database: Database) -> None:
    cli(database, "role", "create", "--org", api.tenant.slug, "Reviewer", "--rank", "25")
    assert role_of(api.create_user("r@acme.com", roles=[{"value": "reviewer"}])) == "Reviewer"
    response = api.post(
        "/Users",
        {
            "schemas": [USER_SCHEMA],
            "userName": "x@acme.com",
            "roles": [{"value": "a"}, {"value": "b"}],
        },
    )
    assert response.get_json()["detail"] == (
        'roles values "a", "b" must name a role of this organisation (case-insensitive); '
        "its roles are: Administrator, Editor, Collaborator, Reviewer, Campaign Status Updater, "
        "Viewer"
    )


def test_a_stored_role_that_was_deleted_is_not_rechecked(api: Api, database: Database) -> None:
    cli(database, "role", "create", "--org", api.tenant.slug, "Reviewer", "--rank", "25")
    user = api.create_user("stale@acme.com", roles=[{"value": "Reviewer"}])
    out = cli(database, "role", "delete", "--org", api.tenant.slug, "Reviewer")
    assert "access changed for 1 user\n" in out
    assert "stale@acme.com" in out
    assert set(read(api, user["id"])[ACCESS]) == {"status"}  # no role, no access groups
    # Okta's next full PUT resends the stale value: accepted, still grants nothing
    response = api.put(
        f"/Users/{user['id']}",
        {"userName": "stale@acme.com", "title": "x", "roles": [{"value": "Reviewer"}]},
    )
    assert response.status_code == 200, response.get_json()
    assert set(response.get_json()[ACCESS]) == {"status"}  # no role, no access groups


def test_delete_keeps_the_access_in_the_tombstone(api: Api, database: Database) -> None:
    user = api.create_user("gone@acme.com", roles=[{"value": "Editor"}])
    assert api.delete(f"/Users/{user['id']}").status_code == 204
    deleted = events(database, api.tenant.org_id, "user.delete")[-1]
    assert deleted.changes is not None
    assert deleted.changes[f"{ACCESS}:role"] == ["Editor", None]


# -- groups and mappings (acceptance of issue #4) ---------------------------------------------


def test_joining_a_group_mapped_to_editor_grants_editor_and_leaving_drops_it(
    api: Api, database: Database
) -> None:
    slug = api.tenant.slug
    cli(database, "org", "update", slug, "--default-role", "Viewer")
    cli(
        database, "mapping", "add", "--org", slug, "--group-name", "engineering", "--role", "Editor"
    )
    user = api.create_user("join@acme.com")
    group = create_group(api, "Engineering")
    assert role_of(read(api, user["id"])) == "Viewer"

    response = api.patch(f"/Groups/{group['id']}", members_op("add", user["id"]))
    assert response.status_code in (200, 204), response.get_json()
    joined = read(api, user["id"])
    assert role_of(joined) == "Editor"
    assert joined["groups"] == [
        {
            "value": group["id"],
            "display": "Engineering",
            "$ref": f"http://localhost/scim/v2/Groups/{group['id']}",
            "type": "direct",
        }
    ]

    response = api.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "remove", "path": f'members[value eq "{user["id"]}"]'}),
    )
    assert response.status_code in (200, 204), response.get_json()
    left = read(api, user["id"])
    assert role_of(left) == "Viewer"
    assert "groups" not in left


def test_renaming_a_group_so_it_no_longer_matches_removes_the_grant(
    api: Api, database: Database
) -> None:
    cli(
        database,
        "mapping",
        "add",
        "--org",
        api.tenant.slug,
        "--group-prefix",
        "app-edit",
        "--role",
        "Editor",
    )
    user = api.create_user("rename@acme.com")
    group = create_group(api, "app-editors", [user["id"]])
    assert role_of(read(api, user["id"])) == "Editor"
    response = api.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "replace", "path": "displayName", "value": "former-editors"}),
    )
    assert response.status_code in (200, 204), response.get_json()
    shown = read(api, user["id"])
    assert set(shown[ACCESS]) == {"status"}  # no role, no access groups
    assert shown["groups"][0]["display"] == "former-editors"
    # and back: a rename into the mapping grants again
    api.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "replace", "path": "displayName", "value": "APP-EDITORS-EU"}),
    )
    assert role_of(read(api, user["id"])) == "Editor"


def test_a_membership_change_grants_by_every_name_the_group_has_before_and_after(
    api: Api, database: Database
) -> None:
    """Access is recomputed when a mapping names the group as it was or as it becomes (renamed
    in the same PATCH as its members change, or matched by externalId), and only then: joining
    a group no mapping names changes nobody's access."""
    slug = api.tenant.slug
    cli(database, "mapping", "add", "--org", slug, "--group-prefix", "eng-", "--role", "Editor")
    cli(database, "mapping", "add", "--org", slug, "--group-external-id", "X-9", "--role", "Editor")
    first, second, third = (api.create_user(f"m{n}@acme.com")["id"] for n in range(3))
    group = create_group(api, "Sales", [first])
    assert role_of(read(api, first)) is None
    body = patch_body(
        {"op": "replace", "path": "displayName", "value": "ENG-sales"},
        {"op": "add", "path": "members", "value": [{"value": second}]},
    )
    assert api.patch(f"/Groups/{group['id']}", body).status_code in (200, 204)
    assert [role_of(read(api, u)) for u in (first, second)] == ["Editor", "Editor"]
    body = patch_body(
        {"op": "replace", "path": "displayName", "value": "Sales"},
        {"op": "remove", "path": f'members[value eq "{first}"]'},
    )
    assert api.patch(f"/Groups/{group['id']}", body).status_code in (200, 204)
    assert [role_of(read(api, u)) for u in (first, second)] == [None, None]
    by_external_id = create_group(api, "Anything", externalId="X-9")
    assert api.patch(f"/Groups/{by_external_id['id']}", members_op("add", third)).status_code in (
        200,
        204,
    )
    assert role_of(read(api, third)) == "Editor"
    assert api.delete(f"/Groups/{by_external_id['id']}").status_code == 204
    assert role_of(read(api, third)) is None


def test_deleting_a_mapped_group_removes_the_grant(api: Api, database: Database) -> None:
    standing_admin(api)
    cli(database, "org", "update", api.tenant.slug, "--default-role", "Collaborator")
    cli(
        database,
        "mapping",
        "add",
        "--org",
        api.tenant.slug,
        "--group-external-id",
        "00gA",
        "--role",
        "Administrator",
    )
    user = api.create_user("del@acme.com")
    group = create_group(api, "Admins", [user["id"]], externalId="00gA")
    assert role_of(read(api, user["id"])) == "Administrator"
    assert api.delete(f"/Groups/{group['id']}").status_code == 204
    shown = read(api, user["id"])
    assert role_of(shown) == "Collaborator"
    assert "groups" not in shown


def test_two_role_grants_resolve_to_the_higher_rank(api: Api, database: Database) -> None:
    standing_admin(api)
    slug = api.tenant.slug
    cli(database, "mapping", "add", "--org", slug, "--group-name", "Editors", "--role", "Editor")
    cli(
        database,
        "mapping",
        "add",
        "--org",
        slug,
        "--group-name",
        "Helpers",
        "--role",
        "Campaign Status Updater",
    )
    user = api.create_user("two@acme.com", roles=[{"value": "Viewer"}])
    create_group(api, "Helpers", [user["id"]])
    assert role_of(read(api, user["id"])) == "Campaign Status Updater"
    create_group(api, "Editors", [user["id"]])
    assert role_of(read(api, user["id"])) == "Editor"
    # a direct role above both wins; dropping it falls back to the best grant
    api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "replace", "path": "roles", "value": [{"value": "Administrator"}]}),
    )
    assert role_of(read(api, user["id"])) == "Administrator"
    api.patch(f"/Users/{user['id']}", patch_body({"op": "remove", "path": "roles"}))
    assert role_of(read(api, user["id"])) == "Editor"


def test_access_groups_are_the_union_of_mapped_groups(api: Api, database: Database) -> None:
    slug = api.tenant.slug
    cli(database, "access-group", "create", "--org", slug, "Spring", "--campaign", "c1")
    cli(database, "access-group", "create", "--org", slug, "Autumn", "--campaign", "c2")
    cli(
        database,
        "mapping",
        "add",
        "--org",
        slug,
        "--group-prefix",
        "Campaign ",
        "--access-group",
        "Spring",
    )
    cli(
        database,
        "mapping",
        "add",
        "--org",
        slug,
        "--group-name",
        "Campaign Autumn",
        "--access-group",
        "autumn",
    )
    user = api.create_user("ag@acme.com")
    create_group(api, "Campaign Spring", [user["id"]])
    assert read(api, user["id"])[ACCESS] == {
        "accessGroups": [{"value": "Spring", "display": "Spring"}],
        "status": "invited",
    }
    create_group(api, "Campaign Autumn", [user["id"]])
    shown = read(api, user["id"])
    assert access_groups_of(shown) == ["Autumn", "Spring"]
    assert role_of(shown) is None
    listed = api.list_users(filter='userName eq "ag@acme.com"')["Resources"][0]
    assert access_groups_of(listed) == ["Autumn", "Spring"]
    assert [g["display"] for g in listed["groups"]] == ["Campaign Autumn", "Campaign Spring"]


def test_adding_and_removing_a_mapping_recomputes_members(api: Api, database: Database) -> None:
    slug = api.tenant.slug
    cli(database, "org", "update", slug, "--default-role", "Viewer")
    members = [api.create_user(f"m{i}@acme.com") for i in range(3)]
    outsider = api.create_user("out@acme.com")
    create_group(api, "Sales EMEA", [m["id"] for m in members])
    out = cli(
        database,
        "mapping",
        "add",
        "--org",
        slug,
        "--group-prefix",
        "sales",
        "--role",
        "Editor",
        "--json",
    )
    result = json.loads(out)
    assert result["mapping"]["match"] == "prefix"
    assert result["affectedUsers"]["count"] == 3
    assert sorted(u["userName"] for u in result["affectedUsers"]["users"]) == [
        "m0@acme.com",
        "m1@acme.com",
        "m2@acme.com",
    ]
    assert result["affectedUsers"]["users"][0]["role"] == ["Viewer", "Editor"]
    assert [role_of(read(api, m["id"])) for m in members] == ["Editor"] * 3
    assert role_of(read(api, outsider["id"])) == "Viewer"

    added = events(database, api.tenant.org_id, "mapping.add")[-1]
    assert added.actor_type == "cli"
    assert added.changes is not None
    assert added.changes["affectedUsers"]["count"] == 3

    out = cli(database, "mapping", "remove", "--org", slug, str(result["mapping"]["id"]))
    assert "access changed for 3 users" in out
    assert [role_of(read(api, m["id"])) for m in members] == ["Viewer"] * 3


def test_groups_attribute_can_be_excluded_and_filters_stay_on_users(api: Api) -> None:
    user = api.create_user("ex@acme.com")
    create_group(api, "G1", [user["id"]])
    response = api.get(f"/Users/{user['id']}", query_string={"excludedAttributes": "groups"})
    assert "groups" not in response.get_json()
    response = api.get(f"/Users/{user['id']}", query_string={"attributes": "groups"})
    assert [g["display"] for g in response.get_json()["groups"]] == ["G1"]


# -- isolation and cost ----------------------------------------------------------------------


def test_mappings_of_another_organisation_grant_nothing(api: Api, database: Database) -> None:
    other = make_tenant(database)
    cli(
        database,
        "mapping",
        "add",
        "--org",
        other.slug,
        "--group-name",
        "Engineering",
        "--role",
        "Administrator",
    )
    user = api.create_user("iso@acme.com")
    create_group(api, "Engineering", [user["id"]])
    assert set(read(api, user["id"])[ACCESS]) == {"status"}  # no role, no access groups
    with database.transaction(write=True) as session:
        user_pk = session.scalar(select(User.pk).where(User.id == user["id"]))
        assert user_pk is not None
        assert access.recompute_access(session, other.org_id, [user_pk]) == {}
        rows = session.execute(
            text("SELECT org_id FROM user_access WHERE user_pk = :p"), {"p": user_pk}
        ).all()
        assert rows == []


def _seed_group(database: Database, org_id: int, name: str, size: int) -> list[int]:
    """A group of ``size`` new users, written directly (fast), returning the user pks."""
    now = utcnow()
    with database.transaction(write=True) as session:
        users = [
            User(
                id=f"{org_id:08d}-0000-4000-8000-{n:012d}",
                org_id=org_id,
                user_name=f"{name}-{n}@acme.com",
                created_at=now,
                last_modified=now,
                data={"schemas": [USER_SCHEMA], "userName": f"{name}-{n}@acme.com"},
            )
            for n in range(size)
        ]
        session.add_all(users)
        group = Group(
            id=f"{org_id:08d}-0000-4000-9000-{size:012d}",
            org_id=org_id,
            display_name=name,
            created_at=now,
            last_modified=now,
            data={"schemas": [GROUP], "displayName": name},
        )
        session.add(group)
        session.flush()
        session.add_all(
            GroupMember(group_pk=group.pk, user_pk=u.pk, org_id=org_id, user_id=u.id) for u in users
        )
        return [u.pk for u in users]


def test_recompute_costs_the_same_whatever_the_group_and_organisation_size(
    database: Database, count_statements: StatementCounter
) -> None:
    counts = []
    for size in (3, 300):
        tenant = make_tenant(database)
        with database.transaction(write=True) as session:
            org = session.get(Organization, tenant.org_id)
            assert org is not None
            access.create_access_group(session, org, "AG")
            access.add_mapping(session, org, group_name="Big", role="Editor")
            access.add_mapping(session, org, group_prefix="b", access_group="AG")
        pks = _seed_group(database, tenant.org_id, "Big", size)
        # one member, one group of size 3 or 300, an organisation of 3 or 300 users
        with database.transaction(write=True) as session:
            count_statements.statements.clear()
            changed = access.recompute_access(session, tenant.org_id, pks[:1])
            counts.append(count_statements.count)
        assert changed == {pks[0]: ((None, ()), ("Editor", ("AG",)))}
        # the whole group at once: still a constant number of statements
        with database.transaction(write=True) as session:
            count_statements.statements.clear()
            changed = access.recompute_access(session, tenant.org_id, pks)
            counts.append(count_statements.count)
        assert len(changed) == size - 1
    single_small, all_small, single_big, all_big = counts
    # the organisation's rules held (FOR SHARE); roles with the default role, mappings; the
    # users locked, their direct roles, memberships, stored rows; access group names; upsert
    assert single_small == single_big == 9
    assert all_small == all_big == 9


def test_get_and_list_read_access_and_groups_in_the_users_statement(
    api: Api, database: Database, count_statements: StatementCounter
) -> None:
    slug = api.tenant.slug
    cli(database, "access-group", "create", "--org", slug, "AG")
    cli(database, "mapping", "add", "--org", slug, "--group-prefix", "g", "--access-group", "AG")
    cli(database, "mapping", "add", "--org", slug, "--group-prefix", "g", "--role", "Editor")
    plain = api.create_user("plain@acme.com")
    busy = api.create_user("busy@acme.com")
    for n in range(5):
        create_group(api, f"g{n}", [busy["id"]])

    def cost(path: str, **params: Any) -> tuple[int, dict[str, Any]]:
        count_statements.statements.clear()
        response = api.get(path, query_string=params)
        assert response.status_code == 200
        return count_statements.count, response.get_json()

    plain_cost, shown = cost(f"/Users/{plain['id']}")
    busy_cost, shown = cost(f"/Users/{busy['id']}")
    assert plain_cost == busy_cost
    # one statement reads the user, with its access and groups
    reads = [s for s in count_statements.statements if "user_access" in s or "FROM users" in s]
    assert len(reads) == 1, reads
    assert role_of(shown) == "Editor"
    assert access_groups_of(shown) == ["AG"]
    assert len(shown["groups"]) == 5

    one_cost, _ = cost("/Users", count=1)
    for n in range(8):
        api.create_user(f"more{n}@acme.com")
    page_cost, page = cost("/Users", count=10)
    assert one_cost == page_cost
    assert len(page["Resources"]) == 10


def test_recompute_in_chunks_gives_the_same_result(
    database: Database, count_statements: StatementCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = make_tenant(database)
    with database.transaction(write=True) as session:
        org = session.get(Organization, tenant.org_id)
        assert org is not None
        access.add_mapping(session, org, group_name="Chunked", role="Viewer")
    pks = _seed_group(database, tenant.org_id, "Chunked", 7)
    monkeypatch.setattr(access, "USER_CHUNK", 3)
    with database.transaction(write=True) as session:
        count_statements.statements.clear()
        changed = access.recompute_access(session, tenant.org_id, [*pks, *pks])
    assert changed == dict.fromkeys(pks, ((None, ()), ("Viewer", ())))
    # rules held, roles, mappings; three chunks of (users locked, direct roles, memberships,
    # stored rows); one upsert
    assert count_statements.count == 3 + 3 * 4 + 1
    with database.transaction(write=True) as session:
        assert access.recompute_access(session, tenant.org_id) == {}  # all of them: no change
        assert access.recompute_access(session, tenant.org_id, []) == {}


@pytest.mark.parametrize(
    "path",
    [f"{ACCESS}:role", f"{ACCESS}:accessGroups.value", f"{ACCESS}:status", "groups.display"],
)
def test_computed_attributes_are_refused_in_filters_not_silently_unmatched(
    api: Api, path: str
) -> None:
    api.create_user("f@acme.com", roles=[{"value": "Editor"}])
    response = api.get("/Users", query_string={"filter": f'{path} eq "Editor"'})
    assert response.status_code == 400
    assert response.get_json()["scimType"] == "invalidFilter"
    assert response.get_json()["detail"] == f'attribute "{path}" cannot be used in a filter yet'


@pytest.mark.parametrize(
    ("group", "option", "mapped"),
    [
        ("İT Team", "--group-name", "İT Team"),  # the same text: PostgreSQL folds İ to "i"
        ("Dev Δοκιμες", "--group-name", "DEV ΔΟΚΙΜΕΣ"),  # a final sigma, folded two ways
        ("i\u0307stanbul", "--group-name", "İstanbul"),  # Python folds İ to i + U+0307
        ("Δοκιμες Team", "--group-prefix", "ΔΟΚΙΜΕΣ"),
    ],
)
def test_a_mapping_grants_and_takes_back_by_the_rule_access_is_computed_with(
    api: Api, database: Database, group: str, option: str, mapped: str
) -> None:
    """Adding or removing a mapping recomputes the members of the groups it matches, by the
    rule the recomputation itself applies (``policy.mapping_matches``): PostgreSQL's ``lower()``
    folds some letters otherwise, and a removed mapping's grant once stayed in place."""
    slug = api.tenant.slug
    user = api.create_user("folded@acme.com")
    created = create_group(api, group, [user["id"]])
    added = json.loads(
        cli(database, "mapping", "add", "--org", slug, option, mapped, "--role", "Editor", "--json")
    )
    assert added["affectedUsers"]["count"] == 1
    assert role_of(read(api, user["id"])) == "Editor"
    # a membership change recomputes the user by the same rule: nothing moves
    api.patch(f"/Groups/{created['id']}", members_op("remove", user["id"]))
    assert role_of(read(api, user["id"])) is None
    api.patch(f"/Groups/{created['id']}", members_op("add", user["id"]))
    assert role_of(read(api, user["id"])) == "Editor"
    cli(database, "mapping", "remove", "--org", slug, str(added["mapping"]["id"]))
    assert role_of(read(api, user["id"])) is None
