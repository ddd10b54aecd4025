"""sso_ended_sessions: a sign-out ends the session on the server, for a copy of the cookie too

The sign-in session is a signed cookie. Signing out cleared it in that browser only: a copy
taken before (malware, a proxy log, a shared machine's browser profile) kept working until
SCIM_SSO_SESSION_SECONDS (12 hours). Each session now carries a random id; a sign-out
records it here until the session would have expired anyway, and each use of a session
reads this table by primary key. Sessions started before the upgrade carry no id and are
refused: each person signs in once more.

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import UTCDateTime

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_ended_sessions",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_sso_ended_sessions_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_sso_ended_sessions"),
    )
    op.create_index("ix_sso_ended_sessions_expires_at", "sso_ended_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_sso_ended_sessions_expires_at", table_name="sso_ended_sessions")
    op.drop_table("sso_ended_sessions")
