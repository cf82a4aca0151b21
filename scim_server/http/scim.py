"""The ``/scim/v2`` blueprint (RFC 7644): thin handlers that parse, call a service, render.

Every handler opens exactly one transaction; writes commit only when the whole request succeeded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, current_app, g, request, stream_with_context

from scim_server.audit.events import EventDraft
from scim_server.config import Settings
from scim_server.http.auth import require_principal
from scim_server.http.errors import SCIM_CONTENT_TYPE
from scim_server.http.provisioning_log import current_draft
from scim_server.scim import dialects, discovery
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
from scim_server.scim.schema import Registry, ResourceType
from scim_server.services import groups, search, users
from scim_server.services.context import RequestContext
from scim_server.services.resources import Page
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
    "scim.create_group": "group.create",
    "scim.list_groups": "group.list",
    "scim.search_groups": "group.search",
    "scim.get_group": "group.read",
    "scim.replace_group": "group.replace",
    "scim.patch_group": "group.patch",
    "scim.delete_group": "group.delete",
    "scim.bulk_not_built": "bulk.unsupported",
    "scim.me_not_built": "me.unsupported",
}

#: Resource types with working endpoints; discovery lists only these.
SERVED_RESOURCE_TYPES: tuple[str, ...] = ("User", "Group")

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


def resource_body() -> Any:
    """A POST/PUT body, with the IdP dialects' known deviations normalised (DESIGN §4.1)."""
    return dialects.normalise_resource(_resource_type(), json_body())


def patch_request() -> Any:
    """A PatchOp body, with the IdP dialects' known deviations normalised (DESIGN §4.1)."""
    return dialects.normalise_patch(_resource_type(), json_body())


def _list_response(page: Page) -> Response:
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


def _resource_type() -> ResourceType:
    """The resource type an endpoint serves (discovery endpoints serve none)."""
    endpoint = request.endpoint or ""
    name = "Group" if "group" in endpoint else "User"
    return _registry().resource_type(name)


def _projection() -> Projection:
    """``attributes``/``excludedAttributes`` of this request, parsed once."""
    projection: Projection | None = g.get("scim_projection")
    if projection is None:
        projection = parse_projection(
            _resource_type(),
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
    body = resource_body()
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
    """RFC 7644 §3.4.3 search across every served resource type."""
    body = json_body()
    query: ListQuery = parse_search_request(body, _limits())
    _describe_search(query, body.get("filter"))
    return _list_response(_read(search.search_all, query))


@bp.get("/Users/<user_id>")
def get_user(user_id: str) -> Response:
    rendered: users.Rendered = _read(users.get_user, user_id)
    if _not_modified(rendered.etag):
        return scim_response(None, 304, {"ETag": rendered.etag})
    return _resource_response(rendered)


def _not_modified(etag: str) -> bool:
    """``If-None-Match`` (RFC 9110 §13.1.2) names the current version."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag.removeprefix("W/") in tags


@bp.put("/Users/<user_id>")
def replace_user(user_id: str) -> Response:
    body = resource_body()
    if_match = request.headers.get("If-Match")
    return _resource_response(_write(200, users.replace_user, user_id, body, if_match))


@bp.patch("/Users/<user_id>")
def patch_user(user_id: str) -> Response:
    body = patch_request()
    if_match = request.headers.get("If-Match")
    return _resource_response(_write(200, users.patch_user, user_id, body, if_match))


@bp.delete("/Users/<user_id>")
def delete_user(user_id: str) -> Response:
    _write(204, users.delete_user, user_id, request.headers.get("If-Match"))
    return scim_response(None, 204)


# -- not built -----------------------------------------------------------------------------


# -- groups --------------------------------------------------------------------------------


def _group_response(
    rendered: groups.RenderedGroup, status: int = 200, *, location: bool = False
) -> Response:
    """The group, its members streamed from the database when the projection returns them."""
    ctx = _ctx()
    rt = groups.group_type(ctx)
    projection = _projection()
    head = apply_projection(rt, rendered.document, projection)
    headers = {"ETag": rendered.etag}
    if location:
        headers["Location"] = rendered.document["meta"]["location"]
    keys = groups.member_projector(ctx, projection)
    if keys is None:
        return scim_response(head, status, headers)
    members = groups.member_json_chunks(_db(), ctx, rendered.pk, keys)
    head_text = json.dumps(head, separators=(",", ":"))

    def body() -> Iterator[str]:
        first = next(members, None)
        if first is None:  # no members: the attribute is unassigned (RFC 7643 §2.5)
            yield head_text
            return
        yield f'{head_text[:-1]},"members":[{first}'
        for piece in members:  # several member elements each
            yield f",{piece}"
        yield "]}"

    response = Response(stream_with_context(body()), status=status, content_type=SCIM_CONTENT_TYPE)
    for name, value in headers.items():
        response.headers[name] = value
    return response


@bp.post("/Groups")
def create_group() -> Response:
    body = resource_body()
    return _group_response(_write(201, groups.create_group, body), 201, location=True)


@bp.get("/Groups")
def list_groups() -> Response:
    query = parse_list_query(request.args, _limits())
    _describe_search(query, request.args.get("filter"))
    return _list_response(_read(groups.list_groups, query))


@bp.post("/Groups/.search")
def search_groups() -> Response:
    body = json_body()
    query = parse_search_request(body, _limits())
    _describe_search(query, body.get("filter"))
    return _list_response(_read(groups.list_groups, query))


@bp.get("/Groups/<group_id>")
def get_group(group_id: str) -> Response:
    rendered: groups.RenderedGroup = _read(groups.get_group, group_id)
    if _not_modified(rendered.etag):
        return scim_response(None, 304, {"ETag": rendered.etag})
    return _group_response(rendered)


@bp.put("/Groups/<group_id>")
def replace_group(group_id: str) -> Response:
    body = resource_body()
    if_match = request.headers.get("If-Match")
    return _group_response(_write(200, groups.replace_group, group_id, body, if_match))


@bp.patch("/Groups/<group_id>")
def patch_group(group_id: str) -> Response:
    """204 unless the client asks for attributes (RFC 7644 §3.5.2): a membership PATCH on a
    10,000-member group must not answer with 10,000 members."""
    body = patch_request()
    if_match = request.headers.get("If-Match")
    wants_body = "attributes" in request.args or "excludedAttributes" in request.args
    rendered = _write(200 if wants_body else 204, groups.patch_group, group_id, body, if_match)
    if wants_body:
        return _group_response(rendered)
    return scim_response(None, 204, {"ETag": rendered.etag})


@bp.delete("/Groups/<group_id>")
def delete_group(group_id: str) -> Response:
    _write(204, groups.delete_group, group_id, request.headers.get("If-Match"))
    return scim_response(None, 204)


@bp.route("/Bulk", methods=["POST"])
def bulk_not_built() -> Response:
    raise NotImplementedFeature(
        "bulk operations are not supported (ServiceProviderConfig bulk.supported is false)"
    )


@bp.route("/Me", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def me_not_built() -> Response:
    raise NotImplementedFeature("/Me is not supported: tokens belong to IdP connections")
