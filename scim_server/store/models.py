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
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    false,
    func,
    text,
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


#: The provisioning log's keys and sequence numbers (one per request ever answered): BIGINT on
#: PostgreSQL; INTEGER on SQLite, which holds 64 bits and keeps a primary key the rowid.
_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Role of users no direct role or mapped group gives one to; None: no permissions at all.
    #: No foreign key (roles reference organisations): services keep it pointing at a role.
    default_role_pk: Mapped[int | None] = mapped_column(Integer)
    # Settings (DESIGN §5.4, issue #5). Domains are stored normalised (lower case, punycode, no
    # trailing dot: ``policy.domains.normalise_domain``). SSO is enforced iff ``sso_domain`` is set.
    sso_domain: Mapped[str | None] = mapped_column(String(253))
    #: The domain whitelist; empty: any domain (unless SSO is enforced).
    allowed_domains: Mapped[list[str]] = mapped_column(
        JsonDocument, default=list, server_default=text("'[]'")
    )
    allow_subdomains: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Invited and active users outside ``exempt_domains`` (DESIGN §5.4 item 5). None: no limit.
    seat_limit: Mapped[int | None] = mapped_column(Integer)
    exempt_domains: Mapped[list[str]] = mapped_column(
        JsonDocument, default=list, server_default=text("'[]'")
    )
    #: An IANA zone name (``Europe/Paris``): where temporary access ends at 23:59:59.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    #: What a SCIM DELETE does (DESIGN §5.3): ``hard`` removes the row, ``soft`` hides it.
    delete_mode: Mapped[str] = mapped_column(String(8), default="hard", server_default="hard")
    #: Mass-deprovisioning guard (DESIGN §5.4 item 8): one connection may deactivate or delete
    #: at most this many users (or this percent of the organisation's users, with
    #: ``deprovision_limit_is_percent``) within ``deprovision_window_minutes``; None: no guard.
    deprovision_limit: Mapped[int | None] = mapped_column(
        Integer, default=50, server_default=text("50")
    )
    deprovision_limit_is_percent: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    deprovision_window_minutes: Mapped[int] = mapped_column(
        Integer, default=10, server_default=text("10")
    )
    #: Days a soft-deleted user is kept before ``users purge`` removes it (DESIGN §5.3).
    soft_delete_retention_days: Mapped[int] = mapped_column(
        Integer, default=30, server_default=text("30")
    )


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


class Deprovision(Base):
    """A user a connection deactivated or deleted, kept while it counts towards the
    mass-deprovisioning guard's window (``services.deprovisioning``)."""

    __tablename__ = "deprovisions"

    pk: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(36))
    user_name: Mapped[str] = mapped_column(String(512))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_deprovisions_connection_id_at", "connection_id", "at"),)


class DeprovisioningHold(Base):
    """A connection's deprovisioning held by the guard, and the admin's decision on it.

    The newest row of a connection is its state: ``held`` until an admin decides; then
    ``released`` (deprovisioning passes uncounted until ``until``) or ``rejected`` (refused
    until ``until``).
    """

    __tablename__ = "deprovisioning_holds"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: The limit as it stood when the hold opened, e.g. ``50 users in 10 minutes``.
    rule: Mapped[str] = mapped_column(String(200))
    #: How many users the connection deprovisioned in the window that opened the hold, and the
    #: first of them (``deprovisioning.LISTED_USERS``): ``[{id, userName, at}]``.
    user_count: Mapped[int] = mapped_column(Integer, default=0)
    users: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument, default=list)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(200))
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_deprovisioning_holds_connection_id_pk", "connection_id", "pk"),)


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
    #: The id of the OAuth client secret (a token of scope ``client``) this access token was
    #: issued for at the token endpoint (``services.oauth``): it ends when that secret ends. No
    #: foreign key: a secret is never deleted but with its connection, whose cascade takes the
    #: tokens issued for it too.
    issued_by: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_api_tokens_org_id", "org_id"),
        Index("ix_api_tokens_issued_by", "issued_by"),
    )


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
    #: Lifecycle status (DESIGN §5.3, ``policy.lifecycle``): invited, active, deactivated, locked.
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    #: When the user first became active (invitation accepted, or created in an SSO organisation);
    #: None: never. Reactivating a user that never accepted makes it ``invited`` again.
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Set by a soft DELETE: the user is gone for SCIM, its row kept until ``users purge``.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The normalised domain of the address that decides seat exemption (DESIGN §5.4 item 5):
    #: ``userName`` when it is an email, else the primary (or first) email; None: no address.
    seat_domain: Mapped[str | None] = mapped_column(String(253))
    #: End of temporary access (DESIGN §5.4 item 4), promoted from the access extension's
    #: ``accessExpiresAt``; past it the user reads ``expired`` and takes no seat.
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Written by the product (at a sign-in, on activity), never by SCIM: shown read-only as the
    #: access extension's ``lastSignInAt`` and ``lastActivityAt`` (DESIGN §5.1).
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # Soft-deleted users do not hold their userName: a new user may take it.
        Index(
            "ux_users_org_user_name",
            "org_id",
            func.lower(user_name),
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_users_org_external_id", "org_id", "external_id"),
        Index("ix_users_org_last_modified", "org_id", "last_modified"),
        Index("ix_users_org_pk", "org_id", "pk"),
        Index("ix_users_org_status", "org_id", "status"),
        # sortBy=userName compares by code point; SQLite's unique index above already does
        Index(
            "ix_users_org_user_name_codepoint",
            "org_id",
            func.lower(user_name).collate("C"),
            "pk",
            postgresql_where=text("deleted_at IS NULL"),
        ).ddl_if(dialect="postgresql"),
    )


class Invitation(Base):
    """An invitation to a user created ``invited`` (DESIGN §5.3): an outbox row the mailer drains.

    The link token is random, made when the mailer takes the message, and stored only as its
    SHA-256 (``services.lifecycle``): ``token_hash`` is NULL until then. A resend cancels the
    pending invitation and writes a new one, so the old link stops working.
    """

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_invitations_user_pk", "user_pk"),
        Index("ix_invitations_org_created", "org_id", "created_at"),
    )


class UserApiKey(Base):
    """An API key a user owns in the host product; revoked when the user is deleted (§5.3).

    ``user_pk`` becomes NULL when a hard DELETE removes the user: the revoked key stays on record.
    """

    __tablename__ = "user_api_keys"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_user_api_keys_user_pk", "user_pk"),)


class UserAttributeValue(Base):
    """One element of a user's multi-valued attribute, for filtering in SQL (DESIGN §3)."""

    __tablename__ = "user_attribute_values"

    # BIGINT on PostgreSQL: replaced rows use up keys of a sequence all organisations share
    pk: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
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
    last_seq: Mapped[int] = mapped_column(_BIGINT, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditEvent(Base):
    """One provisioning-log event (DESIGN §6). Rows are never updated; pruning deletes a prefix.

    ``org_id`` has no foreign key on purpose: the log of an organisation outlives it.
    """

    __tablename__ = "audit_events"

    pk: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(_BIGINT)
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


class Role(Base):
    """A role of the host product (DESIGN §5.2); ``rank`` orders them, the highest wins."""

    __tablename__ = "roles"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    permissions: Mapped[list[str]] = mapped_column(JsonDocument)
    rank: Mapped[int] = mapped_column(Integer)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    built_in: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ux_roles_org_name", "org_id", func.lower(name), unique=True),)


class AccessGroup(Base):
    """Access to a set of campaigns (opaque campaign ids)."""

    __tablename__ = "access_groups"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    campaign_ids: Mapped[list[str]] = mapped_column(JsonDocument)

    __table_args__ = (Index("ux_access_groups_org_name", "org_id", func.lower(name), unique=True),)


class GroupMapping(Base):
    """What an IdP group grants: a rule matching groups, and the role or access group it grants.

    ``match_kind`` is ``name`` (displayName, exact, case-insensitive), ``prefix`` (displayName
    prefix, case-insensitive) or ``external_id`` (exact).
    """

    __tablename__ = "group_mappings"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    match_kind: Mapped[str] = mapped_column(String(16))
    match_value: Mapped[str] = mapped_column(String(512))
    role_pk: Mapped[int | None] = mapped_column(ForeignKey("roles.pk", ondelete="CASCADE"))
    access_group_pk: Mapped[int | None] = mapped_column(
        ForeignKey("access_groups.pk", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_group_mappings_org_id", "org_id"),)


class Group(Base):
    """An IdP group, stored as pushed; members live in ``group_members`` (DESIGN §3)."""

    __tablename__ = "groups"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(512))
    external_id: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_modified: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer)
    owner_connection_id: Mapped[str | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL")
    )
    data: Mapped[dict[str, Any]] = mapped_column(JsonDocument)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ux_groups_org_display_name", "org_id", func.lower(display_name), unique=True),
        Index("ix_groups_org_external_id", "org_id", "external_id"),
        Index("ix_groups_org_last_modified", "org_id", "last_modified"),
        Index("ix_groups_org_pk", "org_id", "pk"),
    )


class GroupMember(Base):
    __tablename__ = "group_members"

    group_pk: Mapped[int] = mapped_column(
        ForeignKey("groups.pk", ondelete="CASCADE"), primary_key=True
    )
    user_pk: Mapped[int] = mapped_column(
        ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[int] = mapped_column(Integer)
    #: The member's public id (immutable), so member filters and rendering need no join.
    user_id: Mapped[str] = mapped_column(String(36))

    __table_args__ = (
        Index("ix_group_members_user_pk", "user_pk"),
        Index("ix_group_members_group_user_id", "group_pk", "user_id"),
    )


class UserAccess(Base):
    """A user's effective role and access groups, recomputed in the transaction that changes
    anything they depend on (DESIGN §5.2): direct roles, memberships, mappings, group names."""

    __tablename__ = "user_access"

    user_pk: Mapped[int] = mapped_column(
        ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[int] = mapped_column(Integer)
    role_pk: Mapped[int | None] = mapped_column(ForeignKey("roles.pk", ondelete="SET NULL"))
    access_group_pks: Mapped[list[int]] = mapped_column(JsonDocument)
