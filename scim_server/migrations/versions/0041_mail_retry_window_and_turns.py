"""mail_outbox: first_attempt_at, lost_leases, for_admin; indexes to take organizations in turn

A mail was abandoned after 5 attempts (two and a half minutes of a relay's restart); a
transient failure is now retried for a day from the first attempt (``first_attempt_at``).
The guard against a mail whose workers keep dying counted attempts; it now counts the
claims that lost their lease (``lost_leases``), as webhook deliveries do.

Credentials queued for an account's address are cancelled when the account no longer has
that address; those an admin sent to themselves ("to me") are not: ``for_admin`` tells
them apart. Rows present when this runs have none (NULL): their address is not checked.

The worker sent mail, and credentials sends, first in first out across organizations: one
organization's backlog held back another's password reset. It now takes organizations in
turn, each one's oldest due row first, which needs each organization's waiting rows in
order: a partial index on mail_outbox (only mail still to send, not the history of what
went) and one on credential_schedules.

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import UTCDateTime

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None

WAITING = sa.text("state IN ('queued', 'failed')")
MAIL_INDEX = "ix_mail_outbox_waiting_org_id_next_attempt_at"
SCHEDULE_INDEX = "ix_credential_schedules_org_id_state_send_at"


def upgrade() -> None:
    op.add_column("mail_outbox", sa.Column("first_attempt_at", UTCDateTime(), nullable=True))
    op.add_column(
        "mail_outbox",
        sa.Column("lost_leases", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("mail_outbox", sa.Column("for_admin", sa.Boolean(), nullable=True))
    op.create_index(
        MAIL_INDEX,
        "mail_outbox",
        ["org_id", "next_attempt_at"],
        postgresql_where=WAITING,
        sqlite_where=WAITING,
    )
    op.create_index(SCHEDULE_INDEX, "credential_schedules", ["org_id", "state", "send_at"])


def downgrade() -> None:
    op.drop_index(SCHEDULE_INDEX, table_name="credential_schedules")
    op.drop_index(MAIL_INDEX, table_name="mail_outbox")
    with op.batch_alter_table("mail_outbox") as batch:
        batch.drop_column("for_admin")
        batch.drop_column("lost_leases")
        batch.drop_column("first_attempt_at")
