"""Typed ORM models (DESIGN §3).

Every table holding tenant data carries ``org_id`` and every query filters on it. Resources have
an integer surrogate key (``pk``: compact foreign keys, keyset paging) and a public UUID ``id``.

A user's SCIM document is kept whole in ``data`` so that a GET is one row read. The attributes
IdPs filter on are also columns (``user_name``, ``external_id``, ``display_name``, ``active``),
and every multi-valued attribute (emails, phoneNumbers, roles, ...) is also written to
``user_attribute_values``, one row per element, so filters such as
``emails[type eq "work" and value co "@acme.com"]`` run as indexed SQL. Both are written by one
function in the same transaction (``store.users``), never separately.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from scim_server.store.types import JsonDocument, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Connection(Base):
    """One IdP integration of an organisation (one Okta app, one Entra enterprise app)."""

    __tablename__ = "connections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    idp: Mapped[str] = mapped_column(String(16), default="generic")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    organization: Mapped[Organization] = relationship(lazy="joined", innerjoin=True)

    __table_args__ = (Index("ix_connections_org_id", "org_id"),)


class ApiToken(Base):
    """A bearer token, stored only as its SHA-256 (DESIGN §7); ``prefix`` identifies it in logs."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connection_id: Mapped[str | None] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE")
    )
    scope: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_api_tokens_org_id", "org_id"),)


class User(Base):
    __tablename__ = "users"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(4096))
    external_id: Mapped[str | None] = mapped_column(String(4096))
    display_name: Mapped[str | None] = mapped_column(String(4096))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_modified: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer)
    owner_connection_id: Mapped[str | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL")
    )
    data: Mapped[dict[str, Any]] = mapped_column(JsonDocument)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ux_users_org_user_name", "org_id", func.lower(user_name), unique=True),
        Index("ix_users_org_external_id", "org_id", "external_id"),
        Index("ix_users_org_last_modified", "org_id", "last_modified"),
        Index("ix_users_org_pk", "org_id", "pk"),
    )


class UserAttributeValue(Base):
    """One element of a user's multi-valued attribute, for filtering in SQL (DESIGN §3)."""

    __tablename__ = "user_attribute_values"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"))
    attribute: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(String(4096))
    type: Mapped[str | None] = mapped_column(String(256))
    primary: Mapped[bool] = mapped_column(Boolean, default=False)
    display: Mapped[str | None] = mapped_column(String(4096))
    data: Mapped[dict[str, Any]] = mapped_column(JsonDocument)

    __table_args__ = (
        Index("ix_user_attribute_values_user_pk", "user_pk"),
        Index(
            "ix_user_attribute_values_org_attr_value",
            "org_id",
            "attribute",
            func.lower(value),
        ),
    )


#: Chain of events not attributable to an organisation (unknown tokens, malformed requests).
SYSTEM_CHAIN = 0


class AuditChain(Base):
    """The head of one organisation's hash chain: its last sequence number and hash.

    Appending locks this row (``SELECT ... FOR UPDATE``) for the rest of the transaction, so
    concurrent writers in several processes take sequence numbers one after another and the
    chain never forks (DESIGN §6).
    """

    __tablename__ = "audit_chains"

    org_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditEvent(Base):
    """One provisioning-log event (DESIGN §6). Rows are never updated; pruning deletes a prefix.

    ``org_id`` has no foreign key on purpose: the log of an organisation outlives it.
    """

    __tablename__ = "audit_events"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_type: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(64))
    token_prefix: Mapped[str | None] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    operation: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[int | None] = mapped_column(Integer)
    scim_type: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(2048))
    resource_type: Mapped[str | None] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    user_name: Mapped[str | None] = mapped_column(String(4096))
    changes: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ux_audit_events_org_seq", "org_id", "seq", unique=True),
        Index("ix_audit_events_org_time", "org_id", "time"),
        Index("ix_audit_events_org_operation", "org_id", "operation"),
        Index("ix_audit_events_org_resource_id", "org_id", "resource_id"),
    )
