"""The OAuth 2.0 token endpoint, ``POST /oauth/token`` (RFC 6749 §4.4, DESIGN §7).

An IdP configured with a connection's client id and secret (``scim-server connection oauth``)
trades them here for an access token of a few minutes' life, and sends that as its bearer token.
authlib parses the request and authenticates the client (HTTP Basic or the form's
``client_id``/``client_secret``), and words the errors as RFC 6749 §5.2 says; the token itself
is issued by ``services.oauth`` in a write transaction with its audit event (``oauth.token``).
Every refused request is an ``auth.failed`` event, bounded per client address like the bearer
failures, in the organisation's log when the client id is known.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, InvalidRequestError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import OAuth2Payload, OAuth2Request
from flask import Blueprint, Response, current_app, request
from sqlalchemy.orm import Session

from scim_server.config import Settings
from scim_server.http.context import request_context
from scim_server.http.provisioning_log import current_draft, note_error
from scim_server.http.request_db import end_request_session, request_session
from scim_server.services import oauth
from scim_server.services.context import RequestContext
from scim_server.services.tokens import CLIENT_SCOPE, Principal, presented_prefix
from scim_server.services.transaction import perform_write
from scim_server.store.db import Database

if TYPE_CHECKING:  # imported by the app only when SCIM_RATE_LIMIT is set
    from scim_server.http.rate_limit import ConnectionRateLimit

bp = Blueprint("oauth", __name__, url_prefix="/oauth")

OPERATIONS = {"oauth.issue_token": "oauth.token"}

GRANT_TYPE = "client_credentials"
#: How the client may present its secret (RFC 6749 §2.3.1): HTTP Basic, or the form.
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
#: The one scope an access token has, whatever the client asked for (RFC 6749 §3.3 lets the
#: server choose; the answer says which).
SCOPE = "scim"


class _Client(ClientMixin):  # type: ignore[misc]
    """A connection as authlib sees an OAuth client."""

    def __init__(self, client: oauth.Client) -> None:
        self.client = client
        self.secret: oauth.ClientSecret | None = None

    def get_client_id(self) -> str:
        return self.client.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        draft = current_draft()
        if draft is not None:
            draft.token_prefix = presented_prefix(client_secret)
        self.secret = self.client.secret_matching(client_secret)
        return self.secret is not None

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE

    def get_allowed_scope(self, scope: str) -> str:
        return SCOPE


class _FormPayload(OAuth2Payload):  # type: ignore[misc]
    """The request's form only: RFC 6749 §2.3.1 keeps credentials out of the URL (and a URL
    reaches logs), so the query string is never read."""

    def __init__(self, form: Any) -> None:
        self._form = form

    @property
    def data(self) -> Any:
        return {key: self._form.get(key) for key in self._form}

    @property
    def datalist(self) -> Any:
        return {key: self._form.getlist(key) for key in self._form}


class _TokenRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(method=request.method, uri=request.url, headers=request.headers)
        self.payload = _FormPayload(request.form)

    @property
    def form(self) -> Any:
        return request.form


class _Server(AuthorizationServer):  # type: ignore[misc]
    """authlib's token endpoint logic, for validation and client authentication only."""

    def query_client(self, client_id: str) -> _Client | None:
        found = oauth.find_client(request_session(), client_id)
        draft = current_draft()
        if found is not None and draft is not None:
            # a known client: its failures belong in its organisation's log
            draft.org_id, draft.actor_type, draft.actor = found.org_id, "connection", client_id
        return _Client(found) if found is not None else None

    def save_token(self, token: Any, request: Any) -> None:
        raise NotImplementedError("tokens are issued by services.oauth")

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return _TokenRequest()

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        return Response(json.dumps(body), status=status, headers=headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No listeners: the provisioning log records the request."""


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)


_server = _Server()
_server.register_grant(_ClientCredentials)


def _refused(oauth_request: OAuth2Request | None, error: OAuth2Error) -> Response:
    if error.error == "insecure_transport":
        error.description = (
            "the token endpoint takes client secrets over HTTPS only (plain HTTP from this "
            "machine only); behind a TLS proxy, set SCIM_TRUSTED_PROXY_HOPS so that its "
            "X-Forwarded-Proto is believed"
        )
    if error.error == "invalid_client":
        # authlib answers an unknown client_id of the form 400 and a wrong secret 401; one
        # status for both, so that a probe learns nothing of which client ids exist
        error.status_code = 401
    draft = current_draft()
    if draft is not None:
        draft.operation = "auth.failed"
    note_error(None, f"{error.error}: {error.get_error_description()}")
    return _server.handle_error_response(oauth_request, error)  # type: ignore[no-any-return]


def _issue(
    session: Session, ctx: RequestContext, client: oauth.Client, secret: oauth.ClientSecret
) -> oauth.IssuedToken:
    settings: Settings = current_app.extensions["scim_settings"]
    issued = oauth.issue_access_token(session, client, secret, settings.oauth_token_lifetime)
    ctx.audit.resource_type, ctx.audit.resource_id = "Connection", client.client_id
    ctx.audit.token_prefix = issued.prefix  # of the new token: the log then shows its use
    ctx.audit.changes = {
        "accessToken": [None, issued.prefix],
        "expires": [None, issued.expires_at.isoformat().replace("+00:00", "Z")],
    }
    return issued


def _context(client: oauth.Client) -> RequestContext:
    draft = current_draft()
    principal = Principal(
        org_id=client.org_id,
        org_slug=client.org_slug,
        connection_id=client.client_id,
        scope=CLIENT_SCOPE,
        token_prefix=(draft.token_prefix if draft else None) or "",
        expires_at=None,
        revoked=False,
    )
    return request_context(principal)


@bp.post("/token")
def issue_token() -> Response:
    if request.args:
        return _refused(
            None,
            InvalidRequestError(
                "send the parameters in the form-encoded body, never in the URL "
                "(RFC 6749 section 2.3)"
            ),
        )
    oauth_request: OAuth2Request | None = None
    try:
        oauth_request = _server.create_oauth2_request(None)
        grant = _server.get_token_grant(oauth_request)
        grant.validate_token_request()
    except OAuth2Error as error:
        return _refused(oauth_request, error)
    client: _Client = oauth_request.client
    assert client.secret is not None  # authenticated
    rate_limit: ConnectionRateLimit | None = current_app.extensions.get("scim_rate_limit")
    if rate_limit is not None:  # the connection's requests, the token endpoint's included
        rate_limit.check(client.client.client_id)
    end_request_session()  # the client's read transaction is over; the write opens its own
    database: Database = current_app.extensions["scim_db"]
    issued = perform_write(
        database, _context(client.client), 200, _issue, client.client, client.secret
    )
    settings: Settings = current_app.extensions["scim_settings"]
    body = {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": int(settings.oauth_token_lifetime.total_seconds()),
        "scope": SCOPE,
    }
    return Response(
        json.dumps(body),
        status=200,
        content_type="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
