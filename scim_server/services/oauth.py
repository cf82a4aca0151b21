"""OAuth 2.0 client credentials for a connection (DESIGN §7, RFC 6749 §4.4).

Some IdPs (Microsoft Entra ID among them) would rather hold a client id and secret than a
long-lived bearer token: they ask the token endpoint for a short-lived access token and renew it
when it expires. Both are rows of ``api_tokens``, so they share everything a bearer token has:
256 random bits, stored only as SHA-256, a prefix for the log, expiry, revocation.

- The client secret is a token of scope ``client``; its client id is the connection's id. It is
  never accepted as a bearer token.
- An access token is a token of scope ``scim`` of the same connection, with ``expires_at`` set
  and ``issued_by`` naming the secret it was issued for: ending a secret (rotation, revocation)
  ends the tokens issued for it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, delete, or_, select
from sqlalchemy.orm import Session

from scim_server.services.resources import is_resource_id
from scim_server.services.tokens import (
    CLIENT_SCOPE,
    TokenChange,
    end_tokens,
    hash_token,
    insert_token,
    issue_token,
    live_tokens,
    presented_prefix,
    token_prefix,
)
from scim_server.store.models import ApiToken, Connection, Organization
from scim_server.store.types import utcnow

#: How long an expired access token stays in the table (then the next issuance deletes it): a
#: day in which ``token revoke`` and the log's prefix still find it.
KEEP_EXPIRED = timedelta(days=1)


@dataclass(frozen=True)
class ClientSecret:
    """A live secret of a client: its row id, stored hash and prefix (for the log)."""

    id: int
    digest: str
    prefix: str


#: Compared with when a client has no live secret, so that a known client without one costs
#: what a wrong secret does.
_NO_SECRET = ClientSecret(0, "0" * 64, "")


@dataclass(frozen=True)
class Client:
    """A connection as an OAuth client, with its live secrets: none once they were revoked or
    ended, two during a rotation's overlap."""

    client_id: str
    org_id: int
    org_slug: str
    secrets: tuple[ClientSecret, ...]

    def secret_matching(self, secret: str) -> ClientSecret | None:
        """The live secret equal to ``secret``, compared in constant time with every one."""
        digest = hash_token(secret)
        found = None
        for candidate in self.secrets or (_NO_SECRET,):
            if hmac.compare_digest(candidate.digest, digest) and candidate.id:
                found = candidate
        return found


_LIVE_SECRET = and_(
    ApiToken.scope == CLIENT_SCOPE,
    ApiToken.revoked_at.is_(None),
    or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > bindparam("now")),
)
_CLIENT = (
    select(
        Connection.org_id,
        Organization.slug,
        ApiToken.id,
        ApiToken.token_hash,
        ApiToken.prefix,
    )
    .join(Organization, Organization.id == Connection.org_id)
    .outerjoin(ApiToken, and_(ApiToken.connection_id == Connection.id, _LIVE_SECRET))
    .where(Connection.id == bindparam("client_id"))
)


def find_client(session: Session, client_id: str) -> Client | None:
    """The connection ``client_id`` as a client (with no secret if it has none left); None if
    there is no such connection."""
    if not is_resource_id(client_id):  # client ids are connection ids
        return None
    rows = session.connection().execute(_CLIENT, {"client_id": client_id, "now": utcnow()}).all()
    if not rows:
        return None
    return Client(
        client_id=client_id,
        org_id=rows[0].org_id,
        org_slug=rows[0].slug,
        secrets=tuple(
            ClientSecret(row.id, row.token_hash, row.prefix) for row in rows if row.id is not None
        ),
    )


def refused_secret_prefix(session: Session, client: Client, secret: str) -> str | None:
    """The prefix to record for a secret presented for ``client`` that matched none of its
    live ones: only a prefix of one of the organisation's own tokens (a revoked secret its IdP
    still sends is what its admin needs to see). Another organisation's secret would show this
    organisation's auditors part of a credential they have no business seeing."""
    prefix = presented_prefix(secret)
    if prefix is None:
        return None
    owned = session.scalar(
        select(ApiToken.id)
        .where(ApiToken.org_id == client.org_id, ApiToken.prefix == prefix)
        .limit(1)
    )
    return prefix if owned is not None else None


def issue_client_secret(
    session: Session, org: Organization, connection: Connection, overlap: timedelta
) -> tuple[str, list[TokenChange]]:
    """A new client secret for ``connection`` (its client id is the connection's id); its
    previous secrets, and the access tokens issued for them, end after ``overlap``."""
    now = utcnow()
    previous = live_tokens(
        session, org.id, ApiToken.connection_id == connection.id, ApiToken.scope == CLIENT_SCOPE
    )
    changes = end_tokens(session, org.id, previous, now + overlap, now)
    return issue_token(session, org, CLIENT_SCOPE, connection), changes


@dataclass(frozen=True)
class IssuedToken:
    token: str
    prefix: str
    expires_at: datetime


class SecretEnded(Exception):
    """The secret a token was asked with ended (rotated, revoked) after it was checked."""


def issue_access_token(
    session: Session, client: Client, secret: ClientSecret, lifetime: timedelta
) -> IssuedToken:
    """An access token for the connection ``client`` is, valid for ``lifetime`` but never
    beyond its secret; the connection's access tokens that expired over a day ago are deleted
    on the way.

    The secret was checked in the request's read transaction: it is read again here, locked, so
    that a revocation that committed in between is seen (:class:`SecretEnded`), and one that
    comes later waits for this token (and only this one) and ends it too (``tokens.end_tokens``).
    """
    now = utcnow()
    ends = session.execute(
        select(ApiToken.expires_at)
        .where(ApiToken.id == secret.id, _LIVE_SECRET)
        # FOR NO KEY UPDATE, not FOR SHARE: share locks do not conflict with one another, so
        # a flood of token requests kept the row always share-locked and a revocation's
        # FOR UPDATE waited until the flood stopped; these requests queue in turn instead
        # (they already did, on the audit chain's head)
        .with_for_update(key_share=True),
        {"now": now},
    ).first()
    if ends is None:
        raise SecretEnded(f"the client secret {secret.prefix}... ended")
    session.execute(
        delete(ApiToken).where(
            ApiToken.connection_id == client.client_id,
            ApiToken.issued_by.is_not(None),
            ApiToken.expires_at < now - KEEP_EXPIRED,
        )
    )
    expires_at = now + lifetime
    if ends.expires_at is not None:
        expires_at = min(expires_at, ends.expires_at)
    token = insert_token(
        session, client.org_id, "scim", client.client_id, expires_at=expires_at, issued_by=secret.id
    )
    return IssuedToken(token, token_prefix(token), expires_at)
