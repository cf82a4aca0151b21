"""``logs.NoRequestBytes``: gunicorn's error lines name a parser error by its kind, never by its
message, which quotes the request (a bearer token among its headers). The served case is
``tests/gunicorn/test_log_secrets.py``; these are the shapes gunicorn 27 does not send today
but a release could."""

from __future__ import annotations

import logging
import sys

from gunicorn.http.errors import InvalidHeader, NoMoreData

from scim_server.logs import NoRequestBytes, gunicorn_logconfig

SECRET = "scim_S3cretThatMustNotBeLogged"


def _filtered(msg: object, args: tuple[object, ...] = (), exc_info: object = None) -> str:
    record = logging.LogRecord("gunicorn.error", logging.ERROR, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]
    assert NoRequestBytes().filter(record)
    return logging.Formatter().format(record)


def test_an_argument_the_message_or_a_wrapped_cause_is_shown_by_its_kind() -> None:
    assert _filtered("Ignored. %s", (NoMoreData(f"Bearer {SECRET}".encode()),)) == (
        "Ignored. NoMoreData"
    )
    assert _filtered(NoMoreData(f"Bearer {SECRET}".encode())) == "NoMoreData"
    try:
        try:
            raise InvalidHeader(f"Authorization Bearer {SECRET}")
        except InvalidHeader:
            raise RuntimeError("while handling it") from None
    except RuntimeError:
        wrapped = sys.exc_info()
    shown = _filtered("Error handling request", exc_info=wrapped)
    assert SECRET not in shown
    assert "RuntimeError" in shown
    assert "test_log_filter.py" in shown  # the frames stay, for whoever debugs it
    other = _filtered("worker %s booted", (42,))
    assert other == "worker 42 booted"


def test_however_deep_the_wrapping_or_inside_a_group_the_request_bytes_stay_out() -> None:
    error: BaseException = InvalidHeader(f"Authorization Bearer {SECRET}")
    for depth in range(12):  # the traceback printer follows the whole chain
        try:
            raise RuntimeError(f"layer {depth}") from error
        except RuntimeError as wrapper:
            error = wrapper
    assert SECRET not in _filtered("deep", exc_info=(type(error), error, error.__traceback__))
    group = ExceptionGroup("several", [ValueError("x"), InvalidHeader(f"Bearer {SECRET}")])
    assert SECRET not in _filtered("group %s", (group,))


def test_gunicorn_s_error_log_has_the_filter_in_both_formats() -> None:
    for log_format in ("json", "text"):
        config = gunicorn_logconfig("info", log_format)
        assert "no_request_bytes" in config["handlers"]["error"]["filters"]
