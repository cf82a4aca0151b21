"""Discovery endpoints (RFC 7644 §4) are served from schemas/ and tell the truth."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Api

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"


def test_service_provider_config_tells_what_is_supported(api: Api) -> None:
    response = api.get("/ServiceProviderConfig")
    assert response.status_code == 200
    config = response.get_json()
    assert config["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert config["patch"]["supported"] is True
    assert config["filter"] == {"supported": True, "maxResults": 200}
    assert config["sort"]["supported"] is True
    assert config["etag"]["supported"] is True
    assert config["changePassword"]["supported"] is False
    # /Bulk works, with the limits the server enforces (tests/api/test_bulk.py)
    assert config["bulk"] == {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1048576}
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    # RFC 9865: both paging methods, index by default, from the real settings
    assert config["pagination"] == {
        "cursor": True,
        "index": True,
        "defaultPaginationMethod": "index",
        "defaultPageSize": 100,
        "maxPageSize": 200,
        "cursorTimeout": 3600,
    }
    # and they are true: the default is index paging, a cursor starts cursor paging
    assert "startIndex" in api.get("/Users").get_json()
    assert "startIndex" not in api.get("/Users", query_string={"cursor": ""}).get_json()
    assert api.get("/Users", query_string={"cursor": "", "count": 201}).status_code == 400


def test_schemas_are_served_from_the_schema_documents(api: Api) -> None:
    listed = api.get("/Schemas").get_json()
    ids = [doc["id"] for doc in listed["Resources"]]
    # the access extension is attached: role and accessGroups are computed (issue 4)
    assert ids[:3] == [USER, ENTERPRISE, ACCESS]
    assert listed["totalResults"] == len(ids)
    on_disk = json.loads((SCHEMAS_DIR / "user.json").read_text())
    served = api.get(f"/Schemas/{USER}").get_json()
    assert served["attributes"] == on_disk["attributes"]
    assert served["meta"]["location"].endswith(f"/scim/v2/Schemas/{USER}")
    # URNs are case-insensitive
    assert api.get(f"/Schemas/{USER.upper()}").get_json()["id"] == USER
    assert api.get("/Schemas/urn:nope").status_code == 404


def test_resource_types_list_only_what_is_served(api: Api) -> None:
    listed = api.get("/ResourceTypes").get_json()
    assert [rt["name"] for rt in listed["Resources"]] == ["User", "Group"]
    user = api.get("/ResourceTypes/User").get_json()
    assert user["endpoint"] == "/Users"
    assert user["schema"] == USER
    assert [ext["schema"] for ext in user["schemaExtensions"]] == [ENTERPRISE, ACCESS]
    group = api.get("/ResourceTypes/Group").get_json()
    assert group["endpoint"] == "/Groups"
    # the auditor API's event type is not a SCIM resource type
    assert api.get("/ResourceTypes/AuditEvent").status_code == 404


def test_a_filter_on_a_discovery_endpoint_is_refused(api: Api) -> None:
    """RFC 7644 §4: discovery answers everything it has, so a filter would be taken for
    conditions that hold; the service provider SHOULD answer 403."""
    for path in ("/Schemas", "/ResourceTypes", "/ServiceProviderConfig", f"/Schemas/{USER}"):
        response = api.get(path, query_string={"filter": 'id eq "x"'})
        assert response.status_code == 403, path
        body = response.get_json()
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert body["status"] == "403"
        assert '"filter"' in body["detail"]
        assert "RFC 7644 §4" in body["detail"]
        assert api.get(path).status_code == 200
