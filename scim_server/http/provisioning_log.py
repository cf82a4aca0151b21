"""Every request to an audited surface becomes exactly one provisioning-log event (DESIGN §6).

An :class:`EventDraft` is opened before the view runs. A successful write seals it inside its
own transaction (``services.transaction``); whatever is still unrecorded when the response is
ready — reads, refusals, failures, authentication failures, unknown endpoints — is recorded here,
after the request's read transaction has ended, with the response's status and the error's
``scimType`` and detail, by the process's ``EventRecorder`` (which seals the events of concurrent
requests in one transaction; each response still waits for its own event to commit).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, g, request

from scim_server.audit.events import EventDraft
from scim_server.audit.recorder import EventRecorder
from scim_server.audit.throttle import FailureThrottle
from scim_server.http.metrics import AUDIT_FAILURES
from scim_server.http.request_db import end_request_session
from scim_server.services.tokens import Principal, authenticate, presented_prefix
from scim_server.store.db import Database

log = logging.getLogger("scim_server.audit")

#: URL prefixes whose every request is logged.
AUDITED_PREFIXES = ("/scim/v2", "/audit/v1", "/admin/v1", "/oauth")


def current_draft() -> EventDraft | None:
    draft: EventDraft | None = g.get("audit_draft")
    return draft


def note_error(scim_type: str | None, detail: str) -> None:
    """Remember the error a response carries, for the request's event."""
    draft = current_draft()
    if draft is not None:
        draft.scim_type = scim_type
        draft.detail = detail


def attribute_caller(principal: Principal | None, token_string: str) -> None:
    """Say who is calling in the request's event: never the token, only its prefix."""
    draft = current_draft()
    if draft is None:
        return
    draft.token_prefix = presented_prefix(token_string)
    if principal is not None:
        draft.org_id = principal.org_id
        draft.actor_type = "connection" if principal.connection_id else principal.scope
        draft.actor = principal.connection_id or principal.token_prefix


def _identify_unrouted_caller(database: Database) -> None:
    """A request no endpoint served (404, 405) was never authenticated; if it carried a valid
    token, the event belongs in that organisation's log, where its admin will look for it."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        attribute_caller(authenticate(database, token.strip()), token.strip())


_NO_BODY_SENT = {
    "HEAD": "HEAD: the answer's headers only, no body was sent",
    "OPTIONS": "OPTIONS: the allowed methods only, nothing was read",
}


def _operation(endpoint: str | None) -> str:
    operations: dict[str, str] = current_app.extensions["scim_operations"]
    if endpoint is None:
        return "http.unknown_endpoint"
    return operations.get(endpoint, endpoint)


def register_provisioning_log(
    app: Flask, operations: dict[str, str], *, failure_limit: int, failure_window: float
) -> None:
    app.extensions["scim_operations"] = operations
    throttle = FailureThrottle(limit=failure_limit, window=failure_window)
    app.extensions["scim_auth_throttle"] = throttle
    # A connection over its rate limit is refused cheaply; recording every refusal would turn
    # the flood into as many audit writes. The same bound as for authentication failures.
    rate_throttle = FailureThrottle(limit=failure_limit, window=failure_window)

    @app.before_request
    def _open_event() -> None:
        if not request.path.startswith(AUDITED_PREFIXES):
            return
        g.audit_draft = EventDraft(
            operation=_operation(request.endpoint),
            request_id=g.get("request_id"),
            client_ip=request.remote_addr,
            user_agent=request.headers.get("User-Agent"),
        )

    @app.after_request
    def _record_event(response: Response) -> Response:
        draft = current_draft()
        if draft is None or draft.recorded:
            return response
        draft.status = response.status_code
        if response.status_code >= 400:
            draft.changes = None  # whatever the request meant to change was rolled back
        elif request.method in _NO_BODY_SENT:
            # Flask answers HEAD with the GET's view and OPTIONS by itself, under the GET's
            # operation: the event must not say an export or a read was handed over
            draft.detail = _NO_BODY_SENT[request.method]
        if response.status_code == 401 or draft.operation == "auth.failed":
            # every refusal of the token endpoint is one too (http.oauth)
            draft.operation = "auth.failed"
            admitted, suppressed = throttle.admit(draft.client_ip or "-")
            if not admitted:
                return response
            if suppressed:
                draft.detail = f"{draft.detail} ({suppressed} similar failures not recorded)"
        if response.status_code == 429:
            admitted, suppressed = rate_throttle.admit(draft.actor or "-")
            if not admitted:
                return response
            if suppressed:
                draft.detail = f"{draft.detail} ({suppressed} similar refusals not recorded)"
        end_request_session()
        database: Database = current_app.extensions["scim_db"]
        recorder: EventRecorder = current_app.extensions["scim_recorder"]
        try:
            if draft.actor_type == "anonymous" and request.url_rule is None:
                _identify_unrouted_caller(database)
            recorder.record(draft)
        except Exception:
            # The response stands; the failure to log it must be loud.
            AUDIT_FAILURES.inc()
            log.exception(
                "could not record audit event %s (request %s)", draft.operation, draft.request_id
            )
        return response
