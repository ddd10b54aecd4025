"""credential_schedules.scheduled_by_id: a send "to me" is checked again when it goes out

A console person scheduling an account's credentials to themselves was checked only when
scheduling: if the account gained console roles beyond theirs before the date, the worker
mailed an org admin's new password to a user manager. The worker now checks the
scheduler's console roles at the send, so the row names the scheduler by user id (the
name in ``scheduled_by`` is only what was shown).

Waiting sends "to me" present when this runs name their scheduler by userName only: the
name is resolved here, once. One it no longer finds (renamed, deleted, or an admin API
token's label: the two are not told apart) cannot be checked and fails with a reason to
schedule it again, except the command line's (``scim-server credentials schedule``), which
acts as the organization, as the admin API does from now on (no id).

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None

CLI = "scim-server credentials schedule"
UNKNOWN = (
    "Not sent: scheduled to the admin who set it before the server kept who that was, "
    "and their name no longer finds them. Schedule it again."
)


def upgrade() -> None:
    op.add_column(
        "credential_schedules", sa.Column("scheduled_by_id", sa.String(36), nullable=True)
    )
    op.execute(
        sa.text(
            "UPDATE credential_schedules SET scheduled_by_id = ("
            " SELECT users.id FROM users WHERE users.org_id = credential_schedules.org_id"
            " AND users.user_name = credential_schedules.scheduled_by)"
            " WHERE recipient IS NOT NULL"
        )
    )
    op.execute(
        sa.text(
            "UPDATE credential_schedules SET state = 'failed', last_error = :error,"
            " claimed_by = NULL, lease_expires_at = NULL"
            " WHERE recipient IS NOT NULL AND scheduled_by_id IS NULL AND state = 'scheduled'"
            " AND (scheduled_by IS NULL OR scheduled_by <> :cli)"
        ).bindparams(error=UNKNOWN, cli=CLI)
    )


def downgrade() -> None:
    with op.batch_alter_table("credential_schedules") as batch:
        batch.drop_column("scheduled_by_id")
