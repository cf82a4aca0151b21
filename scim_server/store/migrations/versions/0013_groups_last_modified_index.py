"""Groups: an ``(org_id, last_modified)`` index, as users have.

A delta sync asks for ``meta.lastModified gt "<last run>"`` (DESIGN §3); on groups it read
every group of the organisation, since only the display name, externalId and pk were indexed.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

NAME = "ix_groups_org_last_modified"


def upgrade() -> None:
    op.create_index(NAME, "groups", ["org_id", "last_modified"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="groups")
