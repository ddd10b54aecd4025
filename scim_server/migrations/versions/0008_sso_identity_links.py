"""sso identity links: the account each IdP subject of a connection is bound to

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No backfill: existing accounts are linked at their next sign-in, by the fallback rules.
    op.create_table(
        "sso_identity_links",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_sso_identity_links_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "user_id"],
            ["users.org_id", "users.id"],
            name=op.f("fk_sso_identity_links_org_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "connection_id"],
            ["sso_connections.org_id", "sso_connections.id"],
            name=op.f("fk_sso_identity_links_org_id_connection_id_sso_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "org_id", "connection_id", "subject", name=op.f("pk_sso_identity_links")
        ),
    )
    op.create_index(
        "uq_sso_identity_links_org_id_connection_id_user_id",
        "sso_identity_links",
        ["org_id", "connection_id", "user_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index(
        "uq_sso_identity_links_org_id_connection_id_user_id", table_name="sso_identity_links"
    )
    op.drop_table("sso_identity_links")
