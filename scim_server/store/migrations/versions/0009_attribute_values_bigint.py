"""PostgreSQL: ``user_attribute_values.pk`` is BIGINT.

Its sequence is shared by every organisation and moves on each create and on each change of a
multi-valued attribute (the changed attribute's rows are replaced, not updated): an IdP that
rewrites emails, phone numbers and addresses of a large directory every cycle uses tens of
millions of keys a day, which INTEGER's 2,147,483,647 would not hold for long. SQLite's INTEGER
already holds 64 bits, so nothing changes there. On PostgreSQL the change rewrites the table
once; run it in a maintenance window on a large directory.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "user_attribute_values", "pk", type_=sa.BigInteger(), existing_type=sa.Integer()
    )
    op.execute("ALTER SEQUENCE user_attribute_values_pk_seq AS BIGINT")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER SEQUENCE user_attribute_values_pk_seq AS INTEGER")
    op.alter_column(
        "user_attribute_values", "pk", type_=sa.Integer(), existing_type=sa.BigInteger()
    )
