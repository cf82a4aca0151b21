"""The request's read transaction (DESIGN §2: one transaction per request).

A request's token lookup and its read use case run in one read transaction, opened at the first
statement and ended before anything is written: before a write use case opens its write
transaction, and before the request's audit event is sealed. Ending it twice is harmless, and
the teardown ends it whatever happened.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from scim_server.store.db import Database

_KEY = "scim_read_session"
_log = logging.getLogger("scim_server.store")


def request_session() -> Session:
    session: Session | None = g.get(_KEY)
    if session is None:
        database: Database = current_app.extensions["scim_db"]
        session = database.reader()
        setattr(g, _KEY, session)
    return session


def end_request_session() -> None:
    """Close the read transaction (a rollback: it wrote nothing) and return its connection.

    It wrote nothing, so a failure to end it (the connection was lost after the read) loses
    nothing: the connection is discarded and the request goes on; a write opens a new one.
    """
    session: Session | None = g.pop(_KEY, None)
    if session is None:
        return
    try:
        session.close()
    except Exception as error:  # nothing to lose; never fail the request here
        _log.warning("could not end a read transaction (%s); connection discarded", error)
        try:
            session.invalidate()
        except Exception:  # the connection is gone either way
            _log.debug("invalidating the lost connection failed too", exc_info=True)


def register_request_session(app: Flask) -> None:
    @app.teardown_request
    def _end(_error: BaseException | None) -> None:
        end_request_session()
