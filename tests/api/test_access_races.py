"""Effective access stays right when changes that affect the same users run at the same time.

Both races were reproduced on PostgreSQL before the fix (READ COMMITTED: each transaction
recomputed without the other's uncommitted change, and the last commit won). On SQLite the
write lock serialises them; the tests run on both databases.
"""

from __future__ import annotations

import threading
import time

from flask import Flask
from sqlalchemy import text

from scim_server.services import access, tokens
from scim_server.store.db import Database
from tests.conftest import Api, patch_body

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"


def _role(api: Api, user_id: str) -> str | None:
    user = api.get(f"/Users/{user_id}").get_json()
    role: str | None = user.get(ACCESS, {}).get("role")
    return role


def _map(database: Database, slug: str, group: str, role: str) -> None:
    with database.transaction(write=True) as session:
        org = tokens.get_organization(session, slug)
        access.add_mapping(session, org, group_name=group, role=role)


def test_two_groups_granting_roles_to_the_same_users_at_once(
    app: Flask, api: Api, database: Database
) -> None:
    _map(database, api.tenant.slug, "Editors", "Editor")
    _map(database, api.tenant.slug, "Viewers", "Viewer")
    for round_ in range(3):
        users = [api.create_user(f"r{round_}u{i}@acme.com")["id"] for i in range(20)]
        gids = []
        for name in ("Editors", "Viewers"):
            created = api.post("/Groups", {"schemas": [GROUP], "displayName": name})
            assert created.status_code == 201, created.get_json()
            gids.append(created.get_json()["id"])
        start = threading.Barrier(2)
        statuses: list[int] = []
        body = patch_body({"op": "add", "path": "members", "value": [{"value": u} for u in users]})

        def add_all(group_id: str, barrier: threading.Barrier, out: list[int]) -> None:
            client = Api(app.test_client(), api.tenant)
            barrier.wait()
            out.append(client.patch(f"/Groups/{group_id}", body).status_code)  # noqa: B023

        threads = [threading.Thread(target=add_all, args=(gid, start, statuses)) for gid in gids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [204, 204]
        # in both groups: the higher rank wins, whatever the order of the commits
        assert {_role(api, u) for u in users} == {"Editor"}
        for gid in gids:
            assert api.delete(f"/Groups/{gid}").status_code == 204


def test_a_mapping_added_while_a_member_joins(app: Flask, api: Api, database: Database) -> None:
    user = api.create_user("joiner@acme.com")["id"]
    group = api.post("/Groups", {"schemas": [GROUP], "displayName": "Eng"}).get_json()["id"]
    mapping_open = threading.Event()
    joined: list[int] = []

    def join() -> None:
        mapping_open.wait()
        client = Api(app.test_client(), api.tenant)
        body = patch_body({"op": "add", "path": "members", "value": [{"value": user}]})
        joined.append(client.patch(f"/Groups/{group}", body).status_code)

    joiner = threading.Thread(target=join)
    joiner.start()
    with database.transaction(write=True) as session:
        org = tokens.get_organization(session, api.tenant.slug)
        access.add_mapping(session, org, group_name="Eng", role="Editor")
        mapping_open.set()
        time.sleep(0.3)  # the member joins while the mapping is not committed yet
    joiner.join()
    assert joined == [204]
    assert _role(api, user) == "Editor"


def test_a_role_change_by_scim_and_a_rule_change_take_locks_in_one_order(
    app: Flask, api: Api, database: Database
) -> None:
    """A rule change locks the organisation, then users; a SCIM write that changes roles must
    not lock its user first and then wait for the organisation (a deadlock: 500 for the IdP)."""
    user = api.create_user("locks@acme.com")
    statuses: list[int] = []

    def change_roles() -> None:
        client = Api(app.test_client(), api.tenant)
        body = patch_body({"op": "add", "path": "roles", "value": [{"value": "Viewer"}]})
        statuses.append(client.patch(f"/Users/{user['id']}", body).status_code)

    writer = threading.Thread(target=change_roles)
    # what a rule change holds: the organisation row (PostgreSQL), the write lock (SQLite)
    with database.transaction(write=True) as admin:
        admin.execute(
            text("SELECT id FROM organizations WHERE id = :o FOR UPDATE")
            if not database.is_sqlite
            else text("UPDATE organizations SET name = name WHERE id = :o"),
            {"o": api.tenant.org_id},
        )
        writer.start()
        time.sleep(0.3)  # the SCIM write is now waiting for the organisation
        if not database.is_sqlite:
            # ...and then the users it recomputes
            admin.execute(
                text("SELECT pk FROM users WHERE id = :u FOR NO KEY UPDATE"), {"u": user["id"]}
            )
    writer.join()
    assert statuses == [200]
    assert _role(api, user["id"]) == "Viewer"


def test_the_same_access_group_created_at_once_is_created_once(
    api: Api, database: Database
) -> None:
    """Found by fuzzing the admin API on PostgreSQL: 12 parallel creates of one name gave one
    201 and six 500s (the unique index's violation), the clash check running unlocked."""
    for round_ in range(3):
        name = f"Race {round_}"
        start = threading.Barrier(8)
        outcomes: list[str] = []

        def create(barrier: threading.Barrier, out: list[str], wanted: str) -> None:
            barrier.wait()
            try:
                with database.transaction(write=True) as session:
                    org = tokens.get_organization(session, api.tenant.slug)
                    access.create_access_group(session, org, wanted)
                out.append("created")
            except tokens.ServiceError as error:
                out.append("refused" if "already exists" in str(error) else repr(error))
            except Exception as error:  # the 500s: anything but a clean refusal
                out.append(repr(error))

        threads = [threading.Thread(target=create, args=(start, outcomes, name)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["created"] + ["refused"] * 7, outcomes
