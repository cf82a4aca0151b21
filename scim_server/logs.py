"""Logs as operators collect them (DESIGN §8): one JSON object per line on stdout.

Every line of the app carries the id of the request it was written for (``request_id``, the
``X-Request-Id`` the response echoes and the provisioning log records), so a log line, an IdP's
report and an audit event can be joined. gunicorn's own lines (start, workers, the access log)
use the same format through :func:`gunicorn_logconfig`; an access line carries the method,
path, status, duration and request id as fields. ``SCIM_LOG_FORMAT=text`` gives plain lines for
a terminal. Secrets never reach a log line: the code never logs a token, a password or a body.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Mapping
from typing import Any

from flask import g, has_request_context
from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("json", "text")
APP_LOGGER = "scim_server"
_TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_JSON_FIELDS = ["levelname", "name", "message", "request_id"]
#: gunicorn access-log atoms -> the field names of a JSON access line.
_ACCESS_FIELDS = {
    "m": "method",
    "U": "path",
    "s": "status",
    "B": "bytes",
    "L": "duration_seconds",
    "h": "client",
    "a": "user_agent",
    "{x-request-id}o": "request_id",
}


class RequestId(logging.Filter):
    """Stamp each record with the id of the request being served (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = g.get("request_id") if has_request_context() else None
            record.request_id = request_id or "-"
        return True


class NoRequestBytes(logging.Filter):
    """gunicorn logs some of its HTTP errors by their message, which quotes what it had read of
    the request ("No more data after: b'...Authorization: Bearer scim_...'"): such an error
    is logged by its kind only, and its traceback without the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if of_http_parser(record.msg):
            record.msg = type(record.msg).__name__
        if isinstance(record.args, tuple) and any(map(of_http_parser, record.args)):
            record.args = tuple(
                type(arg).__name__ if of_http_parser(arg) else arg for arg in record.args
            )
        if record.exc_info and of_http_parser(record.exc_info[1]):
            kind, _, trace = record.exc_info
            record.msg = f"{record.msg} ({kind.__name__ if kind else 'error'})"
            record.exc_info = None
            record.exc_text = "".join(traceback.format_tb(trace)) if trace else None
        return True


def of_http_parser(value: object) -> bool:
    """An error of gunicorn's HTTP parser, or one raised while handling such an error, or a
    group holding one (told by its module: the app imports no server)."""
    pending = [value]
    seen: set[int] = set()
    while pending:
        error = pending.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if type(error).__module__.startswith("gunicorn.http"):
            return True
        pending += [error.__cause__, error.__context__]
        if isinstance(error, BaseExceptionGroup):
            pending += list(error.exceptions)
    return False


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a line is written (a test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _json_formatter() -> logging.Formatter:
    return JsonFormatter(
        _JSON_FIELDS,
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "text":
        return logging.Formatter(_TEXT)
    return _json_formatter()


class AccessJsonFormatter(JsonFormatter):
    """gunicorn's access lines as JSON, the request's facts as fields."""

    def __init__(self) -> None:
        super().__init__(["message"], timestamp="time")

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        atoms = record.args
        if isinstance(atoms, Mapping):
            for atom, field in _ACCESS_FIELDS.items():
                text = str(atoms[atom])
                value: Any = None if text == "-" else text
                if field in {"status", "bytes"}:
                    value = int(text) if text.isdigit() else None
                elif field == "duration_seconds":
                    value = float(text)
                log_data[field] = value


def configure_app_logging(level: str, log_format: str) -> None:
    """One handler on the app's logger, replaced (not added to) when an app is created again."""
    logger = logging.getLogger(APP_LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _Stdout):
            logger.removeHandler(handler)
    handler = _Stdout()
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestId())
    logger.addHandler(handler)
    logger.setLevel(level)


def gunicorn_logconfig(level: str, log_format: str) -> dict[str, Any]:
    """``logconfig_dict`` for gunicorn: its error and access logs on stdout in ``log_format``.

    The root logger gets no handler: the app's lines are written by the app's own handler, and
    must not be written a second time in gunicorn's format.
    """
    access = (
        {"()": f"{__name__}.AccessJsonFormatter"}
        if log_format == "json"
        else {"format": "%(message)s"}
    )
    error: dict[str, Any] = (
        {"()": f"{__name__}._json_formatter"} if log_format == "json" else {"format": _TEXT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "WARNING", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["error"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
        "filters": {
            "request_id": {"()": f"{__name__}.RequestId"},
            "no_request_bytes": {"()": f"{__name__}.NoRequestBytes"},
        },
        "handlers": {
            "error": {
                "class": f"{__name__}._Stdout",
                "formatter": "error",
                "filters": ["request_id", "no_request_bytes"],
            },
            "access": {"class": f"{__name__}._Stdout", "formatter": "access"},
        },
        "formatters": {"error": error, "access": access},
    }
