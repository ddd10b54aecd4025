"""console: who may do what in the admin console (console_grants); users.source

``users.source`` (scim, jit, manual) feeds the users dashboard's filter; existing
accounts get it from who wrote their ``user.create`` event, while the log still has it.
``ix_users_org_id_status_id`` serves the dashboard's status filter and sort.

Revision ID: 0017
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import UTCDateTime

revision = "0017"
down_revision = "0016"
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

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=10), nullable=True))
        batch_op.create_index("ix_users_org_id_status_id", ["org_id", "status", "id"], unique=False)
    # A SCIM token wrote it: scim; the sign-in decision (system): jit; a person: manual.
    op.execute(
        """
        UPDATE users SET source = (
            SELECT CASE e.actor_type WHEN 'token' THEN 'scim' WHEN 'system' THEN 'jit'
                   ELSE 'manual' END
            FROM audit_events e
            WHERE e.org_id = users.org_id AND e.action = 'user.create'
              AND e.resource_id = users.id
            ORDER BY e.seq LIMIT 1
        )
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_org_id_status_id")
        batch_op.drop_column("source")
    op.drop_table("console_grants")
