"""The mass-deprovisioning guard (DESIGN §5.4 item 8): its setting and its two tables.

Every organisation, existing ones included, gets the default limit: one connection may
deactivate or delete 50 users within 10 minutes; the next deprovisioning from it is held until
an admin releases or rejects it. ``scim-server org update SLUG --deprovision-limit off`` turns
the guard off.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from scim_server.store.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch (copy-and-move) alteration: on SQLite, dropping the old
    # organizations table would cascade to every row referencing it.
    op.add_column(
        "organizations",
        sa.Column("deprovision_limit", sa.Integer(), nullable=True, server_default=sa.text("50")),
    )
    op.add_column(
        "organizations",
        sa.Column(
            "deprovision_limit_is_percent", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )
    op.add_column(
        "organizations",
        sa.Column(
            "deprovision_window_minutes", sa.Integer(), nullable=False, server_default=sa.text("10")
        ),
    )
    op.create_table(
        "deprovisions",
        sa.Column("pk", BIGINT, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("user_name", sa.String(length=512), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_deprovisions_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_deprovisions_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_deprovisions"),
    )
    op.create_index("ix_deprovisions_connection_id_at", "deprovisions", ["connection_id", "at"])
    op.create_table(
        "deprovisioning_holds",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("user_count", sa.Integer(), nullable=False),
        sa.Column("users", JSON_DOCUMENT, nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("until", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_deprovisioning_holds_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_deprovisioning_holds_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_deprovisioning_holds"),
    )
    op.create_index(
        "ix_deprovisioning_holds_connection_id_pk",
        "deprovisioning_holds",
        ["connection_id", "pk"],
    )


def downgrade() -> None:
    op.drop_table("deprovisioning_holds")
    op.drop_table("deprovisions")
    for column in (
        "deprovision_window_minutes",
        "deprovision_limit_is_percent",
        "deprovision_limit",
    ):
        op.drop_column("organizations", column)  # ALTER TABLE DROP COLUMN (SQLite 3.35+)
