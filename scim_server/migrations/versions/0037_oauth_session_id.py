"""oauth_codes / oauth_tokens.session_id: a sign-out ends what the provider issued

A sign-out records the session's random id in sso_ended_sessions (0035), but a code issued
in that session could still be redeemed, and an access token it gave kept answering at
userinfo for up to SCIM_OAUTH_ACCESS_TOKEN_SECONDS. Each code and token now carries the id
of the sign-in session it came from, and is refused once that id is recorded as ended (one
read by primary key at each use). Rows present when this runs get NULL: they keep working
until they expire, as before (a code lives a minute, a token an hour).

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None

TABLES = ("oauth_codes", "oauth_tokens")


def upgrade() -> None:
    # Nullable, no default: no table rewrite on PostgreSQL; SQLite adds it in place.
    for table in TABLES:
        op.add_column(table, sa.Column("session_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("session_id")
