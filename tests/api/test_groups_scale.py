"""Membership changes cost in proportion to the members changed, not to the group's size.

Counted in SQL statements, which do not depend on the machine: the same request against a group
of 10 members and a group of 10,000 members must send the same number of statements. The big
group is built with bulk SQL from the module's 10,000 users (setup, not the behaviour under
test); every measured request goes through HTTP.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from scim_server.store.db import Database
from tests.api.group_support import bulk_users, group_with
from tests.conftest import Api, StatementCounter, Tenant, make_tenant, patch_body

BIG = 10_000


@pytest.fixture(scope="module")
def tenant(database: Database) -> Tenant:
    """One organisation of 10,000 users for the module (per database): inserting them is most
    of the set-up, and every test builds its own groups from them."""
    crowd = make_tenant(database, "crowd")
    bulk_users(database, crowd.org_id, BIG, "member")
    return crowd


@pytest.fixture
def small_and_big(api: Api, database: Database) -> tuple[dict[str, Any], dict[str, Any]]:
    suffix = uuid.uuid4().hex[:8]
    return (
        group_with(api, database, f"small-{suffix}", 10, users_named="member"),
        group_with(api, database, f"big-{suffix}", BIG, users_named="member"),
    )


def _cost(counter: StatementCounter, send: Any) -> int:
    counter.statements.clear()
    response = send()
    assert response.status_code in (200, 204), response.get_data(as_text=True)
    return counter.count


def test_patch_add_one_member_costs_the_same_at_10_and_10000(
    api: Api,
    small_and_big: tuple[dict[str, Any], dict[str, Any]],
    count_statements: StatementCounter,
) -> None:
    small, big = small_and_big
    newcomers = [api.create_user(f"new{i}-{uuid.uuid4().hex[:6]}@acme.com")["id"] for i in range(2)]

    def add(group: dict[str, Any], user_id: str) -> Any:
        body = patch_body({"op": "add", "path": "members", "value": [{"value": user_id}]})
        return lambda: api.patch(f"/Groups/{group['id']}", body)

    assert _cost(count_statements, add(small, newcomers[0])) == _cost(
        count_statements, add(big, newcomers[1])
    )


def test_patch_remove_by_filter_costs_the_same_at_10_and_10000(
    api: Api,
    small_and_big: tuple[dict[str, Any], dict[str, Any]],
    count_statements: StatementCounter,
) -> None:
    small, big = small_and_big

    def remove(group: dict[str, Any]) -> Any:
        body = patch_body({"op": "remove", "path": f'members[value eq "{group["some_member"]}"]'})
        return lambda: api.patch(f"/Groups/{group['id']}", body)

    assert _cost(count_statements, remove(small)) == _cost(count_statements, remove(big))


def test_get_without_members_costs_the_same_and_never_reads_memberships(
    api: Api,
    small_and_big: tuple[dict[str, Any], dict[str, Any]],
    count_statements: StatementCounter,
) -> None:
    small, big = small_and_big

    def read(group: dict[str, Any]) -> Any:
        return lambda: api.get(
            f"/Groups/{group['id']}", query_string={"excludedAttributes": "members"}
        )

    assert _cost(count_statements, read(small)) == _cost(count_statements, read(big))
    assert not any("group_members" in s for s in count_statements.statements)


def test_full_member_replace_is_computed_in_sql(
    api: Api,
    small_and_big: tuple[dict[str, Any], dict[str, Any]],
    count_statements: StatementCounter,
) -> None:
    """Okta's full push: the difference is computed by the database (a constant number of
    statements for the delete, inserts in batches), and the result is exactly the new set."""
    _, big = small_and_big
    keep = api.get(f"/Groups/{big['id']}", query_string={"attributes": "members.value"}).get_json()
    kept = [m["value"] for m in keep["members"]][:150]
    body = patch_body({"op": "replace", "path": "members", "value": [{"value": v} for v in kept]})
    count_statements.statements.clear()
    assert api.patch(f"/Groups/{big['id']}", body).status_code == 204
    deletes = [
        s
        for s in count_statements.statements
        if s.lstrip().upper().startswith("DELETE FROM GROUP_MEMBERS")
    ]
    assert len(deletes) == 1
    after = api.get(f"/Groups/{big['id']}", query_string={"attributes": "members.value"}).get_json()
    assert sorted(m["value"] for m in after["members"]) == sorted(kept)


def test_get_streams_all_10000_members(
    api: Api, small_and_big: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, big = small_and_big
    response = api.get(f"/Groups/{big['id']}")
    assert response.status_code == 200
    assert response.is_streamed
    members = response.get_json()["members"]
    assert len(members) == BIG
    assert len({m["value"] for m in members}) == BIG
