"""User lifecycle and seats (DESIGN §5.3, §5.4 item 5, issue #5): status, first activation, soft
delete, the seat domain, the end of temporary access (§5.4 item 4); invitations (the mailer's outbox); users' API keys.

Existing users: ``active`` -> ``active``, inactive -> ``deactivated``; all count as having been
active once (they predate invitations), so reactivating them never sends an invitation. Their
seat domain is computed here with the same function the application uses.

The userName unique index becomes partial (``WHERE deleted_at IS NULL``) on both databases: a
soft-deleted user does not hold its userName.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.policy.domains import seat_domain
from scim_server.store.types import UTCDateTime, raw_document

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="active")
        )
        batch.add_column(sa.Column("activated_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("deleted_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("seat_domain", sa.String(length=253), nullable=True))
        batch.add_column(sa.Column("access_expires_at", UTCDateTime(), nullable=True))
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE users SET activated_at = created_at, "
            "status = CASE WHEN active THEN 'active' ELSE 'deactivated' END"
        )
    )
    rows = bind.execute(sa.text("SELECT pk, user_name, data FROM users")).all()
    for pk, user_name, data in rows:
        domain = seat_domain({**raw_document(data), "userName": user_name})
        if domain is not None:
            bind.execute(
                sa.text("UPDATE users SET seat_domain = :d WHERE pk = :pk"), {"d": domain, "pk": pk}
            )
    op.drop_index("ux_users_org_user_name", table_name="users")
    op.create_index(
        "ux_users_org_user_name",
        "users",
        ["org_id", sa.text("lower(user_name)")],
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index("ix_users_org_status", "users", ["org_id", "status"])

    op.create_table(
        "invitations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("accepted_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_invitations_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.pk"], name="fk_invitations_user_pk_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_invitations"),
        sa.UniqueConstraint("token_hash", name="uq_invitations_token_hash"),
    )
    op.create_index("ix_invitations_user_pk", "invitations", ["user_pk"])
    op.create_index("ix_invitations_org_created", "invitations", ["org_id", "created_at"])

    op.create_table(
        "user_api_keys",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_user_api_keys_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.pk"], name="fk_user_api_keys_user_pk_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_user_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_user_api_keys_key_hash"),
    )
    op.create_index("ix_user_api_keys_user_pk", "user_api_keys", ["user_pk"])


def downgrade() -> None:
    op.drop_table("user_api_keys")
    op.drop_table("invitations")
    op.drop_index("ix_users_org_status", table_name="users")
    op.drop_index("ux_users_org_user_name", table_name="users")
    op.execute("DELETE FROM users WHERE deleted_at IS NOT NULL")
    op.create_index(
        "ux_users_org_user_name", "users", ["org_id", sa.text("lower(user_name)")], unique=True
    )
    with op.batch_alter_table("users") as batch:
        for column in ("access_expires_at", "seat_domain", "deleted_at", "activated_at", "status"):
            batch.drop_column(column)
