"""audit_signing_keys.signature: a published key is one the server listed

The public keys at ``/.well-known/audit-keys`` are what an auditor trusts an export's or a
checkpoint's Ed25519 signature by. They were every row of ``audit_signing_keys``: anyone
able to write the database could add a key of their own, and an export they forged and
signed with it verified. Each row now carries the server's HMAC of it (the key kept out of
the database, as for the chain's head), and only rows whose HMAC holds are published.

Rows present when this runs get theirs from the server the first time it registers its
key (``signing.register_key``): they were the server's as far as it can tell.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_signing_keys", sa.Column("signature", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_signing_keys") as batch:
        batch.drop_column("signature")
