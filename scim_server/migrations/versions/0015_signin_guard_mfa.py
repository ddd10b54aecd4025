"""password sign-in: lockout counters, second factors (TOTP, passkeys), recovery codes

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import JSONDoc, UTCDateTime

revision = "0015"
down_revision = "0014"
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
        "account_lockouts",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("failures", JSONDoc, nullable=False),
        sa.Column("locks", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        _user_fk("account_lockouts"),
        sa.PrimaryKeyConstraint("org_id", "user_id", name=op.f("pk_account_lockouts")),
    )
    with op.batch_alter_table("account_lockouts", schema=None) as batch_op:
        batch_op.create_index("ix_account_lockouts_locked_until", ["locked_until"], unique=False)
    op.create_table(
        "mfa_factors",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("credential_id", sa.Text(), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        _user_fk("mfa_factors"),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_mfa_factors")),
    )
    with op.batch_alter_table("mfa_factors", schema=None) as batch_op:
        batch_op.create_index("ix_mfa_factors_org_id_user_id", ["org_id", "user_id"], unique=False)
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        _user_fk("mfa_recovery_codes"),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_mfa_recovery_codes")),
    )
    with op.batch_alter_table("mfa_recovery_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mfa_recovery_codes_org_id_user_id", ["org_id", "user_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("mfa_recovery_codes")
    op.drop_table("mfa_factors")
    op.drop_table("account_lockouts")
