"""The last-admin guard and resource ownership (DESIGN §5.4 items 6 and 7, issue #5), through
the HTTP surface and the CLI: every refusal answers 409 naming the rule, writes nothing, and is
one audit event with outcome ``refused``."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import text, update

from scim_server.cli import main
from scim_server.services import guards, tokens
from scim_server.store.db import Database
from scim_server.store.models import Connection, User
from tests.api.audit_support import Auditor, auditor_for, request_id, run_cli
from tests.api.test_users_errors import assert_error
from tests.conftest import USER_SCHEMA, Api, Tenant, make_tenant, patch_body, store_snapshot

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"
ADMIN = [{"value": "Administrator"}]


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


def full_snapshot(database: Database, org_id: int) -> list[tuple[Any, ...]]:
    """Users, their index rows, groups, memberships and effective access of one organisation."""
    rows = store_snapshot(database, org_id)
    with database.engine.connect() as connection:
        for query in (
            "SELECT id, version, display_name, owner_connection_id FROM groups "
            "WHERE org_id = :o ORDER BY pk",
            "SELECT group_pk, user_pk FROM group_members WHERE org_id = :o "
            "ORDER BY group_pk, user_pk",
            "SELECT user_pk, role_pk FROM user_access WHERE org_id = :o ORDER BY user_pk",
            "SELECT id, owner_connection_id FROM users WHERE org_id = :o ORDER BY pk",
            "SELECT pk, match_value FROM group_mappings WHERE org_id = :o ORDER BY pk",
            "SELECT pk, name FROM roles WHERE org_id = :o ORDER BY pk",
            "SELECT default_role_pk FROM organizations WHERE id = :o",
        ):
            rows += [tuple(row) for row in connection.execute(text(query), {"o": org_id})]
    return rows


def refused(
    api: Api,
    auditor: Auditor,
    database: Database,
    method: str,
    path: str,
    body: Any,
    operation: str,
    *words: str,
) -> str:
    """Send a request a guard refuses; check the answer, the store and the audit event."""
    before = full_snapshot(database, api.tenant.org_id)
    rid = request_id("guard")
    response = api.request(method, path, body, headers={"X-Request-Id": rid})
    assert_error(response, 409, None, *words)
    assert full_snapshot(database, api.tenant.org_id) == before
    detail: str = response.get_json()["detail"]
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["status"]) == (operation, "refused", 409)
    assert (event["scimType"], event["detail"], event["changes"]) == (None, detail, None)
    return detail


def cli(database: Database, *args: str) -> Any:
    result = run_cli(database, *args)
    assert result.exit_code == 0, result.output
    return result


def make_admin(api: Api, user_name: str, **attributes: Any) -> dict[str, Any]:
    user = api.create_user(user_name, roles=ADMIN, **attributes)
    assert user[ACCESS]["role"] == "Administrator"
    return user


def last_admin_words(api: Api, user: dict[str, Any], action: str) -> tuple[str, ...]:
    return (
        f'last-admin guard: {action} user "{user["userName"]}" (id {user["id"]}) would leave '
        f'organisation "{api.tenant.slug}" without an active administrator',
        "give another active user an administrator role first",
    )


DEACTIVATE = patch_body({"op": "replace", "path": "active", "value": False})


def role_of(api: Api, user_id: str) -> str | None:
    role: str | None = api.get(f"/Users/{user_id}").get_json().get(ACCESS, {}).get("role")
    return role


def create_group(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    """POST a group and close the (streamed) response, so that its request context ends before
    another client's request in this thread."""
    response = api.post("/Groups", body)
    try:
        assert response.status_code == 201, response.get_json()
        created: dict[str, Any] = response.get_json()
        return created
    finally:
        response.close()


def other_connection(database: Database, tenant: Tenant, name: str = "Entra") -> Tenant:
    with database.transaction(write=True) as session:
        org = tokens.get_organization(session, tenant.slug)
        created, token = tokens.create_connection(session, org, name, "entra")
        return Tenant(tenant.slug, tenant.org_id, token, created.id)


# -- last-admin guard: the user's own requests -----------------------------------------------


def test_deactivating_the_last_admin_is_refused_by_patch_and_put(
    api: Api, auditor: Auditor, database: Database
) -> None:
    admin = make_admin(api, "alice@acme.com")
    path = f"/Users/{admin['id']}"
    words = last_admin_words(api, admin, "deactivating")
    refused(api, auditor, database, "PATCH", path, DEACTIVATE, "user.patch", *words)
    put = {"schemas": [USER_SCHEMA], "userName": "alice@acme.com", "roles": ADMIN, "active": False}
    refused(api, auditor, database, "PUT", path, put, "user.replace", *words)
    # other changes of the last administrator are fine
    renamed = api.patch(path, patch_body({"op": "replace", "path": "displayName", "value": "A"}))
    assert renamed.status_code == 200, renamed.get_json()
    # with a second active administrator, the first may go; then the second is the last
    second = make_admin(api, "bob@acme.com")
    assert api.patch(path, DEACTIVATE).status_code == 200
    refused(
        api,
        auditor,
        database,
        "PATCH",
        f"/Users/{second['id']}",
        DEACTIVATE,
        "user.patch",
        *last_admin_words(api, second, "deactivating"),
    )


def test_deleting_the_last_admin_is_refused(api: Api, auditor: Auditor, database: Database) -> None:
    admin = make_admin(api, "alice@acme.com")
    path = f"/Users/{admin['id']}"
    words = last_admin_words(api, admin, "deleting")
    refused(api, auditor, database, "DELETE", path, None, "user.delete", *words)
    assert api.get(path).status_code == 200
    # a deactivated administrator is not an active one: deleting it is fine
    make_admin(api, "bob@acme.com")
    assert api.patch(path, DEACTIVATE).status_code == 200
    assert api.delete(path).status_code == 204


def test_removing_the_admin_role_of_the_last_admin_is_refused(
    api: Api, auditor: Auditor, database: Database
) -> None:
    cli(database, "org", "update", api.tenant.slug, "--default-role", "Viewer")
    admin = make_admin(api, "alice@acme.com")
    path = f"/Users/{admin['id']}"
    words = last_admin_words(api, admin, "taking the administrator role from")
    remove = patch_body({"op": "remove", "path": "roles"})
    refused(api, auditor, database, "PATCH", path, remove, "user.patch", *words)
    put = {"schemas": [USER_SCHEMA], "userName": "alice@acme.com", "roles": [{"value": "Editor"}]}
    refused(api, auditor, database, "PUT", path, put, "user.replace", *words)
    assert role_of(api, admin["id"]) == "Administrator"
    # deactivating and removing the role in one request: still the last active administrator
    both = patch_body(
        {"op": "replace", "path": "active", "value": False}, {"op": "remove", "path": "roles"}
    )
    refused(
        api,
        auditor,
        database,
        "PATCH",
        path,
        both,
        "user.patch",
        *last_admin_words(api, admin, "deactivating"),
    )


def test_a_custom_admin_role_counts_and_an_outranking_grant_demotes(
    api: Api, auditor: Auditor, database: Database
) -> None:
    slug = api.tenant.slug
    cli(database, "role", "create", "--org", slug, "Owner", "--rank", "5", "--admin")
    owner = api.create_user("owner@acme.com", roles=[{"value": "Owner"}])
    assert owner[ACCESS]["role"] == "Owner"
    # Editor (rank 40) outranks Owner (rank 5): adding it takes the admin role away
    add = patch_body({"op": "add", "path": "roles", "value": [{"value": "Editor"}]})
    refused(
        api,
        auditor,
        database,
        "PATCH",
        f"/Users/{owner['id']}",
        add,
        "user.patch",
        *last_admin_words(api, owner, "taking the administrator role from"),
    )


def test_organisations_without_an_active_admin_are_not_affected(api: Api) -> None:
    user = api.create_user("plain@acme.com", roles=[{"value": "Editor"}])
    assert api.patch(f"/Users/{user['id']}", DEACTIVATE).status_code == 200
    assert api.delete(f"/Users/{user['id']}").status_code == 204
    # an administrator who is deactivated is not an active one: its role may go
    admin = make_admin(api, "former@acme.com", active=False)
    response = api.patch(f"/Users/{admin['id']}", patch_body({"op": "remove", "path": "roles"}))
    assert response.status_code == 200, response.get_json()
    assert api.delete(f"/Users/{admin['id']}").status_code == 204


# -- last-admin guard: group requests ----------------------------------------------------------


def admins_group(api: Api, database: Database, *members: str) -> str:
    cli(
        database,
        "mapping",
        "add",
        "--org",
        api.tenant.slug,
        "--group-name",
        "Admins",
        "--role",
        "Administrator",
    )
    body = {"schemas": [GROUP], "displayName": "Admins", "members": [{"value": m} for m in members]}
    group_id: str = create_group(api, body)["id"]
    return group_id


def test_group_changes_that_take_the_last_admin_role_are_refused(
    api: Api, auditor: Auditor, database: Database
) -> None:
    admin = api.create_user("alice@acme.com")
    group = admins_group(api, database, admin["id"])
    assert role_of(api, admin["id"]) == "Administrator"
    path = f"/Groups/{group}"
    words = last_admin_words(api, admin, "taking the administrator role from")
    remove = patch_body({"op": "remove", "path": f'members[value eq "{admin["id"]}"]'})
    refused(api, auditor, database, "PATCH", path, remove, "group.patch", *words)
    rename = patch_body({"op": "replace", "path": "displayName", "value": "Former admins"})
    refused(api, auditor, database, "PATCH", path, rename, "group.patch", *words)
    emptied = {"schemas": [GROUP], "displayName": "Admins", "members": []}
    refused(api, auditor, database, "PUT", path, emptied, "group.replace", *words)
    refused(api, auditor, database, "DELETE", path, None, "group.delete", *words)
    assert role_of(api, admin["id"]) == "Administrator"
    # with another administrator, the group may go
    make_admin(api, "bob@acme.com")
    assert api.delete(path).status_code == 204
    assert role_of(api, admin["id"]) is None


# -- last-admin guard: admin commands ----------------------------------------------------------


def cli_refused(database: Database, org_id: int, *args: str) -> str:
    before = full_snapshot(database, org_id)
    result = run_cli(database, *args)
    assert result.exit_code == 1, result.output
    assert full_snapshot(database, org_id) == before
    return result.output


def test_admin_commands_that_take_the_last_admin_role_are_refused(
    api: Api, database: Database
) -> None:
    slug, org_id = api.tenant.slug, api.tenant.org_id
    alice = api.create_user("alice@acme.com")
    admins_group(api, database, alice["id"])
    output = cli_refused(
        database,
        org_id,
        "mapping",
        "remove",
        "--org",
        slug,
        "--group-name",
        "Admins",
        "--role",
        "Administrator",
    )
    assert "last-admin guard" in output, output
    assert f'taking the administrator role from user "alice@acme.com" (id {alice["id"]})' in output
    # a custom admin role deleted
    cli(database, "role", "create", "--org", slug, "Owner", "--rank", "150", "--admin")
    bob = api.create_user("bob@acme.com", roles=[{"value": "Owner"}])
    assert api.patch(f"/Users/{alice['id']}", DEACTIVATE).status_code == 200
    output = cli_refused(database, org_id, "role", "delete", "--org", slug, "Owner")
    assert f'"bob@acme.com" (id {bob["id"]})' in output, output
    # the default role changed
    cli(database, "org", "update", slug, "--default-role", "Administrator")
    carol = api.create_user("carol@acme.com")
    assert role_of(api, carol["id"]) == "Administrator"
    assert api.patch(f"/Users/{bob['id']}", DEACTIVATE).status_code == 200
    output = cli_refused(database, org_id, "org", "update", slug, "--default-role", "Viewer")
    assert f'"carol@acme.com" (id {carol["id"]})' in output, output
    assert role_of(api, carol["id"]) == "Administrator"


def test_deactivate_outside_refuses_to_deactivate_the_last_admin(
    api: Api, database: Database
) -> None:
    admin = make_admin(api, "alice@gmail.com")
    output = cli_refused(
        database,
        api.tenant.org_id,
        "org",
        "update",
        api.tenant.slug,
        "--sso-domain",
        "acme.com",
        "--deactivate-outside",
    )
    assert f'deactivating user "alice@gmail.com" (id {admin["id"]})' in output, output
    make_admin(api, "bob@acme.com")
    cli(
        database,
        "org",
        "update",
        api.tenant.slug,
        "--sso-domain",
        "acme.com",
        "--deactivate-outside",
    )
    assert api.get(f"/Users/{admin['id']}").get_json()["active"] is False


# -- last-admin guard: races ---------------------------------------------------------------------


def test_two_deactivations_of_the_last_two_admins_at_once(app: Flask, database: Database) -> None:
    for _ in range(3):
        api = Api(app.test_client(), make_tenant(database))
        admins = [make_admin(api, f"a{i}@acme.com")["id"] for i in range(2)]
        start = threading.Barrier(2)
        statuses: list[int] = []

        def send(user_id: str, barrier: threading.Barrier, out: list[int]) -> None:
            client = Api(app.test_client(), api.tenant)  # noqa: B023
            barrier.wait()
            out.append(client.patch(f"/Users/{user_id}", DEACTIVATE).status_code)

        threads = [threading.Thread(target=send, args=(a, start, statuses)) for a in admins]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200, 409]
        active = [a for a in admins if api.get(f"/Users/{a}").get_json()["active"]]
        assert len(active) == 1


def test_two_groups_losing_the_last_two_admins_at_once(app: Flask, database: Database) -> None:
    """Both requests recompute (holding the organisation row FOR SHARE) before the guard: its
    lock must not be an upgrade of that row's lock, or the two would deadlock."""
    for _ in range(3):
        api = Api(app.test_client(), make_tenant(database))
        cli(
            database,
            "mapping",
            "add",
            "--org",
            api.tenant.slug,
            "--group-prefix",
            "Admins",
            "--role",
            "Administrator",
        )
        admins = [api.create_user(f"a{i}@acme.com")["id"] for i in range(2)]
        groups = [
            create_group(
                api,
                {
                    "schemas": [GROUP],
                    "displayName": f"Admins {i}",
                    "members": [{"value": admins[i]}],
                },
            )["id"]
            for i in range(2)
        ]
        start = threading.Barrier(2)
        statuses: list[int] = []

        def send(index: int, barrier: threading.Barrier, out: list[int]) -> None:
            client = Api(app.test_client(), api.tenant)  # noqa: B023
            body = patch_body({"op": "remove", "path": f'members[value eq "{admins[index]}"]'})  # noqa: B023
            barrier.wait()
            out.append(client.patch(f"/Groups/{groups[index]}", body).status_code)  # noqa: B023

        threads = [threading.Thread(target=send, args=(i, start, statuses)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [204, 409]
        assert sorted(role_of(api, a) or "-" for a in admins) == ["-", "Administrator"]


def test_a_deactivation_waits_for_an_uncommitted_one(
    app: Flask, api: Api, database: Database
) -> None:
    """Deterministic: while one transaction has deactivated admin A (past its guard, not yet
    committed), a request deactivating admin B must wait for it and then be refused."""
    first = make_admin(api, "first@acme.com")
    second = make_admin(api, "second@acme.com")
    opened = threading.Event()
    answered: list[int] = []

    def deactivate_second() -> None:
        opened.wait()
        client = Api(app.test_client(), api.tenant)
        answered.append(client.patch(f"/Users/{second['id']}", DEACTIVATE).status_code)

    worker = threading.Thread(target=deactivate_second)
    worker.start()
    with database.transaction(write=True) as session:
        session.execute(update(User).where(User.id == first["id"]).values(active=False))
        guards.refuse_if_no_admin_left(
            session, api.tenant.org_id, [(first["id"], first["userName"])], "deactivating"
        )
        opened.set()
        time.sleep(0.3)  # the other request runs while this one is not committed
    worker.join()
    assert answered == [409]
    assert api.get(f"/Users/{second['id']}").get_json()["active"] is True


# -- ownership -----------------------------------------------------------------------------------


def test_another_connection_may_read_but_not_change(
    app: Flask, api: Api, auditor: Auditor, database: Database
) -> None:
    user = api.create_user("owned@acme.com")
    group = create_group(api, {"schemas": [GROUP], "displayName": "Owned"})
    entra = Api(app.test_client(), other_connection(database, api.tenant, "Entra prod"))
    assert entra.get(f"/Users/{user['id']}").status_code == 200
    assert entra.get(f"/Groups/{group['id']}").status_code == 200
    assert entra.list_users()["totalResults"] == 1
    owner, caller = api.tenant.connection_id, entra.tenant.connection_id
    for kind, resource, put in (
        ("User", user, {"schemas": [USER_SCHEMA], "userName": "owned@acme.com"}),
        ("Group", group, {"schemas": [GROUP], "displayName": "Owned"}),
    ):
        path = f"/{kind}s/{resource['id']}"
        words = (
            f'{kind} "{resource["id"]}" belongs to connection "test connection" (id {owner}): '
            f'connection "Entra prod" (id {caller}) may read it but not change it '
            "(ownership rule)",
            f"scim-server connection transfer --org {api.tenant.slug} --from {owner} --to {caller}",
        )
        body = patch_body({"op": "replace", "path": "displayName", "value": "Taken"})
        operation = kind.lower()
        for method, sent, op in (
            ("PATCH", body, f"{operation}.patch"),
            ("PUT", put, f"{operation}.replace"),
            ("DELETE", None, f"{operation}.delete"),
        ):
            refused(entra, auditor, database, method, path, sent, op, *words)
    # its own group may name the other connection's user as a member
    create_group(
        entra, {"schemas": [GROUP], "displayName": "Mine", "members": [{"value": user["id"]}]}
    )
    # the owner still changes its own
    deleted = api.delete(f"/Users/{user['id']}")
    assert deleted.status_code == 204, deleted.get_json()


def test_resources_without_an_owner_may_be_changed_by_any_connection(
    app: Flask, api: Api, database: Database
) -> None:
    user = api.create_user("orphan@acme.com")
    with database.engine.begin() as connection:
        connection.execute(
            text("UPDATE users SET owner_connection_id = NULL WHERE id = :id"), {"id": user["id"]}
        )
    entra = Api(app.test_client(), other_connection(database, api.tenant))
    body = patch_body({"op": "replace", "path": "displayName", "value": "Anyone"})
    assert entra.patch(f"/Users/{user['id']}", body).status_code == 200
    with database.engine.connect() as connection:
        owner = connection.execute(
            text("SELECT owner_connection_id FROM users WHERE id = :id"), {"id": user["id"]}
        ).scalar()
    assert owner is None  # changing it did not claim it
    assert api.patch(f"/Users/{user['id']}", body).status_code == 200


def test_transfer_moves_ownership_and_is_audited(
    app: Flask, api: Api, auditor: Auditor, database: Database
) -> None:
    slug = api.tenant.slug
    users = [api.create_user(f"m{i}@acme.com") for i in range(3)]
    group = create_group(api, {"schemas": [GROUP], "displayName": "Moved"})
    entra = Api(app.test_client(), other_connection(database, api.tenant, "Entra prod"))
    entra_user = entra.create_user("e@acme.com")
    okta_id, entra_id = api.tenant.connection_id, entra.tenant.connection_id

    listed = json.loads(cli(database, "connection", "list", "--org", slug, "--json").stdout)
    assert [(c["id"], c["name"], c["idp"], c["usersOwned"], c["groupsOwned"]) for c in listed] == [
        (okta_id, "test connection", "generic", 3, 1),
        (entra_id, "Entra prod", "entra", 1, 0),
    ]
    assert all(c["created"].endswith("Z") for c in listed)
    text_out = cli(database, "connection", "list", "--org", slug).stdout
    assert f"{okta_id}  test connection  [generic]" in text_out
    assert "owns 3 users, 1 group" in text_out

    before = full_snapshot(database, api.tenant.org_id)
    result = cli(
        database, "connection", "transfer", "--org", slug, "--from", okta_id, "--to", "entra PROD"
    )
    assert result.stdout.strip() == (
        f"moved ownership of 3 users and 1 group from test connection ({okta_id}) "
        f"to Entra prod ({entra_id})"
    )
    after = full_snapshot(database, api.tenant.org_id)
    assert [row for row in after if okta_id in row] == []
    # versions (ETags) do not change: no SCIM representation changed
    assert api.get(f"/Users/{users[0]['id']}").headers["ETag"] == users[0]["meta"]["version"]
    assert len(before) == len(after)
    event = auditor.events('operation eq "connection.transfer"')[-1]
    assert (event["actorType"], event["resourceId"], event["outcome"]) == (
        "cli",
        okta_id,
        "success",
    )
    assert event["changes"] == {"owner": [okta_id, entra_id], "usersMoved": 3, "groupsMoved": 1}

    # now Entra changes them, and the old connection may not
    body = patch_body({"op": "replace", "path": "displayName", "value": "Moved"})
    assert entra.patch(f"/Users/{users[0]['id']}", body).status_code == 200
    assert entra.delete(f"/Groups/{group['id']}").status_code == 204
    assert api.patch(f"/Users/{users[1]['id']}", body).status_code == 409
    assert api.patch(f"/Users/{entra_user['id']}", body).status_code == 409

    moved = json.loads(
        cli(
            database,
            "connection",
            "transfer",
            "--org",
            slug,
            "--from",
            "Entra prod",
            "--to",
            okta_id,
            "--json",
        ).stdout
    )
    assert moved == {
        "from": {"id": entra_id, "name": "Entra prod"},
        "to": {"id": okta_id, "name": "test connection"},
        "users": 4,
        "groups": 0,
    }
    # back again with connection ids only, as the issue spells the command (no --org)
    back = cli(database, "connection", "transfer", "--from", entra_id, "--to", okta_id, "--json")
    assert json.loads(back.stdout)["from"]["id"] == entra_id
    unknown = CliRunner().invoke(
        main,
        ["connection", "transfer", "--from", "Entra prod", "--to", okta_id],
        env={"SCIM_DATABASE_URL": database.url},
    )
    assert unknown.exit_code != 0
    assert "give connection ids, or --org" in unknown.output


def test_transfer_refuses_unknown_same_and_ambiguous_connections(
    api: Api, database: Database
) -> None:
    slug = api.tenant.slug
    okta_id = api.tenant.connection_id
    result = run_cli(
        database, "connection", "transfer", "--org", slug, "--from", okta_id, "--to", "nope"
    )
    assert result.exit_code == 1
    assert "no connection 'nope'" in result.output
    assert "test connection" in result.output
    result = run_cli(
        database,
        "connection",
        "transfer",
        "--org",
        slug,
        "--from",
        okta_id,
        "--to",
        "test connection",
    )
    assert result.exit_code == 1
    assert "same connection" in result.output
    # two connections of one name: only a database from before names were unique has them
    twin = other_connection(database, api.tenant, "test connection twin")
    with database.transaction(write=True) as session:
        session.execute(
            update(Connection)
            .where(Connection.id == twin.connection_id)
            .values(name="test connection")
        )
    result = run_cli(
        database,
        "connection",
        "transfer",
        "--org",
        slug,
        "--from",
        "test connection",
        "--to",
        okta_id,
    )
    assert result.exit_code == 1
    assert "name it by id" in result.output
    # a connection of another organisation is not found
    stranger = other_connection(database, make_tenant(database, "other"))
    result = run_cli(
        database,
        "connection",
        "transfer",
        "--org",
        slug,
        "--from",
        okta_id,
        "--to",
        stranger.connection_id,
    )
    assert result.exit_code == 1
    assert "no connection" in result.output
