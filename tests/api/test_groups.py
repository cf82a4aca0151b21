"""/Groups through HTTP (RFC 7644, DESIGN §5.2): CRUD, members, IdP shapes, bad input."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from scim_server.store.access import in_values
from scim_server.store.db import Database
from scim_server.store.models import User
from tests.conftest import Api, patch_body

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def create_group(
    api: Api, name: str, members: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP], "displayName": name, **extra}
    if members is not None:
        body["members"] = [{"value": member} for member in members]
    response = api.post("/Groups", body)
    assert response.status_code == 201, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


def member_ids(api: Api, group_id: str) -> set[str]:
    group = api.get(f"/Groups/{group_id}").get_json()
    return {member["value"] for member in group.get("members", [])}


def group_snapshot(database: Database, org_id: int) -> list[tuple[Any, ...]]:
    with database.engine.connect() as connection:
        groups = connection.execute(
            text("SELECT id, version, display_name FROM groups WHERE org_id = :o ORDER BY pk"),
            {"o": org_id},
        ).all()
        members = connection.execute(
            text("SELECT group_pk, user_id FROM group_members WHERE org_id = :o ORDER BY 1, 2"),
            {"o": org_id},
        ).all()
    return [tuple(row) for row in [*groups, *members]]


@pytest.fixture
def people(api: Api) -> list[dict[str, Any]]:
    return [api.create_user(f"user{i}@acme.com", displayName=f"User {i}") for i in range(4)]


def test_create_read_and_render_members(api: Api, people: list[dict[str, Any]]) -> None:
    response = api.post(
        "/Groups",
        {
            "schemas": [GROUP],
            "displayName": "Engineering",
            "externalId": "okta-00g1",
            "members": [{"value": people[0]["id"]}, {"value": people[1]["id"], "display": "x"}],
        },
    )
    assert response.status_code == 201
    group = response.get_json()
    assert response.headers["Location"] == group["meta"]["location"]
    assert response.headers["ETag"] == group["meta"]["version"]
    assert group["displayName"] == "Engineering"
    assert group["externalId"] == "okta-00g1"
    assert group["meta"]["resourceType"] == "Group"
    assert sorted(group["members"], key=lambda m: m["value"]) == sorted(
        [
            {
                "value": person["id"],
                "$ref": f"http://localhost/scim/v2/Users/{person['id']}",
                "type": "User",
            }
            for person in people[:2]
        ],
        key=lambda m: m["value"],
    )
    assert api.get(f"/Groups/{group['id']}").get_json() == group
    # display is not an RFC 7643 Group member sub-attribute: returned when asked for
    shown = api.get(f"/Groups/{group['id']}", query_string={"attributes": "members.display"})
    assert sorted(m["display"] for m in shown.get_json()["members"]) == ["User 0", "User 1"]


def test_excluded_members_are_not_returned(api: Api, people: list[dict[str, Any]]) -> None:
    group = create_group(api, "Sales", [p["id"] for p in people])
    read = api.get(f"/Groups/{group['id']}", query_string={"excludedAttributes": "members"})
    assert "members" not in read.get_json()
    listed = api.get(
        "/Groups",
        query_string={"excludedAttributes": "members", "filter": 'displayName eq "sales"'},
    ).get_json()
    assert listed["totalResults"] == 1
    assert "members" not in listed["Resources"][0]
    only_values = api.get(f"/Groups/{group['id']}", query_string={"attributes": "members.value"})
    assert {m["value"] for m in only_values.get_json()["members"]} == {p["id"] for p in people}
    assert all(set(m) == {"value"} for m in only_values.get_json()["members"])


def test_member_that_is_not_a_user_of_the_organisation_is_refused(
    api: Api, database: Database, people: list[dict[str, Any]]
) -> None:
    group = create_group(api, "Ops", [people[0]["id"]])
    before = group_snapshot(database, api.tenant.org_id)
    ghost = "6d1c1a4e-0000-4000-8000-000000000000"
    response = api.patch(
        f"/Groups/{group['id']}",
        patch_body(
            {
                "op": "add",
                "path": "members",
                "value": [{"value": people[1]["id"]}, {"value": ghost}],
            }
        ),
    )
    assert response.status_code == 400
    body = response.get_json()
    assert body["scimType"] == "invalidValue"
    assert ghost in body["detail"]
    assert group_snapshot(database, api.tenant.org_id) == before
    created = api.post(
        "/Groups", {"schemas": [GROUP], "displayName": "X", "members": [{"value": ghost}]}
    )
    assert created.status_code == 400
    assert group_snapshot(database, api.tenant.org_id) == before


def test_same_name_twice_is_409_case_insensitively(api: Api, database: Database) -> None:
    create_group(api, "Finance")
    before = group_snapshot(database, api.tenant.org_id)
    response = api.post("/Groups", {"schemas": [GROUP], "displayName": "FINANCE"})
    assert response.status_code == 409
    assert response.get_json()["scimType"] == "uniqueness"
    assert "FINANCE" in response.get_json()["detail"]
    assert group_snapshot(database, api.tenant.org_id) == before
    other = create_group(api, "Legal")
    before = group_snapshot(database, api.tenant.org_id)
    renamed = api.patch(
        f"/Groups/{other['id']}",
        patch_body({"op": "replace", "path": "displayName", "value": "finance"}),
    )
    assert renamed.status_code == 409
    assert group_snapshot(database, api.tenant.org_id) == before


def test_add_is_idempotent_and_removing_a_non_member_is_a_no_op(
    api: Api, people: list[dict[str, Any]]
) -> None:
    group = create_group(api, "Idem", [people[0]["id"]])
    add = patch_body({"op": "add", "path": "members", "value": [{"value": people[0]["id"]}]})
    assert api.patch(f"/Groups/{group['id']}", add).status_code == 204
    assert member_ids(api, group["id"]) == {people[0]["id"]}
    remove = patch_body({"op": "remove", "path": f'members[value eq "{people[3]["id"]}"]'})
    assert api.patch(f"/Groups/{group['id']}", remove).status_code == 204
    assert member_ids(api, group["id"]) == {people[0]["id"]}


def test_okta_group_push_shapes(api: Api, people: list[dict[str, Any]]) -> None:
    u1, u2 = people[0]["id"], people[1]["id"]
    group = create_group(api, "Test SCIMv2", [])
    gid = group["id"]
    listed = api.get("/Groups", query_string={"filter": 'displayName eq "Test SCIMv2"'}).get_json()
    assert [g["id"] for g in listed["Resources"]] == [gid]
    # rename: path-less replace whose value carries the id
    rename = patch_body(
        {"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2 renamed"}}
    )
    assert api.patch(f"/Groups/{gid}", rename).status_code in (200, 204)
    assert api.get(f"/Groups/{gid}").get_json()["displayName"] == "Test SCIMv2 renamed"
    # full member replace
    replace = patch_body(
        {"op": "replace", "path": "members", "value": [{"value": u2, "display": "x"}]}
    )
    assert api.patch(f"/Groups/{gid}", replace).status_code in (200, 204)
    assert member_ids(api, gid) == {u2}
    # remove by filter and add, in one request
    swap = patch_body(
        {"op": "remove", "path": f'members[value eq "{u2}"]'},
        {"op": "add", "path": "members", "value": [{"value": u1, "display": "y"}]},
    )
    assert api.patch(f"/Groups/{gid}", swap).status_code in (200, 204)
    assert member_ids(api, gid) == {u1}
    # PUT replaces everything
    put = api.put(
        f"/Groups/{gid}",
        {"schemas": [GROUP], "displayName": "Test SCIMv2", "members": [{"value": u2}]},
    )
    assert put.status_code == 200
    assert {m["value"] for m in put.get_json()["members"]} == {u2}
    assert api.delete(f"/Groups/{gid}").status_code == 204
    assert api.get(f"/Groups/{gid}").status_code == 404


def test_entra_member_shapes(api: Api, people: list[dict[str, Any]]) -> None:
    uid = people[2]["id"]
    group = create_group(
        api, "displayName_entra", externalId="8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    )
    gid = group["id"]
    add = patch_body({"op": "add", "path": "members", "value": [{"$ref": None, "value": uid}]})
    assert api.patch(f"/Groups/{gid}", add).status_code == 204
    assert member_ids(api, gid) == {uid}
    remove_by_value = patch_body(
        {"op": "remove", "path": "members", "value": [{"$ref": None, "value": uid}]}
    )
    assert api.patch(f"/Groups/{gid}", remove_by_value).status_code == 204
    assert member_ids(api, gid) == set()
    api.patch(f"/Groups/{gid}", add)
    remove_by_filter = patch_body({"op": "remove", "path": f'members[value eq "{uid}"]'})
    assert api.patch(f"/Groups/{gid}", remove_by_filter).status_code == 204
    assert member_ids(api, gid) == set()


def test_patch_returns_the_group_when_attributes_are_asked(
    api: Api, people: list[dict[str, Any]]
) -> None:
    group = create_group(api, "Asked", [people[0]["id"]])
    response = api.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "add", "path": "members", "value": [{"value": people[1]["id"]}]}),
        query_string={"excludedAttributes": "members"},
    )
    assert response.status_code == 200
    assert response.get_json()["displayName"] == "Asked"
    assert "members" not in response.get_json()
    assert response.headers["ETag"] != group["meta"]["version"]


def test_removing_all_members_and_member_sub_attributes_are_immutable(
    api: Api, people: list[dict[str, Any]]
) -> None:
    group = create_group(api, "All", [p["id"] for p in people])
    display = patch_body(
        {"op": "replace", "path": f'members[value eq "{people[0]["id"]}"].display', "value": "x"}
    )
    response = api.patch(f"/Groups/{group['id']}", display)
    assert response.status_code == 400
    assert response.get_json()["scimType"] == "mutability"
    assert (
        api.patch(
            f"/Groups/{group['id']}", patch_body({"op": "remove", "path": "members"})
        ).status_code
        == 204
    )
    assert member_ids(api, group["id"]) == set()


def test_user_groups_is_computed_and_read_only(api: Api, people: list[dict[str, Any]]) -> None:
    group = create_group(api, "Readers", [people[0]["id"]])
    user = api.get(f"/Users/{people[0]['id']}").get_json()
    assert [g["value"] for g in user.get("groups", [])] == [group["id"]]
    assert user["groups"][0]["display"] == "Readers"
    # writing groups on the user is ignored (readOnly), membership is changed on the group only
    api.put(
        f"/Users/{people[0]['id']}",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "user0@acme.com",
            "groups": [],
        },
    )
    assert member_ids(api, group["id"]) == {people[0]["id"]}


def test_deleting_a_user_removes_its_memberships(api: Api, people: list[dict[str, Any]]) -> None:
    group = create_group(api, "Leavers", [people[0]["id"], people[1]["id"]])
    assert api.delete(f"/Users/{people[0]['id']}").status_code == 204
    assert member_ids(api, group["id"]) == {people[1]["id"]}


def test_another_organisation_cannot_see_the_group(api: Api, database: Database) -> None:
    from tests.conftest import make_tenant

    group = create_group(api, "Private")
    other = Api(api.client, make_tenant(database, "other"))
    assert other.get(f"/Groups/{group['id']}").status_code == 404
    rename = patch_body({"op": "replace", "path": "displayName", "value": "Taken"})
    assert other.patch(f"/Groups/{group['id']}", rename).status_code == 404
    replace = {"schemas": [GROUP], "displayName": "Taken"}
    assert other.put(f"/Groups/{group['id']}", replace).status_code == 404
    assert other.delete(f"/Groups/{group['id']}").status_code == 404
    assert api.get(f"/Groups/{group['id']}").get_json()["displayName"] == "Private"
    assert other.get("/Groups").get_json()["totalResults"] == 0
    assert other.post("/Groups", {"schemas": [GROUP], "displayName": "Private"}).status_code == 201


def test_concurrent_patches_adding_different_members_both_land(
    app: Flask, api: Api, people: list[dict[str, Any]]
) -> None:
    group = create_group(api, "Race", [])
    statuses: list[int] = []

    def add(user_id: str) -> None:
        client = Api(app.test_client(), api.tenant)
        body = patch_body({"op": "add", "path": "members", "value": [{"value": user_id}]})
        statuses.append(client.patch(f"/Groups/{group['id']}", body).status_code)

    threads = [threading.Thread(target=add, args=(p["id"],)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [204] * len(people)
    assert member_ids(api, group["id"]) == {p["id"] for p in people}


@pytest.mark.parametrize(
    "params",
    [
        {"filter": 'members.display eq "a@x.com"'},
        {"filter": 'members.type eq "User"'},
        {"filter": "members.$ref pr"},
        {"filter": 'members[type eq "User"]'},
        {"filter": 'schemas eq "x"'},
        {"sortBy": "members.display"},
    ],
)
def test_member_sub_attributes_without_a_column_are_a_clean_400(
    api: Api, people: list[dict[str, Any]], params: dict[str, str]
) -> None:
    create_group(api, "Filtered", [people[0]["id"]])
    response = api.get("/Groups", query_string=params)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["scimType"] == "invalidFilter"
    assert (
        api.get(
            "/Groups", query_string={"filter": f'members.value eq "{people[0]["id"]}"'}
        ).get_json()["totalResults"]
        == 1
    )


def test_members_without_a_value_are_refused_not_dropped(
    api: Api, database: Database, people: list[dict[str, Any]]
) -> None:
    group = create_group(api, "Keep", [people[0]["id"]])
    before = group_snapshot(database, api.tenant.org_id)
    put = api.put(
        f"/Groups/{group['id']}",
        {"schemas": [GROUP], "displayName": "Keep", "members": [{"display": "x"}]},
    )
    assert put.status_code == 400
    assert put.get_json()["scimType"] == "invalidValue"
    assert "members[0]" in put.get_json()["detail"]
    assert group_snapshot(database, api.tenant.org_id) == before


def test_deleting_a_member_user_changes_the_group_version(
    api: Api, people: list[dict[str, Any]]
) -> None:
    group = create_group(api, "Versioned", [people[0]["id"], people[1]["id"]])
    etag = api.get(f"/Groups/{group['id']}").headers["ETag"]
    assert api.delete(f"/Users/{people[0]['id']}").status_code == 204
    again = api.get(f"/Groups/{group['id']}", headers={"If-None-Match": etag})
    assert again.status_code == 200
    assert again.headers["ETag"] != etag
    assert [m["value"] for m in again.get_json()["members"]] == [people[1]["id"]]


def test_member_ids_match_exactly_never_by_prefix(api: Api, database: Database) -> None:
    """PostgreSQL binds a request's member ids as one array: its element type must not shorten
    them (a cast to varchar(36)[] would make "<id>X" match "<id>")."""
    user = api.create_user("exact@example.com")
    with database.transaction(write=False) as session:
        longer = [user["id"] + "X", user["id"] + "-0000"]
        found = session.execute(select(User.pk).where(in_values(session, User.id, longer)))
        assert found.all() == []
        exact = session.execute(select(User.pk).where(in_values(session, User.id, [user["id"]])))
        assert len(exact.all()) == 1
    group = create_group(api, "Exact")
    body = patch_body({"op": "add", "path": "members", "value": [{"value": longer[0]}]})
    response = api.patch(f"/Groups/{group['id']}", body)
    assert response.status_code == 400
    assert member_ids(api, group["id"]) == set()
