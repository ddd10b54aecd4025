"""mail_outbox: an index on (org_id, user_id, created_at)

Credentials mail is checked just before it goes for newer credentials of the same account,
and new credentials cancel the account's earlier unsent ones (``services.mail_delivery``,
``services.credentials``): both read an organization's mail by account. With only
(org_id, created_at), each read scanned every later mail of the organization: a welcome
sent to 20,000 people at once read tens of millions of rows.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None

NAME = "ix_mail_outbox_org_id_user_id_created_at"


def upgrade() -> None:
    op.create_index(NAME, "mail_outbox", ["org_id", "user_id", "created_at"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="mail_outbox")
