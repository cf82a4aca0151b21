"""What a service needs to know about the request it serves, without knowing about HTTP."""

from __future__ import annotations

from dataclasses import dataclass

from scim_server.audit.events import EventDraft
from scim_server.scim.cursor import CursorSettings
from scim_server.scim.listing import Limits
from scim_server.scim.schema import Registry
from scim_server.services.tokens import Principal


@dataclass(frozen=True)
class RequestContext:
    principal: Principal
    registry: Registry
    #: Absolute URL of the SCIM root (``https://host/scim/v2``), for ``meta.location``.
    base_url: str
    limits: Limits
    #: The event this request will be recorded as; use cases say what they touched.
    audit: EventDraft
    #: Secret and lifetime of RFC 9865 cursors.
    cursors: CursorSettings
