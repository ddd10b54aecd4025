"""webhook_subscriptions.secret, previous_secret: text, to hold the secrets sealed

Webhook signing secrets (``whsec_...``) were stored in clear: anyone with a dump or a
backup could sign messages the customers' receivers trust. They are now stored sealed
(``services.webhook_secrets``: ``enc:v1:`` + AES-256-GCM, longer than the secret), which
varchar(100) cannot hold on PostgreSQL. On PostgreSQL varchar to text rewrites nothing;
SQLite, which ignores the length, copies the table (``batch_alter_table``).

Rows already there keep their clear secrets, which still sign: the next write of the
subscription seals them, or ``scim-server sso encrypt-secrets`` all at once.

Going back to 0039 is refused while a sealed secret is stored: the column would not hold
it, and the release before this one would sign with the ciphertext itself.

Revision ID: 0040
Revises: 0039
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0040"
down_revision = "0039"
branch_labels = None
depends_on = None

COLUMNS = (("secret", False), ("previous_secret", True))

subscriptions = sa.table(
    "webhook_subscriptions",
    sa.column("secret", sa.Text),
    sa.column("previous_secret", sa.Text),
)


def upgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions") as batch:
        for name, nullable in COLUMNS:
            batch.alter_column(
                name, existing_type=sa.String(100), type_=sa.Text(), existing_nullable=nullable
            )


def downgrade() -> None:
    sealed = sa.or_(
        subscriptions.c.secret.like("enc:%"), subscriptions.c.previous_secret.like("enc:%")
    )
    count = op.get_bind().scalar(
        sa.select(sa.func.count()).select_from(subscriptions).where(sealed)
    )
    if count:
        raise RuntimeError(
            f"{count} webhook subscription(s) hold sealed secrets (enc:v1:...): the columns "
            "before 0040 cannot hold them, and the release before it cannot sign with them. Delete "
            "those webhook subscriptions (create them again after going back, with new "
            "secrets for their receivers) before downgrading to 0039."
        )
    with op.batch_alter_table("webhook_subscriptions") as batch:
        for name, nullable in COLUMNS:
            batch.alter_column(
                name, existing_type=sa.Text(), type_=sa.String(100), existing_nullable=nullable
            )
