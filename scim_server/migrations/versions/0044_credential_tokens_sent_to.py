"""credential_tokens.sent_to: a mailed link works only while the account has the address

A reset or activation link mailed to an account's address kept working after the IdP or
an admin changed that address (a typo corrected, a mailbox given to someone else):
whoever read the old mailbox could choose the account's password. Each link now records
the account's address it was mailed to (``sent_to``), and its use is refused once the
account no longer has it. A link mailed to an admin ("to myself") records none.

Links present when this runs take the recipient of the mail that carried them: the first
link mail of their account and purpose queued at or after the link was made (the two are
written in one transaction, the link first; the next link of that purpose ends this one),
when that mail went to the account (``for_admin`` false). Otherwise (an admin's mail, a
mail from before the outbox kept who it was for, or one already purged) NULL: such a link
is not tied to an address and lasts until it is used or expires, as before.

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0044"
down_revision = "0043"
branch_labels = None
depends_on = None

TOKENS = sa.table(
    "credential_tokens",
    sa.column("org_id"),
    sa.column("user_id"),
    sa.column("purpose"),
    sa.column("created_at"),
    sa.column("used_at"),
    sa.column("sent_to"),
)
MAIL = sa.table(
    "mail_outbox",
    sa.column("org_id"),
    sa.column("user_id"),
    sa.column("kind"),
    sa.column("recipient"),
    sa.column("for_admin", sa.Boolean),
    sa.column("created_at"),
).alias("carried")


def upgrade() -> None:
    # Nullable, no default: no table rewrite on PostgreSQL; SQLite adds it in place.
    op.add_column("credential_tokens", sa.Column("sent_to", sa.String(length=320), nullable=True))
    kind = sa.case((TOKENS.c.purpose == "activation", "activation_link"), else_="reset_link")
    carried_to = (
        sa.select(sa.case((MAIL.c.for_admin == sa.false(), MAIL.c.recipient), else_=sa.null()))
        .where(
            MAIL.c.org_id == TOKENS.c.org_id,
            MAIL.c.user_id == TOKENS.c.user_id,
            MAIL.c.kind == kind,
            MAIL.c.created_at >= TOKENS.c.created_at,
        )
        .order_by(MAIL.c.created_at)
        .limit(1)
        .scalar_subquery()
    )
    # Only the links still unused: a used or ended one opens nothing either way.
    op.execute(TOKENS.update().where(TOKENS.c.used_at.is_(None)).values(sent_to=carried_to))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+ too), as 0042.
    op.drop_column("credential_tokens", "sent_to")
