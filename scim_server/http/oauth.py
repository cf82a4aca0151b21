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

import ipaddress
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InsecureTransportError,
    InvalidClientError,
    InvalidRequestError,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Blueprint, Response, current_app, request
from sqlalchemy.orm import Session

from scim_server.config import Settings
from scim_server.http.auth import REALM
from scim_server.http.context import request_context
from scim_server.http.errors import SCIM_CONTENT_TYPE
from scim_server.http.provisioning_log import current_draft, note_error
from scim_server.http.request_db import end_request_session, request_session
from scim_server.scim.discovery import TOKEN_PATH
from scim_server.services import oauth
from scim_server.services.context import RequestContext
from scim_server.services.tokens import CLIENT_SCOPE, Principal
from scim_server.services.transaction import perform_write
from scim_server.store.db import Database
from scim_server.store.types import utcnow

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
        self.secret = self.client.secret_matching(client_secret)
        draft = current_draft()
        if draft is not None:
            draft.token_prefix = (
                self.secret.prefix
                if self.secret is not None
                else oauth.refused_secret_prefix(request_session(), self.client, client_secret)
            )
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
        # authlib refuses a plain-HTTP URI unless its host is "localhost" or a loopback address,
        # which the client's Host header decides; _transport_refusal has already decided by
        # the connection instead, so authlib is given the URI as HTTPS
        uri = "https://" + request.url.partition("://")[2]
        super().__init__(method=request.method, uri=uri, headers=request.headers)
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


#: Parameters that belong in the body only (RFC 6749 §2.3.1, §3.2): a URL reaches logs.
_BODY_ONLY = ("grant_type", "client_id", "client_secret", "scope")
#: What every failed client authentication answers, whatever failed: a probe learns nothing
#: of which client ids exist or have a secret (the log keeps authlib's reason).
_CLIENT_FAILED = "client authentication failed"
_BASIC_CHALLENGE = f'Basic realm="{REALM}", error="invalid_client"'


#: Headers a proxy adds: a request that carries one came through a proxy, and from a proxy
#: this server was not told to trust (``SCIM_TRUSTED_PROXY_HOPS``) plain HTTP is refused.
_PROXY_HEADERS = ("forwarded", "via", "x-real-ip")


def _from_this_machine() -> bool:
    """The peer is a loopback address (IPv4-mapped too: a dual-stack socket reports
    ``::ffff:127.0.0.1``) and no proxy says it relays someone else."""
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    if not (mapped or address).is_loopback:
        return False
    return not any(
        name.lower().startswith("x-forwarded-") or name.lower() in _PROXY_HEADERS
        for name, _ in request.headers.items()
    )


def _transport_refusal() -> OAuth2Error | None:
    """Secrets travel over HTTPS, or in plain HTTP from this very machine (the quick start).

    Decided by the connection, not by the Host header: HTTPS as the request arrived (or as a
    trusted proxy says: ProxyFix, ``SCIM_TRUSTED_PROXY_HOPS``, is the only judge of that;
    ``deploy/gunicorn.conf.py`` turns gunicorn's own trust of local proxies off), or a
    loopback peer that is not a proxy. A local proxy that adds no header at all cannot be told
    from a local client: it must not serve plain HTTP to others."""
    if request.scheme == "https" or _from_this_machine():
        return None
    return InsecureTransportError(
        description="the token endpoint takes client secrets over HTTPS only (plain HTTP from "
        "this machine only); behind a TLS proxy, set SCIM_TRUSTED_PROXY_HOPS so that its "
        "X-Forwarded-Proto is believed"
    )


class _MalformedBasic(Exception):
    """An ``Authorization: Basic`` header that does not decode (not base64, not UTF-8)."""


_BASIC = re.compile(r"[Bb][Aa][Ss][Ii][Cc] +[A-Za-z0-9._~+/-]+=* *")


def _basic_credentials() -> tuple[str | None, str | None] | None:
    """The id and secret of an ``Authorization: Basic`` header; None without one."""
    header = request.headers.get("Authorization", "")
    scheme = header.split(None, 1)
    if not scheme or scheme[0].lower() != "basic":
        return None
    if not _BASIC.fullmatch(header):  # RFC 7617: "Basic" SP token68, nothing after it
        raise _MalformedBasic("the Basic credentials are not one token68")
    try:
        client_id, secret = extract_basic_authorization(request.headers)
    except ValueError as error:  # UnicodeDecodeError, or "Basic" and nothing after it
        raise _MalformedBasic(str(error)) from None
    return client_id, secret


def _parameter_name(name: str) -> str:
    """A parameter's name as an error description may quote it: one of the protocol's own. Any
    other name is the client's text, which may be anything, a secret included (the answer and
    the log would then keep it)."""
    return name if name in _BODY_ONLY else "a parameter"


def _request_refusal() -> OAuth2Error | None:
    """What RFC 6749 refuses before any client is looked up: credentials in the URL, a body
    that is not a form, a repeated parameter, no grant type, two different credentials."""
    in_url = [name for name in _BODY_ONLY if name in request.args]
    if in_url:
        return InvalidRequestError(
            f"{in_url[0]} belongs in the form-encoded body, never in the URL (RFC 6749 section 2.3)"
        )
    if request.mimetype != "application/x-www-form-urlencoded":
        return InvalidRequestError(
            "the body must be application/x-www-form-urlencoded (RFC 6749 section 4.4.2)"
        )
    try:  # cached: the form is then parsed from the same bytes
        request.get_data(cache=True).decode("utf-8")
    except UnicodeDecodeError:  # werkzeug would drop the whole form: "grant_type is missing"
        return InvalidRequestError(
            "the form body is not UTF-8 (RFC 6749 Appendix B: application/x-www-form-urlencoded "
            "in UTF-8)"
        )
    repeated = [name for name in request.form if len(request.form.getlist(name)) > 1]
    if repeated:
        return InvalidRequestError(
            f"{_parameter_name(repeated[0])} is repeated (RFC 6749 section 3.2)"
        )
    if not request.form.get("grant_type"):
        return InvalidRequestError("grant_type is missing: send grant_type=client_credentials")
    try:
        basic = _basic_credentials()
    except _MalformedBasic:
        return InvalidClientError(description="the Basic credentials do not decode")
    if basic is not None:
        # one client, authenticated once (section 2.3); a client that repeats its credentials
        # in the body is let through, one whose two sets differ is not (authlib would accept
        # whichever of them is right)
        in_body = (
            request.form.get("client_id", basic[0]),
            request.form.get("client_secret", basic[1]),
        )
        if in_body != basic:
            return InvalidRequestError(
                "authenticate once: the client_id and client_secret of the body differ from "
                "those of HTTP Basic (RFC 6749 section 2.3)"
            )
    return None


def _attribute_to_named_client() -> None:
    """A request refused before its client was authenticated still names a client id (in the
    form or in HTTP Basic): if it is one of an organisation's connections, the refusal belongs
    in that organisation's log, where its admin looks (a proxy that is not trusted yet, a
    wrong grant type). The answer does not depend on it."""
    draft = current_draft()
    if draft is None or draft.actor_type != "anonymous":
        return
    try:
        basic = _basic_credentials()
    except _MalformedBasic:
        basic = None
    named = request.form.get("client_id") or _client_id_of_undecodable_form()
    named = named or (basic[0] if basic else None)
    found = oauth.find_client(request_session(), named) if named else None
    if found is not None:
        draft.org_id, draft.actor_type, draft.actor = found.org_id, "connection", found.client_id


def _client_id_of_undecodable_form() -> str | None:
    """The client_id of a form werkzeug dropped for a byte that is not UTF-8 (the request is
    refused for it): read with the bad bytes replaced, only to find whose log it belongs in."""
    if request.mimetype != "application/x-www-form-urlencoded" or request.form:
        return None  # a body of another type names no client
    raw = request.get_data(cache=True)
    values = parse_qs(raw.decode("utf-8", "replace")).get("client_id", [])
    return values[0] if len(values) == 1 else None


def _refused(oauth_request: OAuth2Request | None, error: OAuth2Error) -> Response:
    draft = current_draft()
    if draft is not None:
        draft.operation = "auth.failed"
    if error.error == "unsupported_grant_type":
        # authlib's description repeats the client's value, which the log would then keep
        error = OAuth2Error(
            error="unsupported_grant_type",
            description="only grant_type=client_credentials is supported",
            status_code=400,
        )
    # a failed authentication of a known client is attributed already; one refused before it
    # (no secret, an empty one: authlib answers invalid_client without looking the client up)
    # is attributed here, like any other refusal naming a client
    _attribute_to_named_client()
    note_error(None, f"{error.error}: {error.get_error_description()}")
    if error.error == "invalid_client":
        error.status_code = 401  # authlib answers an unknown client_id of the form 400
        error.description = _CLIENT_FAILED
    response: Response = _server.handle_error_response(oauth_request, error)
    if error.error == "invalid_client":
        response.headers["WWW-Authenticate"] = _BASIC_CHALLENGE  # RFC 7617 wants a realm
    return response


def _issue(
    session: Session, ctx: RequestContext, client: oauth.Client, secret: oauth.ClientSecret
) -> oauth.IssuedToken:
    settings: Settings = current_app.extensions["scim_settings"]
    issued = oauth.issue_access_token(session, client, secret, settings.oauth_token_lifetime)
    ctx.audit.resource_type, ctx.audit.resource_id = "Connection", client.client_id
    ctx.audit.token_prefix = issued.prefix  # of the new token: the log then shows its use
    ctx.audit.changes = {
        "clientSecret": secret.prefix,  # during a rotation's overlap: which one the IdP uses
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


#: The RFC 6749 §5.2 error code of an answer this module did not word itself (routing, the
#: rate limit, a database outage), by status; anything else 4xx is invalid_request.
_OAUTH_ERROR_OF_STATUS = {429: "temporarily_unavailable", 503: "temporarily_unavailable"}


@bp.after_app_request
def _errors_as_oauth(response: Response) -> Response:
    """An OAuth client reads ``error`` from a token endpoint's failure: the SCIM-shaped errors
    of the app's own handlers (405, 413, 429, 500, 503) are reworded here, status and headers
    (``Retry-After``, ``Allow``) kept."""
    if not request.path.startswith(TOKEN_PATH) or response.mimetype != SCIM_CONTENT_TYPE:
        return response
    detail = str((response.get_json(silent=True) or {}).get("detail", ""))
    status = response.status_code
    code = _OAUTH_ERROR_OF_STATUS.get(status) or (
        "server_error" if status >= 500 else "invalid_request"
    )
    # RFC 6749 §5.2 allows printable ASCII but the double quote and the backslash
    allowed = "".join(c for c in detail if " " <= c <= "~" and c not in '"\\')
    response.set_data(json.dumps({"error": code, "error_description": allowed}))
    response.mimetype = "application/json"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/token")
def issue_token() -> Response:
    refusal = _transport_refusal() or _request_refusal()
    if refusal is not None:
        return _refused(None, refusal)
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
    try:
        issued = perform_write(
            database, _context(client.client), 200, _issue, client.client, client.secret
        )
    except oauth.SecretEnded as ended:  # revoked or rotated since it was checked
        return _refused(None, InvalidClientError(description=str(ended)))
    body = {
        "access_token": issued.token,
        "token_type": "Bearer",
        # the lifetime, or less when the secret ends sooner (a rotation's overlap)
        "expires_in": max(1, round((issued.expires_at - utcnow()).total_seconds())),
        "scope": SCOPE,
    }
    return Response(
        json.dumps(body),
        status=200,
        content_type="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
