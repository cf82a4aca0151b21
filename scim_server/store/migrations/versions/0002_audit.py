"""Provisioning log: hash-chained audit events and the per-organisation chain heads.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from scim_server.store.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
GENESIS = "0" * 64


def upgrade() -> None:
    chains = op.create_table(
        "audit_chains",
        sa.Column("org_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_audit_chains")),
    )
    # the system chain (org 0), and one chain for every organisation that already exists
    op.bulk_insert(chains, [{"org_id": 0, "last_seq": 0, "last_hash": GENESIS}])
    op.execute(
        sa.text(
            "INSERT INTO audit_chains (org_id, last_seq, last_hash) "
            "SELECT id, 0, :genesis FROM organizations"
        ).bindparams(genesis=GENESIS)
    )
    op.create_table(
        "audit_events",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("token_prefix", sa.String(length=16), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("scim_type", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.String(length=2048), nullable=True),
        sa.Column("resource_type", sa.String(length=32), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("user_name", sa.String(length=4096), nullable=True),
        sa.Column("changes", JSON_DOCUMENT, nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_audit_events")),
    )
    op.create_index("ux_audit_events_org_seq", "audit_events", ["org_id", "seq"], unique=True)
    op.create_index("ix_audit_events_org_time", "audit_events", ["org_id", "time"])
    op.create_index("ix_audit_events_org_operation", "audit_events", ["org_id", "operation"])
    op.create_index("ix_audit_events_org_resource_id", "audit_events", ["org_id", "resource_id"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("audit_chains")
