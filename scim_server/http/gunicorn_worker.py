"""gunicorn's gthread worker, answering the requests it refuses itself in the SCIM error schema.

A request line over ``limit_request_line``, an oversized header or bytes that are not HTTP never
reach the app: gunicorn answered them with an HTML page of its own, which an IdP's provisioning
log shows as unreadable markup, and logged the refused bytes, a malformed ``Authorization``
header's token included. This worker answers a SCIM error (RFC 7644 §3.12) naming the limit
crossed, and logs only the kind of refusal, never what was sent.
"""

from __future__ import annotations

import json
import socket
import traceback
from datetime import datetime
from ssl import SSLError
from typing import Any

from gunicorn import util
from gunicorn.http import errors
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import ThreadWorker

from scim_server.http.errors import SCIM_CONTENT_TYPE
from scim_server.scim.errors import ERROR_SCHEMA

#: gunicorn's refusals that are not a plain 400, by exception class name (names, so that a
#: class a gunicorn release drops or adds changes nothing here but that class's status)
_STATUS_BY_NAME = {
    "LimitRequestLine": (414, "URI Too Long"),
    "LimitRequestHeaders": (431, "Request Header Fields Too Large"),
    "ExpectationFailed": (417, "Expectation Failed"),
    "UnsupportedTransferCoding": (501, "Not Implemented"),
    "ForbiddenProxyRequest": (403, "Forbidden"),
    # a header the application tried to send: the server's fault, not the client's
    "InvalidResponseHeader": (500, "Internal Server Error"),
    "InvalidResponseHeaderName": (500, "Internal Server Error"),
    "ConfigurationProblem": (500, "Internal Server Error"),
}


def refusal_status(exc: BaseException) -> tuple[int, str]:
    """The status gunicorn's refusal of ``exc`` deserves: its HTTP parse errors are the
    client's (400 unless named above), a TLS failure is 403, anything else is ours (500)."""
    for kind in type(exc).__mro__:
        if kind.__name__ in _STATUS_BY_NAME:
            return _STATUS_BY_NAME[kind.__name__]
    if isinstance(exc, errors.ParseException):
        return 400, "Bad Request"
    if isinstance(exc, SSLError):
        return 403, "Forbidden"
    return 500, "Internal Server Error"


def refusal_detail(status: int, limits: Any) -> str:
    """What the client should know, naming the limit it crossed; never the refused bytes (a
    header's value can be a token)."""
    if status == 414:
        return (
            f"the request line is longer than {limits.limit_request_line} bytes; send a long "
            "filter with POST /.search (RFC 7644 §3.4.3)"
        )
    if status == 431:
        return (
            f"a request header is longer than {limits.limit_request_field_size} bytes, or there "
            f"are more than {limits.limit_request_fields} headers"
        )
    if status == 400:
        return "the request is not valid HTTP/1.1 (request line or headers)"
    if status == 500:
        return "internal error while reading the request or writing the answer"
    return "the request was refused before it reached the SCIM service"


def scim_error_bytes(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps({"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail})
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {SCIM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body.encode())}\r\n\r\n"
    )
    return head.encode("latin-1") + body.encode()


class ScimThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn has no type hints
    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        started = datetime.now()
        address = addr[0] if addr else ""
        status, reason = refusal_status(exc)
        if status >= 500:
            # the frames, not the message: a message can quote what was being read or written
            frames = "".join(traceback.format_tb(exc.__traceback__))
            self.log.error("error handling a request: %s\n%s", type(exc).__name__, frames)
        else:
            self.log.warning(
                "refused a request from ip=%s: %s (%s %s)",
                address,
                type(exc).__name__,
                status,
                reason,
            )
        if req is None and isinstance(exc, errors.InvalidHeader):
            req = getattr(exc, "req", None)  # the request line was read: an access line
        if req is not None and hasattr(req, "method"):
            try:  # the access line is a courtesy: the answer below must go out whatever happens
                environ = default_environ(req, client, self.cfg)
                environ["REMOTE_ADDR"] = address
                environ["REMOTE_PORT"] = str(addr[1]) if addr else ""
                response = Response(req, client, self.cfg)
                response.status = f"{status} {reason}"
                self.log.access(response, req, environ, datetime.now() - started)
            except Exception:
                self.log.debug("no access line for a refused request")
        try:
            util.write_nonblock(
                client, scim_error_bytes(status, reason, refusal_detail(status, self.cfg))
            )
        except Exception:  # the client is gone; gunicorn gives up the same way
            self.log.debug("Failed to send error message.")
