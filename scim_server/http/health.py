"""Liveness and readiness probes (DESIGN §8): ``/healthz`` never touches the database;
``/readyz`` asks it to answer, and to have at least the schema this code needs."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from scim_server.store.db import Database
from scim_server.store.revision import database_revision, head_revision, is_behind

bp = Blueprint("health", __name__)
_log = logging.getLogger("scim_server.health")


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    database: Database = current_app.extensions["scim_db"]
    try:
        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            try:
                revision = database_revision(connection)
            except DBAPIError as error:
                if error.connection_invalidated:
                    raise
                # reachable, but the schema cannot be read: init would not help
                _log.warning("readiness: cannot read the schema revision: %s", error.orig)
                return jsonify(
                    status="unavailable",
                    database="error",
                    detail="the database answers but its schema revision cannot be read "
                    "(see the server log)",
                ), 503
    except Exception:
        return jsonify(status="unavailable", database="unreachable"), 503
    if is_behind(revision):
        detail = "the database schema is older than this server: run scim-server init"
        return jsonify(
            status="unavailable",
            database="reachable",
            schema=revision,
            required=head_revision(),
            detail=detail,
        ), 503
    return jsonify(status="ok", database="reachable", schema=revision), 200
