"""console grants: who may do what in the admin console (org_admin, user_manager, ...)

Revision ID: 0017
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import UTCDateTime

revision = "0017"
down_revision = "0012"  # main already has 0012 (local credentials)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_grants",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id", "user_id"],
            ["users.org_id", "users.id"],
            name=op.f("fk_console_grants_org_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "user_id", "role", name=op.f("pk_console_grants")),
    )


def downgrade() -> None:
    op.drop_table("console_grants")
