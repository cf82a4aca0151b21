"""gunicorn's gthread worker, answering the requests it refuses itself in the SCIM error schema.

A request line over ``limit_request_line``, an oversized header or bytes that are not HTTP never
reach the app: gunicorn answers them with an HTML page of its own, which an IdP's provisioning
log shows as unreadable markup. This worker lets gunicorn decide the status and log the refusal
as it always does, and only replaces the body it would send with a SCIM error (RFC 7644 §3.12).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from scim_server.scim.errors import ERROR_SCHEMA

SCIM_CONTENT_TYPE = "application/scim+json"


class _Captured:
    """Stands in for the client's socket while gunicorn writes its HTML answer, keeping only
    the status line: the HTML echoes the refused text, which the SCIM answer does not."""

    def __init__(self) -> None:
        self.sent = b""

    def gettimeout(self) -> float:
        return 0.0

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def status(self) -> tuple[int, str]:
        """The status and reason gunicorn chose (500 if it wrote nothing readable)."""
        parts = self.sent.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if len(parts) == 3 and parts[1].isdigit():
            return int(parts[1]), parts[2]
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
        return "the request is not valid HTTP/1.1 (request line, headers or chunked body)"
    if status == 500:
        return "internal error while reading the request"
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
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)  # status, logs and access line: gunicorn's
        status, reason = captured.status()
        answer = scim_error_bytes(status, reason, refusal_detail(status, self.cfg))
        try:
            util.write_nonblock(client, answer)
        except Exception:  # the client is gone; gunicorn gives up the same way
            self.log.debug("Failed to send error message.")
