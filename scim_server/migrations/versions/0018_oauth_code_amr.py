"""oauth_codes.amr: how the person signed in, for the id_token's amr claim (RFC 8176)

Codes live a minute; existing ones get none (their id_token has no amr).

Revision ID: 0018
Revises: 0020
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import JSONDoc

revision = "0018"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("amr", JSONDoc, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_codes", schema=None) as batch_op:
        batch_op.drop_column("amr")
