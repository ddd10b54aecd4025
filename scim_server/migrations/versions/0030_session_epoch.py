"""users.session_epoch: a password change ends the account's sign-in sessions

A sign-in session is a signed cookie: it said who signed in and when, and the account's
status was checked again on each use, but nothing ended it when the password changed. An
intruder signed in with a leaked password stayed signed in (console, /sso/security, the
OIDC provider) after the owner reset it, for up to SCIM_SSO_SESSION_SECONDS. Each session
now carries the account's epoch at its sign-in; a password set or removed moves the epoch
on, and a session of an older epoch no longer says who is signed in.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: no table rewrite on PostgreSQL (11+); SQLite adds it in place.
    op.add_column(
        "users",
        sa.Column("session_epoch", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+ too), as 0039: a batch copy of
    # ``users`` dropped the table, and its foreign keys' ON DELETE CASCADE emptied the tables
    # that refer to it (passwords, their history, console grants, roles, second factors...).
    op.drop_column("users", "session_epoch")
