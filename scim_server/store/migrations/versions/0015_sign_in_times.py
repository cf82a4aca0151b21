"""Users: when the product last saw them sign in and be active (DESIGN §5.1).

The product writes these two columns, as it writes ``status = 'locked'``; SCIM shows them as
the access extension's read-only ``lastSignInAt`` and ``lastActivityAt``.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.store.types import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMNs (a batch copy on SQLite would drop a table other rows reference)
    op.add_column("users", sa.Column("last_sign_in_at", UTCDateTime(), nullable=True))
    op.add_column("users", sa.Column("last_activity_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "last_activity_at")  # SQLite 3.35+
    op.drop_column("users", "last_sign_in_at")
