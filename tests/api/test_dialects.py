"""IdP dialects (DESIGN §4.1): each known deviation of Okta or Entra ID is accepted.

One test per named rule, through HTTP on both databases, with the request shapes the IdPs'
published references show.
"""

from __future__ import annotations

import json
import uuid

from scim_server.store.db import Database
from tests.conftest import USER_SCHEMA, Api, patch_body, store_snapshot

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"
ADSCIM = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def test_capitalised_ops(api: Api) -> None:
    user = api.create_user("caps@acme.com")
    body = patch_body(
        {"op": "Replace", "path": "displayName", "value": "Caps"},
        {"op": "Add", "path": "nickName", "value": "C"},
    )
    response = api.patch(f"/Users/{user['id']}", body)
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["displayName"], response.get_json()["nickName"]) == ("Caps", "C")
    removed = api.patch(f"/Users/{user['id']}", patch_body({"op": "Remove", "path": "nickName"}))
    assert "nickName" not in removed.get_json()


def test_string_booleans(api: Api) -> None:
    user = api.create_user("bools@acme.com", active="True")
    assert user["active"] is True
    off = api.patch(
        f"/Users/{user['id']}", patch_body({"op": "Replace", "path": "active", "value": "False"})
    )
    assert off.get_json()["active"] is False
    on = api.patch(
        f"/Users/{user['id']}", patch_body({"op": "replace", "value": {"active": "true"}})
    )
    assert on.get_json()["active"] is True
    primary = api.patch(
        f"/Users/{user['id']}",
        patch_body(
            {"op": "add", "path": "emails", "value": [{"value": "b@acme.com", "primary": "True"}]}
        ),
    )
    assert primary.get_json()["emails"][0]["primary"] is True
    # anything else stays a type error
    wrong = api.patch(
        f"/Users/{user['id']}", patch_body({"op": "replace", "path": "active", "value": "yes"})
    )
    assert wrong.status_code == 400
    assert wrong.get_json()["scimType"] == "invalidValue"


def test_write_through_a_value_path_that_matches_nothing_creates_the_element(api: Api) -> None:
    user = api.create_user("novalue@acme.com")
    response = api.patch(
        f"/Users/{user['id']}",
        patch_body(
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "work@acme.com"}
        ),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["emails"] == [{"value": "work@acme.com", "type": "work"}]
    again = api.patch(
        f"/Users/{user['id']}",
        patch_body(
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "new@acme.com"}
        ),
    )
    assert again.get_json()["emails"] == [{"value": "new@acme.com", "type": "work"}]


def test_entra_default_office_mapping_writes_the_other_address(api: Api) -> None:
    """Entra's default mapping physicalDeliveryOfficeName -> addresses[type eq "other"].formatted
    (README, "What the IdPs send"): the first PATCH creates the address, later ones change it."""
    user = api.create_user("office@acme.com")
    path = 'addresses[type eq "other"].formatted'
    for op, office in (("Add", "Building 4"), ("Replace", "Building 5")):
        response = api.patch(
            f"/Users/{user['id']}", patch_body({"op": op, "path": path, "value": office})
        )
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["addresses"] == [{"formatted": office, "type": "other"}]


def test_a_replace_through_any_other_filter_that_matches_nothing_is_no_target(
    api: Api, database: Database
) -> None:
    """Only Entra's shape (one ``type eq "..."`` on a multi-valued attribute with a ``type``)
    creates the element; ``replace roles[value eq "Administrator"].primary`` on a user without
    that role must not grant it (RFC 7644 §3.5.2.3: 400 noTarget), and writes nothing."""
    user = api.create_user("notarget@acme.com", roles=[{"value": "Viewer"}])
    before = store_snapshot(database, api.tenant.org_id)
    for path in (
        'roles[value eq "Administrator"].primary',
        'emails[value eq "boss@acme.com"].type',
        'emails[type eq "work" and value eq "w@acme.com"].primary',
        'emails[type co "work"].value',
    ):
        response = api.patch(
            f"/Users/{user['id']}",
            patch_body(
                {"op": "Replace", "path": path, "value": True if "primary" in path else "x"}
            ),
        )
        assert response.status_code == 400, (path, response.get_json())
        assert response.get_json()["scimType"] == "noTarget", path
    assert store_snapshot(database, api.tenant.org_id) == before
    assert api.get(f"/Users/{user['id']}").get_json()["roles"] == [{"value": "Viewer"}]


def test_path_less_replace_with_dotted_and_urn_keys(api: Api) -> None:
    user = api.create_user("paths@acme.com", name={"givenName": "A"})
    response = api.patch(
        f"/Users/{user['id']}",
        patch_body(
            {
                "op": "Replace",
                "value": {
                    "displayName": "Bjfe",
                    "name.givenName": "Kkom",
                    f"{ENTERPRISE}:employeeNumber": "Aklq",
                    "active": "False",
                },
            }
        ),
    )
    assert response.status_code == 200, response.get_json()
    patched = response.get_json()
    assert patched["name"]["givenName"] == "Kkom"
    assert patched[ENTERPRISE]["employeeNumber"] == "Aklq"
    assert patched["active"] is False


def test_manager_as_a_bare_id(api: Api) -> None:
    boss = api.create_user("boss@acme.com")
    user = api.create_user("report@acme.com", **{ENTERPRISE: {"manager": boss["id"]}})
    assert user[ENTERPRISE]["manager"] == {"value": boss["id"]}
    response = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": boss["id"]}),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()[ENTERPRISE]["manager"] == {"value": boss["id"]}


def test_extra_microsoft_schema_uri_on_groups(api: Api) -> None:
    response = api.post(
        "/Groups",
        {
            "schemas": [GROUP, ADSCIM],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName_entra",
            "meta": {"resourceType": "Group"},
        },
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["schemas"] == [GROUP]
    # an unknown schema URI that no rule knows is still refused
    unknown = api.post("/Groups", {"schemas": [GROUP, "urn:example:nope"], "displayName": "x"})
    assert unknown.status_code == 400


def test_rules_do_not_depend_on_the_user_agent(api: Api) -> None:
    user = api.create_user("agent@acme.com")
    for agent in ("Okta SCIM Client 1.0.0", "curl/8", ""):
        response = api.patch(
            f"/Users/{user['id']}",
            patch_body({"op": "Replace", "path": "title", "value": agent or "none"}),
            headers={"User-Agent": agent},
        )
        assert response.status_code == 200
    assert (
        api.create_user("schema@acme.com", schemas=[USER_SCHEMA])["userName"] == "schema@acme.com"
    )


def test_unquoted_filter_values(api: Api) -> None:
    user = api.create_user("jyoung@acme.com", externalId="jyoung")
    found = api.list_users(filter="externalId eq jyoung")
    assert [r["id"] for r in found["Resources"]] == [user["id"]]
    both = api.list_users(filter='userName eq "jyoung@acme.com" and externalId eq jyoung')
    assert both["totalResults"] == 1
    # Entra's "Test connection" probes with a random GUID: 200 and an empty list
    probe = api.list_users(filter="userName eq 0d4a4c5e-1bfb-4b1e-8d4e-2a9c0f3b7e55")
    assert probe["totalResults"] == 0
    # what no rule can make sense of keeps its invalidFilter
    bad = api.get("/Users", query_string={"filter": "externalId eq"})
    assert bad.status_code == 400
    assert bad.get_json()["scimType"] == "invalidFilter"


def _app_role(value: str) -> str:
    """An app role assignment as Entra encodes it in a PATCH (AppRoleAssignmentsComplex)."""
    return json.dumps(
        {"id": "06b07648-ecfe-589f-9d2f-6325724a46ee", "value": value, "displayName": "Role"}
    )


def test_roles_as_json_encoded_app_roles(api: Api) -> None:
    user = api.create_user("roles@acme.com")
    added = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "Add", "path": "roles", "value": [{"value": _app_role("Editor")}]}),
    )
    assert added.status_code == 200, added.get_json()
    assert added.get_json()["roles"] == [{"value": "Editor"}]
    assert added.get_json()[ACCESS]["role"] == "Editor"
    # Entra removes the assignment with the same encoded shape: it matches the role by name
    removed = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "Remove", "path": "roles", "value": [{"value": _app_role("Editor")}]}),
    )
    assert removed.status_code == 200, removed.get_json()
    assert "roles" not in removed.get_json()
    # path-less, and in a POST body, the same rule applies; a plain role name is left alone
    pathless = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "replace", "value": {"roles": [{"value": _app_role("Viewer")}]}}),
    )
    assert pathless.get_json()["roles"] == [{"value": "Viewer"}]
    created = api.create_user(
        "roles2@acme.com", roles=[{"value": _app_role("Editor")}, {"value": "Viewer"}]
    )
    assert created["roles"] == [{"value": "Editor"}, {"value": "Viewer"}]


def test_roles_with_display_name_as_entra_posts_them(api: Api, database: Database) -> None:
    """Entra's AppRoleAssignmentsComplex mapping creates a user with one element per app role,
    naming its display text ``displayName`` (Microsoft's "Provisioning a role to a SCIM app")."""
    entra_roles = [
        {
            "primary": False,
            "type": "WindowsAzureActiveDirectoryRole",
            "displayName": "Editor",
            "value": "Editor",
        },
        {
            "primary": False,
            "type": "WindowsAzureActiveDirectoryRole",
            "displayName": "Viewer",
            "value": "Viewer",
        },
    ]
    created = api.post(
        "/Users",
        {
            "schemas": [USER_SCHEMA],
            "externalId": "alias",
            "userName": "approles@acme.com",
            "active": True,
            "displayName": "First Name Last Name",
            "meta": {"resourceType": "User"},
            "roles": entra_roles,
        },
    )
    assert created.status_code == 201, created.get_json()
    user = created.get_json()
    expected = [
        {
            "primary": False,
            "type": "WindowsAzureActiveDirectoryRole",
            "display": name,
            "value": name,
        }
        for name in ("Editor", "Viewer")
    ]
    assert user["roles"] == expected
    assert user[ACCESS]["role"] == "Editor"
    assert api.get(f"/Users/{user['id']}").get_json()["roles"] == expected
    # the same elements in a PATCH, with a path and path-less
    for operation in (
        {"op": "Replace", "path": "roles", "value": entra_roles[1:]},
        {"op": "Replace", "value": {"roles": entra_roles[1:]}},
    ):
        patched = api.patch(f"/Users/{user['id']}", patch_body(operation))
        assert patched.status_code == 200, patched.get_json()
        assert patched.get_json()["roles"] == expected[1:]
        assert patched.get_json()[ACCESS]["role"] == "Viewer"
    # both names at once is no shape Entra sends: refused, naming the attribute, nothing written
    before = store_snapshot(database, api.tenant.org_id)
    both = api.patch(
        f"/Users/{user['id']}",
        patch_body(
            {
                "op": "Add",
                "path": "roles",
                "value": [{"value": "Editor", "display": "Editor", "displayName": "Other"}],
            }
        ),
    )
    assert both.status_code == 400, both.get_json()
    assert both.get_json()["scimType"] == "invalidPath"  # a PATCH names sub-attributes as paths
    assert "roles.displayName" in both.get_json()["detail"]
    assert store_snapshot(database, api.tenant.org_id) == before


def test_roles_no_rule_can_read_are_refused_and_write_nothing(api: Api, database: Database) -> None:
    user = api.create_user("badroles@acme.com", roles=[{"value": "Viewer"}])
    before = store_snapshot(database, api.tenant.org_id)
    for value, words in (
        ('{"id": "06b07648", "value": "Ed', ("roles", "not valid JSON")),
        (json.dumps({"id": "06b07648", "displayName": "Editor"}), ("roles", '"value"')),
        (_app_role("Nope"), ("Nope",)),
    ):
        response = api.patch(
            f"/Users/{user['id']}",
            patch_body({"op": "Add", "path": "roles", "value": [{"value": value}]}),
        )
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["scimType"] == "invalidValue"
        for word in words:
            assert word in response.get_json()["detail"]
    posted = api.post(
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "r3@acme.com", "roles": [{"value": "{oops"}]},
    )
    assert posted.status_code == 400
    assert "roles" in posted.get_json()["detail"]
    assert store_snapshot(database, api.tenant.org_id) == before


def test_manager_that_is_neither_an_id_nor_an_object_is_refused(
    api: Api, database: Database
) -> None:
    boss = api.create_user("boss2@acme.com")
    user = api.create_user("report2@acme.com")
    # Entra's path-less shape with a URN-qualified key is normalised like the path form
    pathless = api.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "Replace", "value": {f"{ENTERPRISE}:manager": boss["id"]}}),
    )
    assert pathless.status_code == 200, pathless.get_json()
    assert pathless.get_json()[ENTERPRISE]["manager"] == {"value": boss["id"]}
    before = store_snapshot(database, api.tenant.org_id)
    for wrong in (42, [boss["id"]], True):
        response = api.patch(
            f"/Users/{user['id']}",
            patch_body({"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": wrong}),
        )
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["scimType"] == "invalidValue"
        assert "manager" in response.get_json()["detail"]
    posted = api.post(
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "m3@acme.com", ENTERPRISE: {"manager": 42}},
    )
    assert posted.status_code == 400
    assert "manager" in posted.get_json()["detail"]
    assert store_snapshot(database, api.tenant.org_id) == before


def test_boolean_strings_other_than_true_and_false_are_refused(
    api: Api, database: Database
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    for body in (
        {"schemas": [USER_SCHEMA], "userName": "b1@acme.com", "active": "yes"},
        {
            "schemas": [USER_SCHEMA],
            "userName": "b2@acme.com",
            "emails": [{"value": "b2@acme.com", "primary": "1"}],
        },
    ):
        response = api.post("/Users", body)
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["scimType"] == "invalidValue"
        assert "boolean" in response.get_json()["detail"]
    assert store_snapshot(database, api.tenant.org_id) == before


def test_okta_put_carrying_id_meta_groups_and_a_password(api: Api, database: Database) -> None:
    user = api.create_user("okta.put@acme.com", displayName="Before")
    group = api.post(
        "/Groups",
        {"schemas": [GROUP], "displayName": "Okta PUT", "members": [{"value": user["id"]}]},
    ).get_json()
    response = api.put(
        f"/Users/{user['id']}",
        {
            "schemas": [USER_SCHEMA],
            "id": "not-the-id",
            "userName": "okta.put@acme.com",
            "displayName": "After",
            "active": True,
            "groups": [],
            "password": "OktaPlaceholder-1",
            "meta": {"resourceType": "User", "created": "2001-01-01T00:00:00Z"},
        },
        headers={"User-Agent": "Okta SCIM Client 1.0.0"},
    )
    assert response.status_code == 200, response.get_json()
    replaced = response.get_json()
    assert (replaced["id"], replaced["displayName"]) == (user["id"], "After")
    assert replaced["meta"]["created"] == user["meta"]["created"]
    # groups is computed from memberships: an empty list in the body changes nothing
    assert [g["value"] for g in replaced["groups"]] == [group["id"]]
    assert "password" not in replaced
    assert not any(
        "OktaPlaceholder-1" in str(row) for row in store_snapshot(database, api.tenant.org_id)
    )


def test_entra_test_connection_probe_is_an_empty_list(api: Api) -> None:
    api.create_user("someone@acme.com", externalId="someone")
    for attribute in ("userName", "externalId", "id"):
        # the Tenant URL may carry Entra's ?aadOptscim062020 flag: an unknown parameter is ignored
        response = api.get(
            "/Users",
            query_string={"filter": f'{attribute} eq "{uuid.uuid4()}"', "aadOptscim062020": ""},
        )
        assert response.status_code == 200, response.get_json()
        listed = response.get_json()
        assert (listed["totalResults"], listed["itemsPerPage"], listed["Resources"]) == (0, 0, [])
        # integers, not strings or booleans (Okta reads them as numbers)
        assert all(type(listed[key]) is int for key in ("totalResults", "startIndex"))


def test_path_less_keys_and_ops_no_rule_can_read_are_refused(api: Api, database: Database) -> None:
    user = api.create_user("strict@acme.com")
    before = store_snapshot(database, api.tenant.org_id)
    for operation, scim_type, word in (
        ({"op": "Replace", "value": {"name.nope": "x"}}, "invalidPath", "name.nope"),
        ({"op": "Replace", "value": {"urn:example:nope:title": "x"}}, "invalidPath", "urn:example"),
        ({"op": "Merge", "path": "title", "value": "x"}, "invalidSyntax", "merge"),
    ):
        response = api.patch(f"/Users/{user['id']}", patch_body(operation))
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["scimType"] == scim_type
        assert word in response.get_json()["detail"]
    assert store_snapshot(database, api.tenant.org_id) == before
