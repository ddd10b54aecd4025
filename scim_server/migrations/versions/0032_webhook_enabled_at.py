"""webhook_subscriptions.enabled_at: when a subscription was last enabled

A failed delivery is retried for 3 days from its first attempt. A delivery first tried
before its subscription was disabled (for failing, or by an admin) and older than 3 days
when the subscription was enabled again got one attempt and was then failed; its window
now starts at the later of its first attempt and ``enabled_at``. Rows present when this
runs have none (their deliveries keep the window from their first attempt) until they are
next enabled again.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import UTCDateTime

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_subscriptions", sa.Column("enabled_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.drop_column("enabled_at")
