"""Configuration from environment variables only (DESIGN §8). Each one is documented in README."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

#: The longest life of an access token from the OAuth token endpoint: a day.
MAX_OAUTH_TOKEN_LIFETIME_SECONDS = 86_400


class ConfigError(ValueError):
    """An environment variable holds a value the server cannot use."""


def _int(env: dict[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./scim.db"
    #: Public base URL of the SCIM endpoint; derived from the request when unset.
    base_url: str | None = None
    default_page_size: int = 100
    max_page_size: int = 1000
    max_filter_length: int = 4096
    max_body_bytes: int = 1024 * 1024
    #: /Bulk (RFC 7644 §3.7.4): operations per request, and the request body's size, which
    #: replaces ``max_body_bytes`` for /Bulk only (so a bulk payload over it gets the bulk 413).
    bulk_max_operations: int = 1000
    bulk_max_payload_bytes: int = 1024 * 1024
    db_pool_size: int = 5
    #: PostgreSQL: seconds a request's statement may wait for a lock before the request answers
    #: 503 (0: no limit). Okta gives up on a response after 60 s.
    lock_timeout_seconds: int = 15
    public_discovery: bool = False
    #: Link of an invitation e-mail; ``{token}`` is replaced by the invitation's token.
    invitation_url: str | None = None
    #: auth.failed events recorded per client address per window (the rest are counted).
    auth_failure_limit: int = 20
    auth_failure_window_seconds: int = 60
    #: Reverse proxies in front of the server whose X-Forwarded-For/-Proto/-Host are trusted.
    trusted_proxy_hops: int = 0
    log_level: str = "INFO"
    #: ``json`` (one object per line, DESIGN §8) or ``text``.
    log_format: str = "json"
    #: secret RFC 9865 cursors are sealed with; None: a random key per server process (see README).
    cursor_secret: str | None = None
    #: Seconds a cursor stays valid between pages (ServiceProviderConfig cursorTimeout).
    cursor_timeout_seconds: int = 3600
    #: Requests per connection, e.g. "600/minute" (``limits`` notation); None: no limit.
    rate_limit: str | None = None
    #: Redis shared by every worker for the rate limit; None: each worker counts alone.
    redis_url: str | None = None
    #: Seconds an access token from the OAuth token endpoint (``/oauth/token``) is valid.
    oauth_token_lifetime_seconds: int = 3600
    #: SCIM_AUDIT_SIGNING_KEY as given: read by the audit commands of the CLI alone
    #: (:func:`audit_signing_keys`), so the server starts whatever it holds.
    audit_signing_key: str | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def oauth_token_lifetime(self) -> timedelta:
        return timedelta(seconds=self.oauth_token_lifetime_seconds)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        settings = cls(
            database_url=env.get("SCIM_DATABASE_URL") or cls.database_url,
            base_url=(env.get("SCIM_BASE_URL") or None),
            default_page_size=_int(env, "SCIM_DEFAULT_PAGE_SIZE", cls.default_page_size),
            max_page_size=_int(env, "SCIM_MAX_PAGE_SIZE", cls.max_page_size),
            max_filter_length=_int(env, "SCIM_MAX_FILTER_LENGTH", cls.max_filter_length),
            max_body_bytes=_int(env, "SCIM_MAX_BODY_BYTES", cls.max_body_bytes),
            bulk_max_operations=_int(env, "SCIM_BULK_MAX_OPERATIONS", cls.bulk_max_operations),
            bulk_max_payload_bytes=_int(
                env, "SCIM_BULK_MAX_PAYLOAD_BYTES", cls.bulk_max_payload_bytes
            ),
            db_pool_size=_int(env, "SCIM_DB_POOL_SIZE", cls.db_pool_size),
            lock_timeout_seconds=_int(
                env, "SCIM_LOCK_TIMEOUT_SECONDS", cls.lock_timeout_seconds, minimum=0
            ),
            public_discovery=_bool(env, "SCIM_PUBLIC_DISCOVERY", cls.public_discovery),
            invitation_url=env.get("SCIM_INVITATION_URL") or None,
            auth_failure_limit=_int(env, "SCIM_AUTH_FAILURE_LIMIT", cls.auth_failure_limit),
            auth_failure_window_seconds=_int(
                env, "SCIM_AUTH_FAILURE_WINDOW_SECONDS", cls.auth_failure_window_seconds
            ),
            trusted_proxy_hops=_int(
                env, "SCIM_TRUSTED_PROXY_HOPS", cls.trusted_proxy_hops, minimum=0
            ),
            log_level=(env.get("SCIM_LOG_LEVEL") or cls.log_level).upper(),
            log_format=(env.get("SCIM_LOG_FORMAT") or cls.log_format).strip().lower(),
            cursor_secret=env.get("SCIM_CURSOR_SECRET") or None,
            cursor_timeout_seconds=_int(
                env, "SCIM_CURSOR_TIMEOUT_SECONDS", cls.cursor_timeout_seconds
            ),
            rate_limit=env.get("SCIM_RATE_LIMIT") or None,
            redis_url=env.get("SCIM_REDIS_URL") or None,
            oauth_token_lifetime_seconds=_int(
                env,
                "SCIM_OAUTH_TOKEN_LIFETIME_SECONDS",
                cls.oauth_token_lifetime_seconds,
                minimum=60,
            ),
            audit_signing_key=env.get("SCIM_AUDIT_SIGNING_KEY") or None,
        )
        if settings.oauth_token_lifetime_seconds > MAX_OAUTH_TOKEN_LIFETIME_SECONDS:
            # a short life is the point of OAuth here: a token taken from a log or a proxy
            # expires soon, and a revoked client stops within that time at the latest
            raise ConfigError(
                "SCIM_OAUTH_TOKEN_LIFETIME_SECONDS must be at most "
                f"{MAX_OAUTH_TOKEN_LIFETIME_SECONDS} (a day), got "
                f"{settings.oauth_token_lifetime_seconds}"
            )
        if settings.cursor_secret is not None and len(settings.cursor_secret) < 32:
            # an HMAC key must not be guessable; 32 characters of `openssl rand -hex 32` or so
            raise ConfigError("SCIM_CURSOR_SECRET must be at least 32 characters long")
        if settings.rate_limit is not None:
            # imported only when a limit is configured (see scim_server.app)
            from limits import parse_many as limits_parse_many

            try:
                rates = limits_parse_many(settings.rate_limit)
            except ValueError:
                rates = []
            if len(rates) != 1 or rates[0].amount < 1:
                raise ConfigError(
                    f"SCIM_RATE_LIMIT {settings.rate_limit!r} is not one rate: use e.g. "
                    "600/minute or 20/second"
                )
        if settings.log_format not in ("json", "text"):
            raise ConfigError(f"SCIM_LOG_FORMAT must be json or text, got {settings.log_format!r}")
        if settings.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(
                "SCIM_LOG_LEVEL must be one of debug, info, warning, error, critical, "
                f"got {settings.log_level.lower()!r}"
            )
        if settings.default_page_size > settings.max_page_size:
            raise ConfigError("SCIM_DEFAULT_PAGE_SIZE must not exceed SCIM_MAX_PAGE_SIZE")
        return settings


def audit_signing_keys(settings: Settings) -> tuple[str, ...]:
    """The keys of SCIM_AUDIT_SIGNING_KEY, the signing one first: comma-separated, surrounding
    whitespace (a file's trailing newline) ignored, each at least 32 characters."""
    keys = tuple(key.strip() for key in (settings.audit_signing_key or "").split(","))
    keys = tuple(key for key in keys if key)
    if any(len(key) < 32 for key in keys):
        # the message reaches a terminal or a job's log: it never quotes a key
        raise ConfigError(
            "SCIM_AUDIT_SIGNING_KEY: every comma-separated key must be at least 32 characters "
            "long (e.g. `openssl rand -hex 32`)"
        )
    return keys
