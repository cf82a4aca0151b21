"""The application factory (DESIGN §2): configuration in, a ready WSGI app out."""

from __future__ import annotations

import logging
import secrets
import uuid

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from scim_server.audit.recorder import EventRecorder
from scim_server.config import Settings
from scim_server.http import admin_api, audit_api, health, oauth, scim
from scim_server.http.errors import register_error_handlers
from scim_server.http.metrics import register_metrics
from scim_server.http.provisioning_log import register_provisioning_log
from scim_server.http.request_db import register_request_session
from scim_server.logs import configure_app_logging
from scim_server.scim.cursor import CursorSettings
from scim_server.scim.schema import Registry, default_registry
from scim_server.store.db import Database

_REQUEST_ID = "X-Request-Id"
_log = logging.getLogger(__name__)


def cursor_settings(settings: Settings) -> CursorSettings:
    """The key that signs RFC 9865 cursors.

    Unset, each app gets a random key: gunicorn loads the app once in the master
    (``preload_app``), so every worker of one server shares it, and a restart merely invalidates
    open cursors (clients restart their walk on ``invalidCursor``). Several hosts behind a load
    balancer must share ``SCIM_CURSOR_SECRET``, or a cursor served by one host is refused by
    the others.
    """
    if settings.cursor_secret is not None:
        key = settings.cursor_secret.encode()
    else:
        key = secrets.token_bytes(32)
        _log.info("SCIM_CURSOR_SECRET is not set: cursors are sealed with a per-process key")
    return CursorSettings(secret=key, timeout_seconds=settings.cursor_timeout_seconds)


class AsciiIntegerConverter(IntegerConverter):
    """``<int:...>`` path segments of ASCII digits: werkzeug's ``\\d+`` also matches other
    scripts' digits (an Arabic-Indic 1 in ``DELETE /admin/v1/mappings/...`` removed mapping 1)."""

    regex = r"[0-9]+"


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    registry: Registry | None = None,
) -> Flask:
    settings = settings or Settings.from_env()
    configure_app_logging(settings.log_level, settings.log_format)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["scim_settings"] = settings
    app.extensions["scim_db"] = database or Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        lock_timeout_s=settings.lock_timeout_seconds or None,
    )
    app.extensions["scim_recorder"] = EventRecorder(app.extensions["scim_db"])
    app.extensions["scim_registry"] = registry or default_registry()
    app.extensions["scim_cursors"] = cursor_settings(settings)
    app.extensions["scim_rate_limit"] = None
    if settings.rate_limit:
        # imported here: `limits` (its async storage layer, its Redis client) costs every
        # process about 2 MiB, of no use to a server without SCIM_RATE_LIMIT
        from scim_server.http.rate_limit import ConnectionRateLimit

        app.extensions["scim_rate_limit"] = ConnectionRateLimit(
            settings.rate_limit, settings.redis_url
        )

    @app.before_request
    def _assign_request_id() -> None:
        incoming = request.headers.get(_REQUEST_ID, "")
        usable = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else ""
        g.request_id = usable or uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        response.headers[_REQUEST_ID] = g.get("request_id", "")
        return response

    register_metrics(app)  # first: its clock then covers every other hook
    register_provisioning_log(
        app,
        {**scim.OPERATIONS, **audit_api.OPERATIONS, **admin_api.OPERATIONS, **oauth.OPERATIONS},
        failure_limit=settings.auth_failure_limit,
        failure_window=settings.auth_failure_window_seconds,
    )
    register_error_handlers(app)
    register_request_session(app)
    if settings.trusted_proxy_hops:
        # The provisioning log records the IdP's address, not the TLS proxy's; only headers set
        # by the configured number of proxies are believed, so a client cannot forge its own.
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )
    app.url_map.converters["int"] = AsciiIntegerConverter
    app.register_blueprint(scim.bp)
    app.register_blueprint(audit_api.bp)
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(health.bp)
    return app
