"""PostgreSQL: the provisioning log's keys and sequence numbers are BIGINT.

Every request writes an event, reads included, so ``audit_events.pk`` (shared by every
organisation) counts all requests the server ever answered: as INTEGER it would run out at
2,147,483,647, about eight months at 100 requests a second, and the chain's ``seq`` with it for
a busy organisation. SQLite's INTEGER already holds 64 bits (and the primary key must stay
INTEGER there to remain the rowid), so nothing changes on SQLite. On PostgreSQL the change
rewrites the table once; run it in a maintenance window on a large log.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMNS = (("audit_events", "pk"), ("audit_events", "seq"), ("audit_chains", "last_seq"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in _COLUMNS:
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())
    # a SERIAL column's sequence is itself typed INTEGER, with that maximum
    op.execute("ALTER SEQUENCE audit_events_pk_seq AS BIGINT")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER SEQUENCE audit_events_pk_seq AS INTEGER")
    for table, column in _COLUMNS:
        op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
