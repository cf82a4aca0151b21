"""The services' view of the current request (``services.context.RequestContext``), for the
surfaces that write through ``services.transaction`` outside ``/scim/v2``: the admin API and the
OAuth token endpoint. (``http.scim`` builds its own once per request, with the SCIM base URL.)"""

from __future__ import annotations

from flask import current_app, request

from scim_server.config import Settings
from scim_server.http.provisioning_log import current_draft
from scim_server.scim.cursor import CursorSettings
from scim_server.scim.listing import Limits
from scim_server.services.context import RequestContext
from scim_server.services.tokens import Principal


def request_context(principal: Principal) -> RequestContext:
    """``principal``'s request, with its audit event (the surface must be an audited one)."""
    settings: Settings = current_app.extensions["scim_settings"]
    cursors: CursorSettings = current_app.extensions["scim_cursors"]
    limits = Limits(settings.default_page_size, settings.max_page_size, settings.max_filter_length)
    draft = current_draft()
    assert draft is not None, "an audited surface opens the request's event"
    return RequestContext(
        principal,
        current_app.extensions["scim_registry"],
        request.host_url.rstrip("/"),
        limits,
        draft,
        cursors,
    )
