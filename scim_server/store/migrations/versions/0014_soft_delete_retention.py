"""Organisations: how long soft-deleted users are kept before they are purged (DESIGN §5.3).

Every organisation, existing ones included, keeps them 30 days; ``users purge --all`` (run daily
by the operator's scheduler) removes those past their organisation's period.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN (not a batch copy, which on SQLite would drop the referenced table)
    op.add_column(
        "organizations",
        sa.Column(
            "soft_delete_retention_days",
            sa.Integer(),
            nullable=False,
            server_default=sa.text("30"),
        ),
    )


def downgrade() -> None:
    op.drop_column("organizations", "soft_delete_retention_days")  # SQLite 3.35+
