"""The ``/scim/v2`` blueprint (RFC 7644): thin handlers that parse, call a service, render.

Every handler opens exactly one transaction; writes commit only when the whole request succeeded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from scim_server.audit.events import EventDraft
from scim_server.config import Settings
from scim_server.http.auth import require_principal
from scim_server.http.errors import SCIM_CONTENT_TYPE
from scim_server.http.provisioning_log import current_draft
from scim_server.scim import discovery
from scim_server.scim.errors import (
    InvalidSyntax,
    NotFound,
    NotImplementedFeature,
    UnsupportedMediaType,
)
from scim_server.scim.listing import (
    LIST_RESPONSE,
    Limits,
    ListQuery,
    parse_list_query,
    parse_search_request,
)
from scim_server.scim.projection import Projection, apply_projection, parse_projection
from scim_server.scim.schema import Registry
from scim_server.services import users
from scim_server.services.context import RequestContext
from scim_server.services.transaction import perform, perform_write
from scim_server.store.db import Database

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")

#: The provisioning-log operation of each endpoint (DESIGN §6).
OPERATIONS = {
    "scim.service_provider_config": "discovery.read",
    "scim.schemas": "discovery.read",
    "scim.schema": "discovery.read",
    "scim.resource_types": "discovery.read",
    "scim.resource_type": "discovery.read",
    "scim.create_user": "user.create",
    "scim.list_users": "user.list",
    "scim.search_users": "user.search",
    "scim.search_root": "search",
    "scim.get_user": "user.read",
    "scim.replace_user": "user.replace",
    "scim.patch_user": "user.patch",
    "scim.delete_user": "user.delete",
    "scim.groups_not_built": "group.unsupported",
    "scim.bulk_not_built": "bulk.unsupported",
    "scim.me_not_built": "me.unsupported",
}

#: Resource types with working endpoints; discovery lists only these.
SERVED_RESOURCE_TYPES: tuple[str, ...] = ("User",)

_JSON_TYPES = {"application/scim+json", "application/json"}


# -- plumbing ------------------------------------------------------------------------------


def _settings() -> Settings:
    settings: Settings = current_app.extensions["scim_settings"]
    return settings


def _registry() -> Registry:
    registry: Registry = current_app.extensions["scim_registry"]
    return registry


def _db() -> Database:
    database: Database = current_app.extensions["scim_db"]
    return database


def _base_url() -> str:
    configured = _settings().base_url
    if configured:
        return configured.rstrip("/")
    return request.host_url.rstrip("/") + bp.url_prefix  # type: ignore[operator]


def _limits() -> Limits:
    settings = _settings()
    return Limits(
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
        max_filter_length=settings.max_filter_length,
    )


def _ctx() -> RequestContext:
    """Authenticate once per request and build the services' view of it."""
    ctx: RequestContext | None = g.get("scim_context")
    if ctx is None:
        ctx = RequestContext(
            principal=require_principal("scim"),
            registry=_registry(),
            base_url=_base_url(),
            limits=_limits(),
            audit=current_draft() or EventDraft(operation=str(request.endpoint)),
        )
        g.scim_context = ctx
    return ctx


def scim_response(
    body: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    payload = "" if body is None else json.dumps(body, separators=(",", ":"))
    response = Response(payload, status=status, content_type=SCIM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def json_body() -> Any:
    """The request body as JSON; media types RFC 7644 §3.1 and IdPs actually send are accepted."""
    mimetype = request.mimetype
    if mimetype and mimetype not in _JSON_TYPES:
        raise UnsupportedMediaType(
            f'Content-Type "{mimetype}" is not supported; send application/scim+json'
        )
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise InvalidSyntax("the request body is empty; a JSON object is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidSyntax(f"the request body is not valid JSON: {error}") from None


def _list_response(page: users.Page) -> Response:
    return scim_response(
        {
            "schemas": [LIST_RESPONSE],
            "totalResults": page.total,
            "startIndex": page.start_index,
            "itemsPerPage": len(page.resources),
            "Resources": page.resources,
        }
    )


def _resource_response(
    rendered: users.Rendered, status: int = 200, *, location: bool = False
) -> Response:
    document = apply_projection(users.user_type(_ctx()), rendered.document, _projection())
    headers = {"ETag": rendered.etag}
    if location:
        headers["Location"] = rendered.document["meta"]["location"]
    return scim_response(document, status, headers)


_DISCOVERY_ENDPOINTS = frozenset(
    {
        "scim.service_provider_config",
        "scim.schemas",
        "scim.schema",
        "scim.resource_types",
        "scim.resource_type",
    }
)


def _projection() -> Projection:
    """``attributes``/``excludedAttributes`` of this request, parsed once."""
    projection: Projection | None = g.get("scim_projection")
    if projection is None:
        projection = parse_projection(
            users.user_type(_ctx()),
            request.args.get("attributes"),
            request.args.get("excludedAttributes"),
        )
        g.scim_projection = projection
    return projection


@bp.before_request
def _authenticate() -> None:
    """Every endpoint needs a SCIM token (before its body is read), discovery unless configured.

    Query parameters that shape the response are checked here too, before any write: a bad
    ``attributes`` on a POST must not answer 400 after the user was created.
    """
    if request.endpoint in _DISCOVERY_ENDPOINTS and _settings().public_discovery:
        return
    _ctx()
    if request.endpoint not in _DISCOVERY_ENDPOINTS:
        _projection()


# -- discovery -----------------------------------------------------------------------------


@bp.get("/ServiceProviderConfig")
def service_provider_config() -> Response:
    return scim_response(
        discovery.service_provider_config(_base_url(), max_results=_settings().max_page_size)
    )


def _discovery_list(resources: list[dict[str, Any]]) -> Response:
    return scim_response(
        {
            "schemas": [LIST_RESPONSE],
            "totalResults": len(resources),
            "startIndex": 1,
            "itemsPerPage": len(resources),
            "Resources": resources,
        }
    )


@bp.get("/Schemas")
def schemas() -> Response:
    return _discovery_list(
        discovery.schema_documents(_registry(), _base_url(), SERVED_RESOURCE_TYPES)
    )


@bp.get("/Schemas/<path:schema_id>")
def schema(schema_id: str) -> Response:
    for doc in discovery.schema_documents(_registry(), _base_url(), SERVED_RESOURCE_TYPES):
        if doc["id"].lower() == schema_id.lower():
            return scim_response(doc)
    raise NotFound(f'Schema "{schema_id}" not found')


@bp.get("/ResourceTypes")
def resource_types() -> Response:
    return _discovery_list(
        discovery.resource_type_documents(_registry(), _base_url(), SERVED_RESOURCE_TYPES)
    )


@bp.get("/ResourceTypes/<name>")
def resource_type(name: str) -> Response:
    for doc in discovery.resource_type_documents(_registry(), _base_url(), SERVED_RESOURCE_TYPES):
        if doc["id"].lower() == name.lower() or doc["name"].lower() == name.lower():
            return scim_response(doc)
    raise NotFound(f'ResourceType "{name}" not found')


# -- users ---------------------------------------------------------------------------------


def _read(action: Callable[..., Any], *args: Any) -> Any:
    return perform(_db(), _ctx(), action, *args)


def _write(status: int, action: Callable[..., Any], *args: Any) -> Any:
    return perform_write(_db(), _ctx(), status, action, *args)


def _describe_search(query: ListQuery, filter_text: Any) -> None:
    """Auditors want to know who looked up whom: the filter goes into the event."""
    if filter_text:
        _ctx().audit.detail = f"filter: {filter_text}"


@bp.post("/Users")
def create_user() -> Response:
    body = json_body()
    return _resource_response(_write(201, users.create_user, body), 201, location=True)


@bp.get("/Users")
def list_users() -> Response:
    query = parse_list_query(request.args, _limits())
    _describe_search(query, request.args.get("filter"))
    return _list_response(_read(users.list_users, query))


@bp.post("/Users/.search")
def search_users() -> Response:
    body = json_body()
    query = parse_search_request(body, _limits())
    _describe_search(query, body.get("filter"))
    return _list_response(_read(users.list_users, query))


@bp.post("/.search")
def search_root() -> Response:
    """RFC 7644 §3.4.3 search across resource types; only Users are served so far."""
    body = json_body()
    query: ListQuery = parse_search_request(body, _limits())
    _describe_search(query, body.get("filter"))
    return _list_response(_read(users.list_users, query))


@bp.get("/Users/<user_id>")
def get_user(user_id: str) -> Response:
    rendered: users.Rendered = _read(users.get_user, user_id)
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        if "*" in tags or rendered.etag.removeprefix("W/") in tags:
            return scim_response(None, 304, {"ETag": rendered.etag})
    return _resource_response(rendered)


@bp.put("/Users/<user_id>")
def replace_user(user_id: str) -> Response:
    body = json_body()
    if_match = request.headers.get("If-Match")
    return _resource_response(_write(200, users.replace_user, user_id, body, if_match))


@bp.patch("/Users/<user_id>")
def patch_user(user_id: str) -> Response:
    body = json_body()
    if_match = request.headers.get("If-Match")
    return _resource_response(_write(200, users.patch_user, user_id, body, if_match))


@bp.delete("/Users/<user_id>")
def delete_user(user_id: str) -> Response:
    _write(204, users.delete_user, user_id, request.headers.get("If-Match"))
    return scim_response(None, 204)


# -- not built -----------------------------------------------------------------------------


@bp.route("/Groups", methods=["GET", "POST"])
@bp.route("/Groups/<path:_rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def groups_not_built(_rest: str = "") -> Response:
    raise NotImplementedFeature("the Group resource type is not supported by this server yet")


@bp.route("/Bulk", methods=["POST"])
def bulk_not_built() -> Response:
    raise NotImplementedFeature(
        "bulk operations are not supported (ServiceProviderConfig bulk.supported is false)"
    )


@bp.route("/Me", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def me_not_built() -> Response:
    raise NotImplementedFeature("/Me is not supported: tokens belong to IdP connections")
