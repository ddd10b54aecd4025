"""oauth_codes / oauth_tokens.session_epoch: a password reset ends what the provider issued

A password set or removed ends the account's sign-in sessions (0030, users.session_epoch),
but a code issued in an ended session could still be redeemed, and an access token issued
before the reset kept answering at userinfo for up to SCIM_OAUTH_ACCESS_TOKEN_SECONDS.
Each code and token now carries the epoch of the sign-in it came from and stops once the
account's epoch moves on. Rows present when this runs get 0: they keep working for an
account whose password never changed, and the others (a code lives a minute, a token an
hour) are refused, as they may come from a session a reset ended.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

TABLES = ("oauth_codes", "oauth_tokens")


def upgrade() -> None:
    # A constant default: no table rewrite on PostgreSQL (11+); SQLite adds it in place.
    for table in TABLES:
        op.add_column(
            table,
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default=sa.text("0")),
        )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("session_epoch")
