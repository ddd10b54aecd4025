"""resource counts: each organization's number of Users and Groups, kept on write

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource_counts",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("resource_type", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_resource_counts_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "resource_type", name=op.f("pk_resource_counts")),
    )
    # Existing organizations start from what they hold now.
    for resource_type, table in (("User", "users"), ("Group", "groups")):
        op.execute(
            sa.text(
                "INSERT INTO resource_counts (org_id, resource_type, total, generation) "
                f"SELECT o.id, '{resource_type}', "
                f"(SELECT count(*) FROM {table} t WHERE t.org_id = o.id), 0 "
                "FROM organizations o"
            )
        )


def downgrade() -> None:
    op.drop_table("resource_counts")
