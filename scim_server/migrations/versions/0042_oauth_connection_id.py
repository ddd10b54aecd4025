"""oauth_codes / oauth_tokens.connection_id, sso_connections.disabled_at: a connection's end
ends what was issued through it, and a re-enabled one revives nothing

A sign-in session made through an SSO connection ends once an admin disables or deletes the
connection (a partner's IdP found compromised), but the OIDC provider's codes and access
tokens issued in such a session did not know the connection: a token kept answering at
userinfo for up to SCIM_OAUTH_ACCESS_TOKEN_SECONDS, a code could still be redeemed. Each
code and token now carries the connection of its session (``connection_id``; a token also
its session's sign-in time, ``auth_time``, as the code has), checked at each use by the
connection's primary key. Rows present when this runs get NULL: as a password sign-in's,
they are not checked against a connection and last until they expire (a minute, an hour).

Enabling a disabled connection again brought back every session, code and token it had
issued and that had not otherwise expired, those of the compromise included. The connection
now keeps the moment it was last disabled (``disabled_at``, kept when it is enabled again):
it vouches only for sign-ins after it. Connections present get NULL (never disabled since).

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import UTCDateTime

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None

TABLES = ("oauth_codes", "oauth_tokens")


def upgrade() -> None:
    # Nullable, no default: no table rewrite on PostgreSQL; SQLite adds them in place.
    for table in TABLES:
        op.add_column(table, sa.Column("connection_id", sa.String(length=36), nullable=True))
    op.add_column("oauth_tokens", sa.Column("auth_time", sa.Integer(), nullable=True))
    op.add_column("sso_connections", sa.Column("disabled_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+ too), as 0039: a batch copy of
    # ``sso_connections`` would drop the table, and the ON DELETE CASCADE of
    # ``sso_identity_links`` would delete every identity link with it.
    op.drop_column("sso_connections", "disabled_at")
    op.drop_column("oauth_tokens", "auth_time")
    for table in TABLES:
        op.drop_column(table, "connection_id")
