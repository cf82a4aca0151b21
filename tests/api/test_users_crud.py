"""/Users create, read, replace, patch, delete through HTTP (RFC 7644 §3.3-3.6)."""

from __future__ import annotations

from sqlalchemy import text

from scim_server.store.db import Database
from tests.conftest import SCIM, USER_SCHEMA, Api, make_tenant, patch_body

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def test_create_returns_the_stored_resource_with_location_and_etag(api: Api) -> None:
    response = api.post(
        "/Users",
        {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": "bjensen@example.com",
            "externalId": "00u1",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
            ENTERPRISE: {"employeeNumber": "701984", "department": "Tour Operations"},
        },
    )
    assert response.status_code == 201
    assert response.mimetype == SCIM
    user = response.get_json()
    assert user["userName"] == "bjensen@example.com"
    assert user["name"] == {"givenName": "Barbara", "familyName": "Jensen"}
    assert user["active"] is True
    assert user[ENTERPRISE]["department"] == "Tour Operations"
    access = "urn:ietf:params:scim:schemas:extension:access:2.0:User"
    assert set(user["schemas"]) == {USER_SCHEMA, ENTERPRISE, access}
    assert user[access] == {"status": "invited"}  # no SSO: invited (DESIGN §5.3)
    assert response.headers["Location"] == user["meta"]["location"]
    assert user["meta"]["location"].endswith(f"/scim/v2/Users/{user['id']}")
    assert user["meta"]["resourceType"] == "User"
    assert response.headers["ETag"] == user["meta"]["version"]

    fetched = api.get(f"/Users/{user['id']}")
    assert fetched.status_code == 200
    assert fetched.get_json() == user


def test_attribute_names_are_case_insensitive_and_stored_canonically(api: Api) -> None:
    user = api.create_user("casey", NAME={"GIVENNAME": "Casey"}, DisplayName="C")
    assert user["name"] == {"givenName": "Casey"}
    assert user["displayName"] == "C"


def test_password_is_accepted_but_never_stored_or_returned(api: Api, database: Database) -> None:
    user = api.create_user("pat", password="S3cret-Passw0rd!")
    assert "password" not in user
    assert "password" not in api.get(f"/Users/{user['id']}").get_json()
    with database.engine.connect() as connection:
        stored = connection.execute(
            text("SELECT CAST(data AS TEXT) FROM users WHERE id = :id"), {"id": user["id"]}
        ).scalar_one()
    assert "S3cret" not in stored


def test_read_only_attributes_in_input_are_ignored(api: Api) -> None:
    response = api.post(
        "/Users",
        {
            "schemas": [USER_SCHEMA],
            "id": "client-chosen",
            "userName": "ro",
            "meta": {"resourceType": "User", "created": "2001-01-01T00:00:00Z"},
            "groups": [],
        },
    )
    assert response.status_code == 201
    user = response.get_json()
    assert user["id"] != "client-chosen"
    assert not user["meta"]["created"].startswith("2001")


def test_put_replaces_every_writable_attribute(api: Api) -> None:
    user = api.create_user("put.me", displayName="Old", title="Engineer", nickName="P")
    response = api.put(
        f"/Users/{user['id']}",
        {
            "schemas": [USER_SCHEMA],
            "id": user["id"],
            "userName": "put.me",
            "displayName": "New",
            "password": "placeholder",
            "groups": [],
            "meta": user["meta"],
        },
    )
    assert response.status_code == 200
    replaced = response.get_json()
    assert replaced["displayName"] == "New"
    assert "title" not in replaced
    assert "nickName" not in replaced
    assert replaced["meta"]["version"] != user["meta"]["version"]
    assert replaced["meta"]["created"] == user["meta"]["created"]


def test_put_without_active_keeps_a_deactivated_user_deactivated(api: Api) -> None:
    user = api.create_user("keep.inactive", active=False)
    response = api.put(
        f"/Users/{user['id']}", {"schemas": [USER_SCHEMA], "userName": "keep.inactive"}
    )
    assert response.status_code == 200
    assert response.get_json()["active"] is False


def test_patch_deactivates_and_reactivates(api: Api) -> None:
    user = api.create_user("okta.style")
    off = api.patch(
        f"/Users/{user['id']}", patch_body({"op": "replace", "value": {"active": False}})
    )
    assert off.status_code == 200
    assert off.get_json()["active"] is False
    assert api.get(f"/Users/{user['id']}").get_json()["active"] is False
    on = api.patch(f"/Users/{user['id']}", patch_body({"op": "replace", "value": {"active": True}}))
    assert on.get_json()["active"] is True


def test_patch_value_path_and_extension_urn_path(api: Api) -> None:
    user = api.create_user(
        "entra.style",
        emails=[{"value": "old@example.com", "type": "work", "primary": True}],
        name={"givenName": "A", "familyName": "B"},
    )
    response = api.patch(
        f"/Users/{user['id']}",
        patch_body(
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "new@example.com"},
            {"op": "replace", "path": "name.familyName", "value": "C"},
            {"op": "add", "path": f"{ENTERPRISE}:employeeNumber", "value": "42"},
        ),
    )
    assert response.status_code == 200, response.get_json()
    patched = api.get(f"/Users/{user['id']}").get_json()
    assert patched["emails"] == [{"value": "new@example.com", "type": "work", "primary": True}]
    assert patched["name"]["familyName"] == "C"
    assert patched[ENTERPRISE] == {"employeeNumber": "42"}
    assert ENTERPRISE in patched["schemas"]
    # the filter index follows the document
    found = api.list_users(filter='emails.value eq "new@example.com"')
    assert [r["id"] for r in found["Resources"]] == [user["id"]]
    assert api.list_users(filter='emails.value eq "old@example.com"')["totalResults"] == 0


def test_patch_that_changes_nothing_keeps_the_version(api: Api) -> None:
    user = api.create_user("same", displayName="Same")
    response = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "replace", "path": "displayName", "value": "Same"}),
    )
    assert response.status_code == 200
    assert response.get_json()["meta"]["version"] == user["meta"]["version"]


def test_delete_then_get_is_404(api: Api) -> None:
    user = api.create_user("gone")
    response = api.delete(f"/Users/{user['id']}")
    assert response.status_code == 204
    assert response.data == b""
    missing = api.get(f"/Users/{user['id']}")
    assert missing.status_code == 404
    assert missing.get_json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert api.delete(f"/Users/{user['id']}").status_code == 404


def test_deleted_user_name_can_be_reused(api: Api) -> None:
    user = api.create_user("reuse.me")
    assert api.delete(f"/Users/{user['id']}").status_code == 204
    assert api.create_user("REUSE.me")["id"] != user["id"]


def test_inactive_users_are_still_returned(api: Api) -> None:
    user = api.create_user("inactive", active=False)
    assert api.get(f"/Users/{user['id']}").get_json()["active"] is False
    assert api.list_users(filter='userName eq "inactive"')["totalResults"] == 1


def test_attributes_and_excluded_attributes_on_get(api: Api) -> None:
    user = api.create_user("proj", displayName="P", name={"givenName": "G", "familyName": "F"})
    only = api.get(f"/Users/{user['id']}", query_string={"attributes": "name.givenName"}).get_json()
    assert only["id"] == user["id"]
    assert only["name"] == {"givenName": "G"}
    assert "displayName" not in only
    assert "userName" not in only
    without = api.get(
        f"/Users/{user['id']}", query_string={"excludedAttributes": "name,displayName"}
    ).get_json()
    assert "name" not in without
    assert "displayName" not in without
    assert without["userName"] == "proj"


def test_etag_if_match_and_if_none_match(api: Api) -> None:
    user = api.create_user("etag")
    etag = user["meta"]["version"]
    assert api.get(f"/Users/{user['id']}", headers={"If-None-Match": etag}).status_code == 304
    stale = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "replace", "path": "displayName", "value": "X"}),
        headers={"If-Match": 'W/"999"'},
    )
    assert stale.status_code == 412
    assert "displayName" not in api.get(f"/Users/{user['id']}").get_json()
    fresh = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "replace", "path": "displayName", "value": "X"}),
        headers={"If-Match": etag},
    )
    assert fresh.status_code == 200
    new_etag = fresh.headers["ETag"]
    assert new_etag != etag
    assert api.get(f"/Users/{user['id']}", headers={"If-None-Match": etag}).status_code == 200
    assert api.delete(f"/Users/{user['id']}", headers={"If-Match": etag}).status_code == 412
    assert (
        api.put(
            f"/Users/{user['id']}",
            {"schemas": [USER_SCHEMA], "userName": "etag"},
            headers={"If-Match": etag},
        ).status_code
        == 412
    )
    assert api.delete(f"/Users/{user['id']}", headers={"If-Match": new_etag}).status_code == 204


def test_another_organisation_cannot_see_or_touch_the_user(api: Api, database: Database) -> None:
    user = api.create_user("private@a.example")
    other = Api(api.client, make_tenant(database, "other"))
    assert other.get(f"/Users/{user['id']}").status_code == 404
    assert (
        other.patch(
            f"/Users/{user['id']}", patch_body({"op": "replace", "path": "active", "value": False})
        ).status_code
        == 404
    )
    assert (
        other.put(f"/Users/{user['id']}", {"schemas": [USER_SCHEMA], "userName": "x"}).status_code
        == 404
    )
    assert other.delete(f"/Users/{user['id']}").status_code == 404
    assert other.list_users(filter='userName eq "private@a.example"')["totalResults"] == 0
    assert other.list_users()["totalResults"] == 0
    # the same userName is free in another organisation
    assert other.create_user("private@a.example")["id"] != user["id"]
    assert api.get(f"/Users/{user['id']}").get_json()["active"] is True


def test_the_etag_changes_with_what_the_server_computes(api: Api) -> None:
    """A group membership changes the user's ``groups`` without a write to the user: a client
    revalidating must get the new document, and an If-Match taken before must fail."""
    user = api.create_user("etag-groups@example.com")
    before = api.get(f"/Users/{user['id']}").headers["ETag"]
    created = api.post(
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Etag watchers",
            "members": [{"value": user["id"]}],
        },
    )
    assert created.status_code == 201
    revalidated = api.get(f"/Users/{user['id']}", headers={"If-None-Match": before})
    assert revalidated.status_code == 200
    assert [g["display"] for g in revalidated.get_json()["groups"]] == ["Etag watchers"]
    after = revalidated.headers["ETag"]
    assert after != before
    assert revalidated.get_json()["meta"]["version"] == after
    stale = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "replace", "path": "title", "value": "x"}),
        headers={"If-Match": before},
    )
    assert stale.status_code == 412
    assert api.get(f"/Users/{user['id']}", headers={"If-None-Match": after}).status_code == 304
    fresh = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "replace", "path": "title", "value": "x"}),
        headers={"If-Match": after},
    )
    assert fresh.status_code == 200
    listed = api.list_users(filter=f'id eq "{user["id"]}"')["Resources"][0]
    assert listed["meta"]["version"] == fresh.headers["ETag"]


def test_list_pages_show_each_user_exactly_as_its_get(api: Api) -> None:
    """List pages read users as plain rows, GET as entities: the documents and ETags must be the
    same, whatever the user carries (extension, groups, direct role, inactive)."""
    plain = api.create_user("plain@example.com")
    rich = api.create_user(
        "rich@example.com",
        name={"givenName": "Ada", "familyName": "Lovelace"},
        emails=[{"value": "rich@example.com", "type": "work", "primary": True}],
        roles=[{"value": "Editor"}],
        **{ENTERPRISE: {"department": "R&D", "manager": {"value": plain["id"]}}},
    )
    inactive = api.create_user("inactive@example.com", active=False)
    group = api.post(
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Analysts",
            "members": [{"value": rich["id"]}, {"value": inactive["id"]}],
        },
    )
    assert group.status_code == 201
    assert len(group.get_json()["members"]) == 2  # reading ends the streamed body
    singles = {}
    for user in (plain, rich, inactive):
        response = api.get(f"/Users/{user['id']}")
        assert response.status_code == 200
        body = response.get_json()
        assert body["meta"]["version"] == response.headers["ETag"]
        singles[user["id"]] = body
    assert any(body.get("groups") for body in singles.values())

    pages = [
        api.list_users(),
        api.list_users(cursor="", count=10),
        api.list_users(filter='userName sw "r" or userName sw "p" or active eq false'),
    ]
    search = api.post("/Users/.search", {"schemas": [SEARCH_REQUEST], "count": 10})
    assert search.status_code == 200
    pages.append(search.get_json())
    for page in pages:
        listed = {resource["id"]: resource for resource in page["Resources"]}
        assert listed == singles
