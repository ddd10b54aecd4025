"""webhook_deliveries: an index to take organizations in turn

The worker claimed due deliveries first in first out across organizations: one
organization's receiver that never answers (each attempt its whole timeout) kept every
other organization's webhooks waiting, pass after pass, until its subscription was
disabled days later. It now takes organizations in turn, as mail and credentials sends do,
which needs each organization's pending deliveries in order: a partial index (only the
deliveries still to send, not the log of what went).

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0043"
down_revision = "0042"
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")
INDEX = "ix_webhook_deliveries_pending_org_id_next_attempt_at"


def upgrade() -> None:
    op.create_index(
        INDEX,
        "webhook_deliveries",
        ["org_id", "next_attempt_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="webhook_deliveries")
