"""Seat domains recomputed: only a valid address decides a user's seat exemption.

Before this release the seat domain was read after the last "@" of any text, so a userName
such as "seat2@acme.com,x@vendor.com" was stored as a vendor.com user and took no seat under a
``vendor.com`` exemption. The column is recomputed with the release's ``seat_domain`` wherever
it now differs (in batches of users, by key), so such users count from the upgrade on.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.policy.domains import seat_domain
from scim_server.store.types import raw_document

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    after = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT pk, user_name, data, seat_domain FROM users WHERE pk > :after "
                "ORDER BY pk LIMIT :batch"
            ),
            {"after": after, "batch": _BATCH},
        ).all()
        if not rows:
            return
        for pk, user_name, data, stored in rows:
            domain = seat_domain({**raw_document(data), "userName": user_name})
            if domain != stored:
                bind.execute(
                    sa.text("UPDATE users SET seat_domain = :d WHERE pk = :pk"),
                    {"d": domain, "pk": pk},
                )
        after = rows[-1][0]


def downgrade() -> None:
    """Nothing to undo: the earlier release reads the column as it is."""
