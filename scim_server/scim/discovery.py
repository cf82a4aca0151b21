"""Discovery documents (RFC 7644 §4, RFC 7643 §5-7), built from the schema registry.

They must tell the truth: a feature appears as supported only once it works, and what is not
built says ``supported: false`` (and its endpoint answers 501).

``changePassword`` is false because this product has no passwords: users sign in through SSO.
A ``password`` sent anyway (Okta's password sync, a PATCH of ``password``) is accepted and
discarded, exactly as if it were absent — never stored, returned or logged — rather than refused:
refusing it would fail every profile update of an Okta app with password sync on, for a value the
product would throw away in any case. ``/Me`` is not an endpoint here (a token belongs to an IdP
connection, not to a user) and answers 501 to every method.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlsplit

from scim_server.scim.schema import Registry

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


#: Where the SCIM endpoint is mounted, and the OAuth token endpoint beside it (``http.oauth``).
SCIM_PATH = "/scim/v2"
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret


def token_endpoint(base_url: str) -> str:
    """The OAuth token endpoint's URL, beside the SCIM base URL ``base_url``, which a proxy
    may have put under a path of its own (``https://host/idp/scim/v2``: ``/idp/oauth/token``)."""
    base = base_url.rstrip("/")
    if base.endswith(SCIM_PATH):
        return base[: -len(SCIM_PATH)] + TOKEN_PATH
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}{TOKEN_PATH}"


def service_provider_config(
    base_url: str,
    *,
    max_results: int,
    default_page_size: int,
    cursor_timeout: int,
    bulk_max_operations: int,
    bulk_max_payload_bytes: int,
) -> dict[str, Any]:
    """RFC 7643 §5, with RFC 9865's ``pagination``: both methods, index by default (existing
    clients such as Okta and Entra page by ``startIndex`` and must keep working unchanged)."""
    return {
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": bulk_max_operations,
            "maxPayloadSize": bulk_max_payload_bytes,
        },
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "pagination": {
            "cursor": True,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": default_page_size,
            "maxPageSize": max_results,
            "cursorTimeout": cursor_timeout,
        },
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A connection token from `scim-server connection create`, sent "
                "as 'Authorization: Bearer <token>'.",
                "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
                "primary": True,
            },
            {
                "type": "oauth2",
                "name": "OAuth 2.0 client credentials",
                "description": "A connection's client id and secret from `scim-server connection "
                f"oauth`, exchanged at {token_endpoint(base_url)} (grant_type=client_credentials) "
                "for a short-lived access token, sent as 'Authorization: Bearer <token>'.",
                "specUri": "https://www.rfc-editor.org/rfc/rfc6749#section-4.4",
                "primary": False,
            },
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }


def _with_location(doc: dict[str, Any], resource_type: str, location: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["meta"] = {"resourceType": resource_type, "location": location}
    return out


def schema_documents(
    registry: Registry, base_url: str, served: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The schema documents of the served resource types (core and extensions)."""
    wanted: list[str] = []
    for name in served:
        for urn in registry.resource_type(name).schema_ids:
            if urn not in wanted:
                wanted.append(urn)
    docs = []
    for urn in wanted:
        schema = registry.schema(urn)
        assert schema is not None
        docs.append(_with_location(schema.document, "Schema", f"{base_url}/Schemas/{schema.id}"))
    return docs


def resource_type_documents(
    registry: Registry, base_url: str, served: tuple[str, ...]
) -> list[dict[str, Any]]:
    return [
        _with_location(
            registry.resource_type(name).document,
            "ResourceType",
            f"{base_url}/ResourceTypes/{registry.resource_type(name).id}",
        )
        for name in served
    ]
