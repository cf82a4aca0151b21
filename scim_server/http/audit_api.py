"""The auditor API, ``/audit/v1`` (DESIGN §6): audit-scoped tokens only.

A SCIM or admin token is refused here (403), and an audit token is refused on ``/scim/v2``:
reading the log and provisioning are different duties.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request, stream_with_context

from scim_server.config import Settings
from scim_server.http.auth import require_principal
from scim_server.http.errors import SCIM_CONTENT_TYPE
from scim_server.http.provisioning_log import current_draft
from scim_server.scim.errors import InvalidValue
from scim_server.scim.listing import LIST_RESPONSE, integer_parameter
from scim_server.scim.schema import Registry
from scim_server.services import audit_log
from scim_server.store.db import Database

bp = Blueprint("audit", __name__, url_prefix="/audit/v1")

OPERATIONS = {"audit.list_events": "audit.query"}

_EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


@bp.before_request
def _authenticate() -> None:
    require_principal("audit")


def _count(settings: Settings) -> int:
    raw = request.args.get("count")
    if raw in (None, ""):
        return settings.default_page_size
    count = integer_parameter("count", raw)
    if count < 1 or count > settings.max_page_size:
        raise InvalidValue(f'"count" must be between 1 and {settings.max_page_size}, got {count}')
    return count


@bp.get("/events")
def list_events() -> Response:
    """Events in sequence order: a cursor page (JSON), or the whole selection streamed as
    ``format=csv`` or ``format=jsonl``."""
    settings: Settings = current_app.extensions["scim_settings"]
    database: Database = current_app.extensions["scim_db"]
    registry: Registry = current_app.extensions["scim_registry"]
    principal = require_principal("audit")
    filter_text = request.args.get("filter") or None
    fmt = request.args.get("format")
    draft = current_draft()
    if draft is not None and filter_text:
        draft.detail = f"filter: {filter_text}"

    if fmt:
        if draft is not None:
            draft.operation = "audit.export"
        chunks = audit_log.export_events(
            database, registry, principal.org_id, filter_text, fmt.lower()
        )
        response = Response(
            stream_with_context(chunks), mimetype=_EXPORT_TYPES[fmt.lower()].split(";")[0]
        )
        response.headers["Content-Type"] = _EXPORT_TYPES[fmt.lower()]
        response.headers["Content-Disposition"] = (
            f'attachment; filename="audit-{principal.org_slug}.{fmt.lower()}"'
        )
        return response

    page = audit_log.page_events(
        database,
        registry,
        principal.org_id,
        filter_text=filter_text,
        cursor=request.args.get("cursor") or None,
        count=_count(settings),
    )
    body: dict[str, object] = {
        "schemas": [LIST_RESPONSE],
        "itemsPerPage": len(page.events),
        "Resources": page.events,
    }
    if page.next_cursor:
        body["nextCursor"] = page.next_cursor
    return Response(json.dumps(body), content_type=SCIM_CONTENT_TYPE)
