"""OAuth 2.0 client credentials (DESIGN §7): an access token remembers the client secret it was
issued for, so that rotating or revoking the secret ends its tokens too.

Client secrets are rows of ``api_tokens`` of scope ``client``. ``issued_by`` has no foreign key:
a secret is deleted only with its connection, whose cascade deletes the tokens issued for it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch (copy-and-move) alteration of the tokens table.
    op.add_column("api_tokens", sa.Column("issued_by", sa.Integer(), nullable=True))
    op.create_index("ix_api_tokens_issued_by", "api_tokens", ["issued_by"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_issued_by", table_name="api_tokens")
    op.drop_column("api_tokens", "issued_by")  # ALTER TABLE DROP COLUMN (SQLite 3.35+)
