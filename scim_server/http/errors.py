"""One renderer for every error: the SCIM error schema as ``application/scim+json``.

A client's mistake is a 4xx naming the attribute and rule. Anything unexpected is a 500 that says
"internal error" and the request id, and nothing else (the traceback goes to the log only). A
database that cannot be reached is a 503 with ``Retry-After``, so IdPs retry instead of giving up.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, g
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from scim_server.http.provisioning_log import note_error
from scim_server.logs import of_http_parser
from scim_server.scim.errors import ERROR_SCHEMA, ScimError
from scim_server.store.errors import database_unavailable, lock_wait_timed_out

SCIM_CONTENT_TYPE = "application/scim+json"

#: A lock held that long is held by a long transaction (an import): the IdP comes back later.
LOCK_RETRY_AFTER_SECONDS = 30

log = logging.getLogger("scim_server.http")

_HTTP_DETAILS = {
    404: "no such endpoint",
    405: "method not allowed on this endpoint",
    413: "request body too large",
}


def error_response(status: int, body: dict[str, object], headers: dict[str, str]) -> Response:
    response = Response(json.dumps(body), status=status, content_type=SCIM_CONTENT_TYPE)
    for name, value in headers.items():
        response.headers[name] = value
    return response


def render_scim_error(error: ScimError) -> Response:
    note_error(error.scim_type, error.detail)
    return error_response(error.status, error.to_body(), error.headers)


def _plain(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    note_error(None, detail)
    body: dict[str, object] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    return error_response(status, body, headers or {})


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ScimError)
    def _scim(error: ScimError) -> Response:
        return render_scim_error(error)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        detail = _HTTP_DETAILS.get(status) or (error.description or error.name)
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            detail = f"request body too large: the limit is {limit} bytes"
        headers = {}
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return _plain(status, detail, headers)

    @app.errorhandler(Exception)
    def _internal(error: Exception) -> Response:
        request_id = g.get("request_id", "-")
        if of_http_parser(error):  # a body gunicorn could not read, raised as the app read it
            detail = "the request body could not be read as HTTP/1.1 (its chunks or length)"
            return _plain(400, detail)
        if isinstance(error, DBAPIError) and lock_wait_timed_out(error):
            settings = app.extensions["scim_settings"]
            log.warning("lock wait timed out (request %s)", request_id)
            return _plain(
                503,
                f"waited more than {settings.lock_timeout_seconds} s for data another "
                "transaction holds (a large users import, for example); nothing was written, "
                "retry later",
                {"Retry-After": str(LOCK_RETRY_AFTER_SECONDS)},
            )
        if isinstance(error, DBAPIError) and database_unavailable(error):
            log.error("database unavailable (request %s): %s", request_id, type(error.orig))
            return _plain(503, "the database is unavailable; retry later", {"Retry-After": "5"})
        log.exception("internal error (request %s)", request_id)
        return _plain(500, f"internal error (request id {request_id})")
