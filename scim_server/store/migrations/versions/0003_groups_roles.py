"""Groups and memberships, roles, access groups, group mappings, effective access.

Every existing organisation is seeded with the built-in roles (DESIGN §5.2).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from scim_server.store.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

#: name, rank, is_admin, permissions — kept in step with services.roles.BUILT_IN_ROLES
BUILT_IN = [
    ("Administrator", 100, True, ["*"]),
    ("Editor", 40, False, ["campaigns.read", "campaigns.write", "campaigns.status.update"]),
    ("Collaborator", 30, False, ["campaigns.read", "campaigns.comment"]),
    ("Campaign Status Updater", 20, False, ["campaigns.read", "campaigns.status.update"]),
    ("Viewer", 10, False, ["campaigns.read"]),
]


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("default_role_pk", sa.Integer(), nullable=True))
    roles = op.create_table(
        "roles",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("permissions", JSON_DOCUMENT, nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("built_in", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_roles_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_roles")),
    )
    op.create_index("ux_roles_org_name", "roles", ["org_id", sa.text("lower(name)")], unique=True)
    op.create_table(
        "access_groups",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("campaign_ids", JSON_DOCUMENT, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_access_groups_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_access_groups")),
    )
    op.create_index(
        "ux_access_groups_org_name",
        "access_groups",
        ["org_id", sa.text("lower(name)")],
        unique=True,
    )
    op.create_table(
        "group_mappings",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("match_kind", sa.String(length=16), nullable=False),
        sa.Column("match_value", sa.String(length=512), nullable=False),
        sa.Column("role_pk", sa.Integer(), nullable=True),
        sa.Column("access_group_pk", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["access_group_pk"],
            ["access_groups.pk"],
            name=op.f("fk_group_mappings_access_group_pk_access_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_group_mappings_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role_pk"],
            ["roles.pk"],
            name=op.f("fk_group_mappings_role_pk_roles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_group_mappings")),
    )
    op.create_index("ix_group_mappings_org_id", "group_mappings", ["org_id"])
    op.create_table(
        "groups",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("display_name", sa.String(length=512), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_modified", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("owner_connection_id", sa.String(length=36), nullable=True),
        sa.Column("data", JSON_DOCUMENT, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_groups_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_connection_id"],
            ["connections.id"],
            name=op.f("fk_groups_owner_connection_id_connections"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_groups")),
        sa.UniqueConstraint("id", name=op.f("uq_groups_id")),
    )
    op.create_index(
        "ux_groups_org_display_name",
        "groups",
        ["org_id", sa.text("lower(display_name)")],
        unique=True,
    )
    op.create_index("ix_groups_org_external_id", "groups", ["org_id", "external_id"])
    op.create_index("ix_groups_org_pk", "groups", ["org_id", "pk"])
    op.create_table(
        "group_members",
        sa.Column("group_pk", sa.Integer(), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_pk"],
            ["groups.pk"],
            name=op.f("fk_group_members_group_pk_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
            name=op.f("fk_group_members_user_pk_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_pk", "user_pk", name=op.f("pk_group_members")),
    )
    op.create_index("ix_group_members_user_pk", "group_members", ["user_pk"])
    op.create_index("ix_group_members_group_user_id", "group_members", ["group_pk", "user_id"])
    op.create_table(
        "user_access",
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("role_pk", sa.Integer(), nullable=True),
        sa.Column("access_group_pks", JSON_DOCUMENT, nullable=False),
        sa.ForeignKeyConstraint(
            ["role_pk"],
            ["roles.pk"],
            name=op.f("fk_user_access_role_pk_roles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.pk"], name=op.f("fk_user_access_user_pk_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_pk", name=op.f("pk_user_access")),
    )
    connection = op.get_bind()
    org_ids = [row[0] for row in connection.execute(sa.text("SELECT id FROM organizations"))]
    op.bulk_insert(
        roles,
        [
            {
                "org_id": org_id,
                "name": name,
                "rank": rank,
                "is_admin": is_admin,
                "permissions": permissions,
                "built_in": True,
            }
            for org_id in org_ids
            for name, rank, is_admin, permissions in BUILT_IN
        ],
    )


def downgrade() -> None:
    op.drop_table("user_access")
    op.drop_table("group_members")
    op.drop_table("groups")
    op.drop_table("group_mappings")
    op.drop_table("access_groups")
    op.drop_table("roles")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("default_role_pk")
