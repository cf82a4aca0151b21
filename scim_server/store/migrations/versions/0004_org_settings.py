"""Organisation settings: SSO domain, domain whitelist, subdomains, seat limit, exempt domains,
time zone, delete mode (DESIGN §5.4, issue #5).

Existing organisations get the defaults: no SSO, any domain, no seat limit, UTC, hard delete.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("sso_domain", sa.String(length=253), nullable=True))
        batch.add_column(
            sa.Column(
                "allowed_domains", JSON_DOCUMENT, nullable=False, server_default=sa.text("'[]'")
            )
        )
        batch.add_column(
            sa.Column("allow_subdomains", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("seat_limit", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column(
                "exempt_domains", JSON_DOCUMENT, nullable=False, server_default=sa.text("'[]'")
            )
        )
        batch.add_column(
            sa.Column("timezone", sa.String(length=64), nullable=False, server_default="UTC")
        )
        batch.add_column(
            sa.Column("delete_mode", sa.String(length=8), nullable=False, server_default="hard")
        )


def downgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        for column in (
            "delete_mode",
            "timezone",
            "exempt_domains",
            "seat_limit",
            "allow_subdomains",
            "allowed_domains",
            "sso_domain",
        ):
            batch.drop_column(column)
