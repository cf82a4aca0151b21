"""Organisations, connections and bearer tokens (DESIGN §7).

A token is 256 random bits, shown once and stored only as its SHA-256. Lookup is by hash (an
indexed equality on a value the caller cannot choose), then the stored hash is compared again in
constant time so no timing difference depends on how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session, aliased

from scim_server.audit.chain import create_chain
from scim_server.services.access import seed_roles
from scim_server.services.errors import ServiceError as ServiceError  # re-exported for callers
from scim_server.store.db import Database
from scim_server.store.models import ApiToken, Connection, Organization
from scim_server.store.types import utcnow

SCOPES = ("scim", "admin", "audit")
#: The scope of an OAuth client secret (``services.oauth``): it buys access tokens at the token
#: endpoint and is never accepted as a bearer token itself.
CLIENT_SCOPE = "client"
IDPS = ("okta", "entra", "generic")
#: ``connections.name`` is VARCHAR(200).
MAX_CONNECTION_NAME = 200
TOKEN_PREFIX = "scim_"  # noqa: S105 - a marker, not a secret
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_prefix(token: str) -> str:
    """The part of a token that may be shown in logs and audit events to identify it."""
    return token[: len(TOKEN_PREFIX) + 6]


#: The length of ``new_token()``: the marker and 43 url-safe characters (32 random bytes).
TOKEN_LENGTH = len(TOKEN_PREFIX) + 43


def presented_prefix(token: str) -> str | None:
    """The prefix to record for a token someone presented, or None.

    Only for a value shaped like this server's tokens is the prefix a small, harmless part of
    it; the first characters of anything else (a short guess, a password pasted by mistake,
    another system's key) may be most of a secret, so they are not recorded (DESIGN §7).
    """
    if token.startswith(TOKEN_PREFIX) and len(token) >= TOKEN_LENGTH:
        return token_prefix(token)
    return None


@dataclass(frozen=True)
class Principal:
    """Who is calling: the organisation, the connection (for SCIM tokens) and the token's scope."""

    org_id: int
    org_slug: str
    connection_id: str | None
    scope: str
    token_prefix: str
    expires_at: datetime | None
    revoked: bool

    # authlib's TokenValidator protocol
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked

    def get_scope(self) -> str:
        return self.scope


def authenticate(database: Database, token: str) -> Principal | None:
    """Who presents ``token`` (expired and revoked tokens included: the caller refuses those)."""
    with database.transaction(write=False) as session:
        return lookup(session, token)


# Every request authenticates: the query is built once, and reads columns, not an ORM entity.
_BY_DIGEST = (
    select(
        ApiToken.token_hash,
        ApiToken.org_id,
        Organization.slug,
        ApiToken.connection_id,
        ApiToken.scope,
        ApiToken.prefix,
        ApiToken.expires_at,
        ApiToken.revoked_at,
    )
    .join(Organization, Organization.id == ApiToken.org_id)
    .where(ApiToken.token_hash == bindparam("digest"), ApiToken.scope != CLIENT_SCOPE)
)


def lookup(session: Session, token: str) -> Principal | None:
    """``authenticate`` in the caller's transaction (a request's read transaction)."""
    digest = hash_token(token)
    row = session.connection().execute(_BY_DIGEST, {"digest": digest}).first()
    if row is None:
        return None
    if not hmac.compare_digest(row.token_hash, digest):
        return None
    return Principal(
        org_id=row.org_id,
        org_slug=row.slug,
        connection_id=row.connection_id,
        scope=row.scope,
        token_prefix=row.prefix,
        expires_at=row.expires_at,
        revoked=row.revoked_at is not None,
    )


def create_organization(session: Session, slug: str, name: str) -> Organization:
    if not _SLUG.match(slug):
        raise ServiceError(
            f"organisation slug {slug!r} must be lower-case letters, digits and '-', "
            "at most 63 characters"
        )
    if session.scalar(select(Organization.id).where(Organization.slug == slug)) is not None:
        raise ServiceError(f"organisation {slug!r} already exists")
    org = Organization(slug=slug, name=name)
    session.add(org)
    session.flush()
    create_chain(session, org.id)
    seed_roles(session, org.id)
    return org


def get_organization(session: Session, slug: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.slug == slug))
    if org is None:
        raise ServiceError(f"no organisation {slug!r}")
    return org


def issue_token(
    session: Session,
    org: Organization,
    scope: str,
    connection: Connection | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Create a token and return it in clear: the only time it exists outside the caller."""
    return insert_token(
        session, org.id, scope, connection.id if connection else None, expires_at=expires_at
    )


def insert_token(
    session: Session,
    org_id: int,
    scope: str,
    connection_id: str | None,
    *,
    expires_at: datetime | None = None,
    issued_by: int | None = None,
) -> str:
    """``issue_token`` by ids (the token endpoint has no entity loaded)."""
    if scope not in (*SCOPES, CLIENT_SCOPE):
        raise ServiceError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if scope == CLIENT_SCOPE and connection_id is None:
        raise ServiceError("a client secret belongs to a connection")
    token = new_token()
    session.add(
        ApiToken(
            org_id=org_id,
            connection_id=connection_id,
            scope=scope,
            prefix=token_prefix(token),
            token_hash=hash_token(token),
            expires_at=expires_at,
            issued_by=issued_by,
        )
    )
    session.flush()
    return token


def create_connection(
    session: Session, org: Organization, name: str, idp: str = "generic"
) -> tuple[Connection, str]:
    """A new IdP connection and its first SCIM token."""
    if idp not in IDPS:
        raise ServiceError(f"idp must be one of {', '.join(IDPS)}, got {idp!r}")
    name = name.strip()
    if not 1 <= len(name) <= MAX_CONNECTION_NAME or "\0" in name:
        raise ServiceError(
            f"a connection's name has 1 to {MAX_CONNECTION_NAME} characters (no NUL), "
            f"got {len(name)}"
        )
    if not any(unicodedata.category(char)[0] in "LNPS" for char in name):
        raise ServiceError("a connection's name needs a visible character")
    # commands and the admin API name connections by name too: two alike would be ambiguous
    for other_id, other_name in session.execute(
        select(Connection.id, Connection.name).where(Connection.org_id == org.id)
    ):
        if other_name.lower() == name.lower():
            raise ServiceError(
                f"a connection named {other_name!r} exists already ({other_id}); names are "
                "case-insensitive"
            )
    connection = Connection(id=str(uuid.uuid4()), org_id=org.id, name=name, idp=idp)
    session.add(connection)
    session.flush()
    token = issue_token(session, org, "scim", connection)
    return connection, token


# -- rotation and revocation (DESIGN §7) ----------------------------------------------------------

_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: Longer than any IdP needs to pick up a new secret; a forgotten old token must not live on.
MAX_OVERLAP = timedelta(days=30)
#: The longest life given to an admin or audit token at its creation: a year's engagement.
MAX_TOKEN_LIFETIME = timedelta(days=366)


def parse_duration(
    text: str, option: str = "--overlap", maximum: timedelta = MAX_OVERLAP
) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d`` or plain seconds, at most ``maximum``."""
    shown = repr(text) if len(text) <= 32 else f"{text[:32]!r}..."
    match = _DURATION.match(text)
    if match is None:
        raise ServiceError(f"{option}: {shown} is not a duration: use e.g. 0, 90s, 30m, 24h or 7d")
    # a dozen digits are already centuries; more is not given to int() (4,300 digits raise)
    # nor to timedelta(), which overflows
    digits = match[1].lstrip("0") or "0"
    if len(digits) > 12 or int(digits) * _UNIT_SECONDS[match[2]] > maximum.total_seconds():
        raise ServiceError(f"{option}: {shown} is longer than the {maximum.days} days allowed")
    return timedelta(seconds=int(digits) * _UNIT_SECONDS[match[2]])


def parse_lifetime(text: str, option: str = "--expires") -> timedelta:
    """A new token's life: a duration above 0, at most :data:`MAX_TOKEN_LIFETIME`."""
    lifetime = parse_duration(text, option, MAX_TOKEN_LIFETIME)
    if not lifetime:
        raise ServiceError(f"{option}: a token's life must be more than 0, got {text!r}")
    return lifetime


@dataclass(frozen=True)
class TokenChange:
    """A token whose life a rotation or revocation shortened (never the token itself)."""

    prefix: str
    scope: str
    expires_at: datetime | None
    revoked: bool

    def view(self) -> dict[str, Any]:
        """As the CLI prints it, the admin API answers it and the event records it."""
        expires = self.expires_at if self.expires_at and not self.revoked else None
        return {
            "prefix": self.prefix,
            "scope": self.scope,
            "revoked": self.revoked,
            "expires": expires.isoformat().replace("+00:00", "Z") if expires else None,
        }


def live_tokens(session: Session, org_id: int, *conditions: object) -> list[ApiToken]:
    """The tokens of ``org_id`` neither expired nor revoked that meet ``conditions``, locked."""
    now = utcnow()
    return list(
        session.scalars(
            select(ApiToken)
            .where(
                ApiToken.org_id == org_id,
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
                *conditions,  # type: ignore[arg-type]
            )
            .order_by(ApiToken.created_at, ApiToken.id)
            .with_for_update()
        )
    )


def _end(token: ApiToken, at: datetime, now: datetime) -> TokenChange:
    if at <= now:
        token.revoked_at = now
    elif token.expires_at is None or token.expires_at > at:
        token.expires_at = at
    return TokenChange(token.prefix, token.scope, token.expires_at, token.revoked_at is not None)


def end_tokens(
    session: Session, org_id: int, ending: list[ApiToken], at: datetime, now: datetime
) -> list[TokenChange]:
    """``ending`` stop working at ``at`` (now: revoked), and so do the access tokens issued for
    any of them (OAuth client secrets, ``services.oauth``), unless they expire sooner."""
    secrets_ = [token.id for token in ending if token.scope == CLIENT_SCOPE]
    issued = (
        live_tokens(
            session,
            org_id,
            ApiToken.issued_by.in_(secrets_),
            ApiToken.id.not_in([token.id for token in ending]),
        )
        if secrets_
        else []
    )
    return [_end(token, at, now) for token in [*ending, *issued]]


#: A use case that gives a connection a new credential and ends its previous ones after an
#: overlap: ``rotate_connection_token``, ``oauth.issue_client_secret``.
Renewal = Callable[[Session, Organization, Connection, timedelta], tuple[str, list["TokenChange"]]]


def rotate_connection_token(
    session: Session, org: Organization, connection: Connection, overlap: timedelta
) -> tuple[str, list[TokenChange]]:
    """A new SCIM token for ``connection``; its other bearer tokens end after ``overlap`` (at
    once when it is zero), so the IdP keeps working while its admin pastes the new secret.
    Its OAuth client secret, and the tokens issued for it, are left alone (``services.oauth``)."""
    now = utcnow()
    previous = live_tokens(
        session,
        org.id,
        ApiToken.connection_id == connection.id,
        ApiToken.scope == "scim",
        ApiToken.issued_by.is_(None),
    )
    changes = end_tokens(session, org.id, previous, now + overlap, now)
    return issue_token(session, org, "scim", connection), changes


def revoke_connection_tokens(
    session: Session, org: Organization, connection: Connection
) -> list[TokenChange]:
    """Every live token of ``connection`` stops working now; the connection keeps what it owns
    (``connection rotate`` gives it a new token)."""
    now = utcnow()
    return end_tokens(
        session,
        org.id,
        live_tokens(session, org.id, ApiToken.connection_id == connection.id),
        now,
        now,
    )


def revocation_changes(ended: TokenChange, issued: list[TokenChange]) -> dict[str, Any]:
    """The ``token.revoke`` event's changes: the token, and the access tokens that ended with
    it when it is an OAuth client secret."""
    changes: dict[str, Any] = {"revoked": [False, True], "scope": ended.scope}
    if issued:
        changes["oldTokens"] = [change.view() for change in issued]
    return changes


class NoSuchToken(ServiceError):
    """No live token of the organisation has that prefix (a 404 where it is the target)."""


def revoke_token(session: Session, org: Organization, prefix: str) -> list[TokenChange]:
    """The live token of ``org`` whose prefix is ``prefix`` stops working now (first in the
    answer), and so do the access tokens issued for it if it is an OAuth client secret.

    An admin may paste the whole leaked token: it is cut to its prefix at once, and never
    repeated in a message. Text that does not start like a token (a password pasted by
    mistake) is not quoted at all: its first characters may be most of a secret."""
    given = prefix.strip()
    if not given.startswith(TOKEN_PREFIX):
        raise NoSuchToken(
            f"the value given is not the start of a token (tokens start with {TOKEN_PREFIX!r}; "
            "the value is not shown); give the prefix shown in the provisioning log"
        )
    prefix = token_prefix(given)
    found = live_tokens(session, org.id, ApiToken.prefix == prefix)
    if not found:
        raise NoSuchToken(
            f"organisation {org.slug!r} has no live token with prefix {prefix!r} "
            "(the prefix is the start of the token shown in the provisioning log)"
        )
    if len(found) > 1:  # 6 random characters: not seen, but never revoke the wrong one
        raise ServiceError(f"{len(found)} live tokens share the prefix {prefix!r}")
    now = utcnow()
    return end_tokens(session, org.id, found, now, now)


# -- listing (DESIGN §7: what is live, to rotate or revoke it) ----------------------------------

#: Most tokens one listing shows (an organisation has a few; access tokens add about one an hour
#: per OAuth client, kept a day past their expiry).
MAX_LISTED_TOKENS = 1000


@dataclass(frozen=True)
class TokenView:
    """A token as an admin sees it: never the token, its prefix."""

    prefix: str
    scope: str
    kind: str
    connection_id: str | None
    connection_name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    issued_for: str | None

    def to_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat().replace("+00:00", "Z") if moment else None

        return {
            "prefix": self.prefix,
            "kind": self.kind,
            "scope": self.scope,
            "connectionId": self.connection_id,
            "connectionName": self.connection_name,
            "created": iso(self.created_at),
            "expires": iso(self.expires_at),
            "revoked": iso(self.revoked_at),
            "issuedFor": self.issued_for,
        }


def token_kind(scope: str, issued_by: int | None) -> str:
    """``connection`` (a bearer token of an IdP connection), ``oauth-client`` (its client
    secret), ``oauth-access`` (a token the token endpoint issued), ``admin`` or ``audit``."""
    if scope == CLIENT_SCOPE:
        return "oauth-client"
    if issued_by is not None:
        return "oauth-access"
    return "connection" if scope == "scim" else scope


def list_tokens(session: Session, org: Organization, *, ended: bool = False) -> list[TokenView]:
    """The organisation's live tokens, oldest first (with ``ended``: expired and revoked ones
    too, as long as they are kept)."""
    secret = aliased(ApiToken)
    query = (
        select(ApiToken, Connection.name, secret.prefix)
        .outerjoin(Connection, Connection.id == ApiToken.connection_id)
        .outerjoin(secret, secret.id == ApiToken.issued_by)
        .where(ApiToken.org_id == org.id)
        .order_by(ApiToken.created_at, ApiToken.id)
        .limit(MAX_LISTED_TOKENS)
    )
    if not ended:
        now = utcnow()
        query = query.where(
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
        )
    return [
        TokenView(
            prefix=token.prefix,
            scope=token.scope,
            kind=token_kind(token.scope, token.issued_by),
            connection_id=token.connection_id,
            connection_name=name,
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            issued_for=issued_for,
        )
        for token, name, issued_for in session.execute(query)
    ]
