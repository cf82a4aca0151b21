"""Bearer-token authentication through authlib's resource protector (DESIGN §7).

The token names its connection and organisation. A missing, unknown, expired or revoked token is a
401 with ``WWW-Authenticate`` and a SCIM error body; a token of the wrong scope is a 403.
"""

from __future__ import annotations

from typing import Any, NoReturn

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import g

from scim_server.http.provisioning_log import attribute_caller
from scim_server.http.request_db import request_session
from scim_server.scim.errors import Forbidden, Unauthorized
from scim_server.services.tokens import Principal, lookup

REALM = "scim"


class _TokenValidator(BearerTokenValidator):  # type: ignore[misc]
    def authenticate_token(self, token_string: str) -> Principal | None:
        principal = lookup(request_session(), token_string)
        attribute_caller(principal, token_string)
        return principal


class ScimResourceProtector(ResourceProtector):  # type: ignore[misc]
    def raise_error_response(self, error: OAuth2Error) -> NoReturn:
        if error.error == "insufficient_scope":
            raise Forbidden("this token's scope does not allow access to this endpoint")
        detail = {
            "missing_authorization": "authentication required: send Authorization: Bearer <token>",
            "unsupported_token_type": "only Bearer tokens are accepted",
        }.get(error.error, "the bearer token is invalid, expired or revoked")
        challenge = f'Bearer realm="{REALM}"'
        if error.error not in ("missing_authorization", "unsupported_token_type"):
            challenge += ', error="invalid_token"'
        raise Unauthorized(detail, headers={"WWW-Authenticate": challenge})


protector = ScimResourceProtector()
protector.register_token_validator(_TokenValidator(realm=REALM))


def require_principal(scope: str) -> Principal:
    """Authenticate the current request for ``scope`` and remember who it is."""
    try:
        principal: Any = protector.acquire_token([scope])
    except OAuth2Error as error:
        protector.raise_error_response(error)
    assert isinstance(principal, Principal)
    g.principal = principal
    return principal
