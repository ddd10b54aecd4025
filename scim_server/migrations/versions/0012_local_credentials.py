"""local credentials: passwords (argon2id), password history, single-use mailed links

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import UTCDateTime

revision = "0012"
down_revision = "0011"
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
        "user_passwords",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("temporary", sa.Boolean(), nullable=False),
        sa.Column("must_change", sa.Boolean(), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        _user_fk("user_passwords"),
        sa.PrimaryKeyConstraint("org_id", "user_id", name=op.f("pk_user_passwords")),
    )
    op.create_table(
        "password_history",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _user_fk("password_history"),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_password_history")),
    )
    with op.batch_alter_table("password_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_password_history_org_id_user_id_created_at",
            ["org_id", "user_id", "created_at"],
            unique=False,
        )
    op.create_table(
        "credential_tokens",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_credential_tokens_org_id_organizations"),
            ondelete="CASCADE",
        ),
        _user_fk("credential_tokens"),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_credential_tokens")),
    )
    with op.batch_alter_table("credential_tokens", schema=None) as batch_op:
        batch_op.create_index("uq_credential_tokens_token_hash", ["token_hash"], unique=True)
        batch_op.create_index(
            "ix_credential_tokens_org_id_user_id", ["org_id", "user_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("credential_tokens")
    op.drop_table("password_history")
    op.drop_table("user_passwords")
