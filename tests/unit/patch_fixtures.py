"""Shared fixtures of the PATCH engine's unit tests: the shipped schemas and sample documents."""

from __future__ import annotations

import copy
from typing import Any

from scim_server.scim.patch import PATCH_OP, apply_patch
from scim_server.scim.schema import ResourceType
from tests.unit.registries import product_registry

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"


REGISTRY = product_registry()
USER = REGISTRY.resource_type("User")
GROUP = REGISTRY.resource_type("Group")


def user() -> dict[str, Any]:
    """A canonical stored User, as the store hands it to the PATCH engine."""
    return {
        "schemas": [CORE, ENTERPRISE, ACCESS],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "bjensen",
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "version": 'W/"3694e05e9dff590"',
        },
        "userName": "bjensen@example.com",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "active": True,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": True},
            {"value": "babs@jensen.org", "type": "home"},
        ],
        "addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"},
            {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood"},
        ],
        "groups": [{"value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Tour Guides"}],
        ENTERPRISE: {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John"},
        },
        ACCESS: {"role": "Viewer"},
    }


def group(*member_ids: str) -> dict[str, Any]:
    return {
        "schemas": [GROUP_URN],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "members": [{"value": m, "type": "User"} for m in member_ids],
    }


def patch(rt: ResourceType, doc: dict[str, Any], *operations: dict[str, Any]) -> dict[str, Any]:
    """Apply ``operations``; also check that neither the document nor the body was modified."""
    body = {"schemas": [PATCH_OP], "Operations": list(operations)}
    doc_before, body_before = copy.deepcopy(doc), copy.deepcopy(body)
    try:
        return apply_patch(rt, doc, body)
    finally:
        assert doc == doc_before
        assert body == body_before
