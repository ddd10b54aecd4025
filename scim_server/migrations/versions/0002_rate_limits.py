"""rate limits: per-organization override and the shared per-token counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True))
    op.create_table(
        "rate_limit_windows",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("window_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_rate_limit_windows")),
    )
    with op.batch_alter_table("rate_limit_windows", schema=None) as batch_op:
        batch_op.create_index("ix_rate_limit_windows_window_start", ["window_start"], unique=False)


def downgrade() -> None:
    op.drop_table("rate_limit_windows")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("rate_limit_per_minute")
