"""The ``/scim/v2`` blueprint (RFC 7644): thin handlers that parse, call a service, render.

A read runs in the request's read transaction, the one its token was looked up in
(``http.request_db``); a write ends that and runs in one write transaction, which commits only
when the whole request succeeded.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, g, request, stream_with_context
from werkzeug.exceptions import MethodNotAllowed, RequestEntityTooLarge

from scim_server.audit.events import EventDraft
from scim_server.config import Settings
from scim_server.http.auth import require_principal
from scim_server.http.errors import SCIM_CONTENT_TYPE
from scim_server.http.provisioning_log import current_draft
from scim_server.http.request_db import end_request_session, request_session
from scim_server.scim import bulk as bulk_protocol
from scim_server.scim import discovery
from scim_server.scim.cursor import CursorSettings
from scim_server.scim.errors import (
    Forbidden,
    InvalidSyntax,
    InvalidValue,
    NotFound,
    NotImplementedFeature,
    PayloadTooLarge,
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
from scim_server.scim.wire import compact_json, escaped, unstorable, unstorable_named
from scim_server.services import bulk as bulk_service
from scim_server.services import groups, search, users
from scim_server.services.context import RequestContext
from scim_server.services.resources import Page
from scim_server.services.transaction import perform_write
from scim_server.services.writes import WRITES
from scim_server.store.db import Database

if TYPE_CHECKING:  # the limiter (and the `limits` library) is loaded only when configured
    from scim_server.http.rate_limit import ConnectionRateLimit

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")

#: The provisioning-log operation of each endpoint (DESIGN §6); writes are named by the table
#: /Bulk dispatches through too (``services.writes``).
OPERATIONS = {
    "scim.service_provider_config": "discovery.read",
    "scim.schemas": "discovery.read",
    "scim.schema": "discovery.read",
    "scim.resource_types": "discovery.read",
    "scim.resource_type": "discovery.read",
    "scim.create_user": WRITES["User", "POST"].operation,
    "scim.list_users": "user.list",
    "scim.search_users": "user.search",
    "scim.search_root": "search",
    "scim.get_user": "user.read",
    "scim.replace_user": WRITES["User", "PUT"].operation,
    "scim.patch_user": WRITES["User", "PATCH"].operation,
    "scim.delete_user": WRITES["User", "DELETE"].operation,
    "scim.create_group": WRITES["Group", "POST"].operation,
    "scim.list_groups": "group.list",
    "scim.search_groups": "group.search",
    "scim.get_group": "group.read",
    "scim.replace_group": WRITES["Group", "PUT"].operation,
    "scim.patch_group": WRITES["Group", "PATCH"].operation,
    "scim.delete_group": WRITES["Group", "DELETE"].operation,
    "scim.bulk": "bulk",
    "scim.me_not_built": "me.unsupported",
}

#: Resource types with working endpoints; discovery lists only these.
SERVED_RESOURCE_TYPES: tuple[str, ...] = ("User", "Group")

_JSON_TYPES = {"application/scim+json", "application/json"}

#: Deepest nesting of arrays and objects a request body may have. A SCIM message needs fewer
#: than ten levels (a PATCH inside /Bulk: about eight); the limit is far from Python's recursion
#: limit, which the JSON decoder and every recursive walk over the document would otherwise hit.
MAX_JSON_DEPTH = 64


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


def _cursors() -> CursorSettings:
    cursors: CursorSettings = current_app.extensions["scim_cursors"]
    return cursors


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
            cursors=_cursors(),
        )
        g.scim_context = ctx
    return ctx


def scim_response(
    body: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    payload = "" if body is None else compact_json(body)
    response = Response(payload, status=status, content_type=SCIM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def json_body(limit: int | None = None, too_large: Exception | None = None) -> Any:
    """The request body as JSON; media types RFC 7644 §3.1 and IdPs actually send are accepted.

    The body is read under ``limit`` (default ``SCIM_MAX_BODY_BYTES``), over which ``too_large``
    is raised (default: the general 413)."""
    mimetype = request.mimetype
    if mimetype and mimetype not in _JSON_TYPES:
        raise UnsupportedMediaType(
            f'Content-Type "{mimetype}" is not supported; send application/scim+json'
        )
    raw = _limited_body(
        _settings().max_body_bytes if limit is None else limit,
        RequestEntityTooLarge() if too_large is None else too_large,
    )
    if not raw.strip():
        raise InvalidSyntax("the request body is empty; a JSON object is required")
    too_deep = InvalidSyntax(
        f"the request body nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects"
    )
    text = _decoded(raw)
    try:
        body = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise too_deep from None
    except _NotJson as error:
        raise InvalidSyntax(f"the request body is not valid JSON: {error}") from None
    except ValueError as error:
        detail = str(error)
        if "integer string conversion" in detail:  # Python's own limit, in Python's words
            detail = f"a number has more than {sys.get_int_max_str_digits()} digits"
        raise InvalidSyntax(f"the request body is not valid JSON: {detail}") from None
    if _depth(body) > MAX_JSON_DEPTH:
        raise too_deep
    if "\\u" in text:  # only an escape makes NUL or a surrogate: strictly decoded text has none
        _refuse_unstorable(body)
    return body


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity``: Python's decoder reads them, JSON has none
    (RFC 8259 §6), and no database stores them in a document."""
    raise _NotJson(f"{name} is not a JSON number (RFC 8259 §6)")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one past what a float holds (``1e400``) is
    refused rather than read as infinity."""
    value = float(text)
    if math.isinf(value):
        raise _NotJson(f"the number {text[:40]} is too large")
    return value


def _decoded(raw: bytes) -> str:
    """The body as text, decoded strictly: 400 ``invalidSyntax`` for bytes that are no text.

    The encoding is the one ``json.loads`` would detect from bytes: UTF-8, a UTF-8 byte order
    mark skipped (RFC 8259 §8.1 lets a parser ignore it), or UTF-16/UTF-32 told by their zero
    bytes (RFC 7159 §8.1, which RFC 7644 cites, allowed them): what the server read before, it
    still reads. But ``json.loads`` decodes bytes with ``surrogatepass``, which lets ``ED A0 80``
    (U+D800 written as UTF-8 never writes it, RFC 3629 §3) through as half a surrogate pair, to
    fail in the database as a 500; a strict decode refuses it, as it refuses any other byte
    sequence that is no text. Decoding once here instead of in ``json.loads`` costs nothing more
    on a good body: it is the same one pass."""
    encoding = json.detect_encoding(raw)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        name = "UTF-8" if encoding.startswith("utf-8") else encoding.upper()
        # utf-8-sig decodes the bytes after the byte order mark: the offset counts from the start
        raise InvalidSyntax(
            f"the request body is not valid {name} (RFC 8259 §8.1: JSON text is UTF-8): "
            f"{error.reason} at byte {error.start + len(raw) - len(error.object)}"
        ) from None


def _refuse_unstorable(body: Any) -> None:
    """400 for a string (``invalidValue``, as validation refuses NUL) or a member name
    (``invalidSyntax``) holding what no database stores (``scim.wire.unstorable``), naming
    where it is.

    A string is not quoted: this runs before any schema is looked at, so it cannot tell a
    password (or any secret an extension holds) from a display name, and secrets never reach
    an answer or an event (DESIGN §7). Member names are attribute names, quoted."""
    stack: list[tuple[Any, str]] = [(body, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            found = unstorable(value)
            if found is not None:
                raise InvalidValue(
                    f"the request body's {where or 'value'} (a string of {len(value)} "
                    f"characters, not shown) holds {unstorable_named(found)}"
                )
        elif isinstance(value, dict):
            for key, child in value.items():
                found = unstorable(key)
                if found is not None:
                    raise InvalidSyntax(
                        f"the request body's member name {escaped(key)} holds "
                        f"{unstorable_named(found)}"
                    )
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(value, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(value))


def optional_json_body() -> Any:
    """The JSON body, or None when the request has none (with or without Content-Length: a
    chunked body has no length, and must not be taken for no body)."""
    raw = _limited_body(_settings().max_body_bytes, RequestEntityTooLarge())
    return json_body() if raw.strip() else None


def _limited_body(limit: int, too_large: Exception) -> bytes:
    """The body, or ``too_large`` if it has more than ``limit`` bytes, with or without a
    Content-Length. A chunked body is read up to one byte past the limit: werkzeug returns a
    stream cut at its maximum without complaint (a truncated body would be a misleading 400
    "not valid JSON"), so the extra byte tells."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    request.max_content_length = limit + 1
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(raw) > limit:
        raise too_large
    return raw


def _depth(document: Any) -> int:
    """How deeply arrays and objects nest in ``document`` (iterative: no recursion limit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _body_as(resource_type: str, method: str) -> Any:
    """A POST/PUT/PATCH body, with the IdP dialects' known deviations normalised (DESIGN §4.1)
    as the write table says, for single requests and /Bulk alike."""
    normalise = WRITES[resource_type, method].normalise
    assert normalise is not None
    return normalise(_registry().resource_type(resource_type), json_body())


def _list_response(page: Page) -> Response:
    """A ListResponse; a cursor page (RFC 9865 §2) has no ``startIndex``, ``totalResults`` only
    on its first page, and ``nextCursor`` on every page but the last."""
    body: dict[str, Any] = {"schemas": [LIST_RESPONSE]}
    if page.total is not None:
        body["totalResults"] = page.total
    if page.start_index is not None:
        body["startIndex"] = page.start_index
    body["itemsPerPage"] = len(page.resources)
    if page.next_cursor is not None:
        body["nextCursor"] = page.next_cursor
    body["Resources"] = page.resources
    return scim_response(body)


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
    args = request.view_args or {}
    if ".search" in (args.get("user_id"), args.get("group_id")):
        # /Users/.search is the search endpoint (POST only), never a resource id; routing
        # sends its other methods to the resource routes (as /.search's GET is a 405 too)
        raise MethodNotAllowed(valid_methods=["POST"])
    if request.endpoint in _DISCOVERY_ENDPOINTS and _settings().public_discovery:
        return
    ctx = _ctx()
    if request.method != "GET":
        # a body may still be on its way (a slow IdP, a large /Bulk): no transaction stays open
        # while it uploads; a search opens a new read transaction when it runs
        end_request_session()
    rate_limit: ConnectionRateLimit | None = current_app.extensions.get("scim_rate_limit")
    if rate_limit is not None and ctx.principal.connection_id:
        rate_limit.check(ctx.principal.connection_id)
    if request.endpoint not in _DISCOVERY_ENDPOINTS:
        _projection()


@bp.before_request
def _refuse_filtered_discovery() -> None:
    """RFC 7644 §4: a discovery endpoint answers everything it has, so a client's ``filter``
    would be silently ignored and its conditions taken for true; the RFC says to answer 403.
    Runs after authentication (registered after it)."""
    if request.endpoint in _DISCOVERY_ENDPOINTS and "filter" in request.args:
        raise Forbidden(
            'discovery endpoints take no "filter": they answer every schema, resource type '
            "and setting they have (RFC 7644 §4)"
        )


# -- discovery -----------------------------------------------------------------------------


@bp.get("/ServiceProviderConfig")
def service_provider_config() -> Response:
    settings = _settings()
    return scim_response(
        discovery.service_provider_config(
            _base_url(),
            max_results=settings.max_page_size,
            default_page_size=settings.default_page_size,
            cursor_timeout=_cursors().timeout_seconds,
            bulk_max_operations=settings.bulk_max_operations,
            bulk_max_payload_bytes=settings.bulk_max_payload_bytes,
        )
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
    return action(request_session(), _ctx(), *args)


def _write_as(resource_type: str, method: str, *args: Any, status: int | None = None) -> Any:
    """Run the write use case of (resource type, method) from ``services.writes``."""
    write = WRITES[resource_type, method]
    ctx = _ctx()
    end_request_session()  # the token's read transaction is over; the write opens its own
    return perform_write(
        _db(), ctx, write.status if status is None else status, write.action, *args
    )


def _describe_search(query: ListQuery, filter_text: Any) -> None:
    """Auditors want to know who looked up whom: the filter goes into the event."""
    if filter_text:
        _ctx().audit.detail = f"filter: {filter_text}"


def _listed(list_resources: Callable[..., Page]) -> Response:
    """``GET /Users`` or ``GET /Groups``: one page of the resource type."""
    query = parse_list_query(request.args, _limits())
    _describe_search(query, request.args.get("filter"))
    return _list_response(_read(list_resources, query))


def _searched(list_resources: Callable[..., Page]) -> Response:
    """``POST /Users/.search`` or ``POST /Groups/.search``: the same page, from a body."""
    body = json_body()
    query = parse_search_request(body, _limits())
    _describe_search(query, body.get("filter"))
    return _list_response(_read(list_resources, query))


@bp.post("/Users")
def create_user() -> Response:
    body = _body_as("User", "POST")
    return _resource_response(_write_as("User", "POST", body), 201, location=True)


@bp.get("/Users")
def list_users() -> Response:
    return _listed(users.list_users)


@bp.post("/Users/.search")
def search_users() -> Response:
    return _searched(users.list_users)


@bp.post("/.search")
def search_root() -> Response:
    """RFC 7644 §3.4.3 search across every served resource type."""
    body = json_body()
    query: ListQuery = parse_search_request(body, _limits())
    if query.cursor is not None:
        raise InvalidValue(
            '"cursor" paging is not available on /.search across resource types; '
            "page with startIndex, or search /Users/.search or /Groups/.search with a cursor"
        )
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
    body = _body_as("User", "PUT")
    if_match = request.headers.get("If-Match")
    return _resource_response(_write_as("User", "PUT", user_id, body, if_match))


@bp.patch("/Users/<user_id>")
def patch_user(user_id: str) -> Response:
    body = _body_as("User", "PATCH")
    if_match = request.headers.get("If-Match")
    return _resource_response(_write_as("User", "PATCH", user_id, body, if_match))


@bp.delete("/Users/<user_id>")
def delete_user(user_id: str) -> Response:
    _write_as("User", "DELETE", user_id, request.headers.get("If-Match"))
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
    head_text = compact_json(head)

    def body() -> Iterator[str]:
        try:
            first = next(members, None)
            if first is None:  # no members: the attribute is unassigned (RFC 7643 §2.5)
                yield head_text
                return
            yield f'{head_text[:-1]},"members":[{first}'
            for piece in members:  # several member elements each
                yield f",{piece}"
            yield "]}"
        finally:  # a client that hangs up mid-stream: end the read transaction now
            members.close()

    response = Response(stream_with_context(body()), status=status, content_type=SCIM_CONTENT_TYPE)
    for name, value in headers.items():
        response.headers[name] = value
    return response


@bp.post("/Groups")
def create_group() -> Response:
    body = _body_as("Group", "POST")
    return _group_response(_write_as("Group", "POST", body), 201, location=True)


@bp.get("/Groups")
def list_groups() -> Response:
    return _listed(groups.list_groups)


@bp.post("/Groups/.search")
def search_groups() -> Response:
    return _searched(groups.list_groups)


@bp.get("/Groups/<group_id>")
def get_group(group_id: str) -> Response:
    rendered: groups.RenderedGroup = _read(groups.get_group, group_id)
    if _not_modified(rendered.etag):
        return scim_response(None, 304, {"ETag": rendered.etag})
    return _group_response(rendered)


@bp.put("/Groups/<group_id>")
def replace_group(group_id: str) -> Response:
    body = _body_as("Group", "PUT")
    if_match = request.headers.get("If-Match")
    return _group_response(_write_as("Group", "PUT", group_id, body, if_match))


@bp.patch("/Groups/<group_id>")
def patch_group(group_id: str) -> Response:
    """204 unless the client asks for attributes (RFC 7644 §3.5.2): a membership PATCH on a
    10,000-member group must not answer with 10,000 members."""
    body = _body_as("Group", "PATCH")
    if_match = request.headers.get("If-Match")
    wants_body = "attributes" in request.args or "excludedAttributes" in request.args
    status = 200 if wants_body else None  # the table's 204 otherwise
    rendered = _write_as("Group", "PATCH", group_id, body, if_match, status=status)
    if wants_body:
        return _group_response(rendered)
    return scim_response(None, 204, {"ETag": rendered.etag})


@bp.delete("/Groups/<group_id>")
def delete_group(group_id: str) -> Response:
    _write_as("Group", "DELETE", group_id, request.headers.get("If-Match"))
    return scim_response(None, 204)


# -- bulk ----------------------------------------------------------------------------------


def _bulk_body() -> Any:
    """The BulkRequest, read under ``maxPayloadSize`` instead of the general body limit, so
    that an oversized bulk payload is answered with the limit a bulk client reads (§3.7.4)."""
    limit = _settings().bulk_max_payload_bytes
    too_large = PayloadTooLarge(
        f"the bulk request body exceeds maxPayloadSize ({limit} bytes); "
        "split it into several requests"
    )
    return json_body(limit, too_large)


@bp.post("/Bulk")
def bulk() -> Response:
    """RFC 7644 §3.7: 200 with one result per operation run (``services.bulk``)."""
    body = _bulk_body()
    parsed = bulk_protocol.parse_bulk_request(
        body, registry=_registry(), max_operations=_settings().bulk_max_operations
    )
    ctx = _ctx()
    end_request_session()
    outcome = bulk_service.run_bulk(_db(), ctx, parsed)
    return scim_response(outcome.document())


@bp.route("/Me", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def me_not_built() -> Response:
    raise NotImplementedFeature("/Me is not supported: tokens belong to IdP connections")
