"""IdP dialects (DESIGN §4.1): each known deviation of Okta or Entra ID is accepted.

One test per named rule, through HTTP on both databases, with the request shapes the IdPs'
published references show.
"""

from __future__ import annotations

from tests.conftest import USER_SCHEMA, Api, patch_body

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
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
