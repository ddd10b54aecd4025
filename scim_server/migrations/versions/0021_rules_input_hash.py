"""users.rules_input_hash: what the mapping rules last read for the user, hashed

``scim-server rules apply`` skips a user whose hash is unchanged (same rules,
same attributes and groups, same license, rule roles and contact fields), so a
re-apply with nothing to change reads and hashes instead of re-evaluating and
writing. NULL (every existing user) means "evaluate on the next apply".

Revision ID: 0021
Revises: 0018
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("rules_input_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+ too), as 0039: a batch copy of
    # ``users`` dropped the table, and its foreign keys' ON DELETE CASCADE emptied the tables
    # that refer to it (passwords, their history, console grants, roles, second factors...).
    op.drop_column("users", "rules_input_hash")
