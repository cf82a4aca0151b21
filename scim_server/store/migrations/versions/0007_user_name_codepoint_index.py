"""PostgreSQL: an index in the order ``sortBy=userName`` pages are read in.

Sorting compares by code point (``COLLATE "C"``, the same order as SQLite's), which the unique
``lower(user_name)`` index, in the database's collation, cannot serve: a sorted cursor page read
and sorted every user of the organisation (52-127 ms at 100,000 users, docs/PERFORMANCE.md).
SQLite's default collation already is code point order, so its unique index serves the sort.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NAME = "ix_users_org_user_name_codepoint"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index(
        NAME,
        "users",
        ["org_id", sa.text('(lower(user_name) COLLATE "C")'), "pk"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(NAME, table_name="users")
