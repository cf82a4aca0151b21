"""Invitations: the link's token is made when the mailer takes the message (DESIGN §5.3).

Until now the token was made with the invitation and waited in clear in the row
(``delivery_token``) until the mailer took it. It is now made by ``invitation drain`` itself,
which stores only its SHA-256 and hands the clear token to the mailer: no clear token is ever
at rest. ``token_hash`` is NULL until then.

Invitations still waiting here lose the clear token they held; ``invitation drain`` gives them
a new one. A downgrade gives the invitations that have no token an unusable hash and cancels
those still pending (the older release could never send them: it needs the clear token).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27
"""

from __future__ import annotations

import hashlib
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

from scim_server.store.types import UTCDateTime, utcnow

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_invitations = sa.table(
    "invitations",
    sa.column("id", sa.String),
    sa.column("token_hash", sa.String),
    sa.column("sent_at", UTCDateTime()),
    sa.column("cancelled_at", UTCDateTime()),
    sa.column("accepted_at", UTCDateTime()),
)


@contextmanager
def _invitations_batch() -> Iterator[BatchOperations]:
    """SQLite cannot change a column's nullability: the table is copied (no other table
    references invitations, so the copy is safe). The copy reflects ``users`` to resolve the
    foreign key, and SQLAlchemy warns that it cannot reflect that table's expression index,
    which the copy neither needs nor touches."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Skipped unsupported reflection of expression-based index"
        )
        with op.batch_alter_table("invitations") as batch:
            yield batch


def upgrade() -> None:
    with _invitations_batch() as batch:
        batch.alter_column("token_hash", existing_type=sa.String(length=64), nullable=True)
        batch.drop_column("delivery_token")
    op.execute(
        _invitations.update().where(_invitations.c.sent_at.is_(None)).values(token_hash=None)
    )


def downgrade() -> None:
    connection = op.get_bind()
    waiting = connection.execute(
        sa.select(_invitations.c.id).where(_invitations.c.token_hash.is_(None))
    ).scalars()
    for invitation_id in list(waiting):
        unusable = hashlib.sha256(f"cancelled {uuid.uuid4()}".encode()).hexdigest()
        connection.execute(
            _invitations.update()
            .where(_invitations.c.id == invitation_id)
            .values(token_hash=unusable)
        )
    connection.execute(  # an ended invitation keeps its history
        _invitations.update()
        .where(
            _invitations.c.sent_at.is_(None),
            _invitations.c.cancelled_at.is_(None),
            _invitations.c.accepted_at.is_(None),
        )
        .values(cancelled_at=utcnow())
    )
    with _invitations_batch() as batch:
        batch.add_column(sa.Column("delivery_token", sa.String(length=64), nullable=True))
        batch.alter_column("token_hash", existing_type=sa.String(length=64), nullable=False)
