"""credential delivery: scheduled credentials sends, the record of sends; the old SCIM hash goes

Revision ID: 0016
Revises: 0012
Create Date: 2026-12-05

``users.password_hash`` (a werkzeug hash of a SCIM ``password``) is dropped: a
password from SCIM is now an argon2id hash in ``user_passwords``, checked
against the organization's policy, and no second copy is kept anywhere.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id", "user_id"],
        ["users.org_id", "users.id"],
        name=op.f(f"fk_{table}_org_id_user_id_users"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "credential_schedules",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("send_at", UTCDateTime(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("scheduled_by", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        _user_fk("credential_schedules"),
        sa.PrimaryKeyConstraint("org_id", "user_id", name=op.f("pk_credential_schedules")),
    )
    with op.batch_alter_table("credential_schedules", schema=None) as batch_op:
        batch_op.create_index(
            "ix_credential_schedules_state_send_at", ["state", "send_at"], unique=False
        )
    op.create_table(
        "credential_sends",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("mail_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _user_fk("credential_sends"),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_credential_sends")),
    )
    with op.batch_alter_table("credential_sends", schema=None) as batch_op:
        batch_op.create_index(
            "ix_credential_sends_org_id_user_id_created_at",
            ["org_id", "user_id", "created_at"],
            unique=False,
        )
    # A plain ALTER TABLE .. DROP COLUMN (SQLite 3.35+): never a batch copy of `users`,
    # whose DROP would cascade to every table that references it.
    op.drop_column("users", "password_hash")


def downgrade() -> None:
    op.add_column("users", sa.Column("password_hash", sa.Text(), nullable=True))
    op.drop_table("credential_sends")
    op.drop_table("credential_schedules")
