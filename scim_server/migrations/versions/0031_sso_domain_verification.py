"""sso_email_domains: a domain routes sign-ins only once its owner proved it (DNS TXT record)

Any organization's admin could register any e-mail domain, first come first served: the
admin of one tenant could take contoso.com before Contoso did, and Contoso's people were
then sent to that tenant's IdP by home-realm discovery (and their password sign-ins to
that tenant), while Contoso could never register its own domain. A domain is now claimed
pending, with a token to publish as a TXT record at ``_scim-server-verification.<domain>``;
it discovers, allow-lists and routes nothing until the record is found (or the operator
vouches for it: ``scim-server sso domain verify --without-dns``). Several organizations
may claim a domain; one only may hold it verified: the unique index on ``domain`` becomes
a partial one, on the verified rows.

Rows present when this runs are kept verified (``verified_at = created_at``), so sign-ins
keep working after the upgrade; the operator should review them (CHANGELOG).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import UTCDateTime

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

VERIFIED = sa.text("verified_at IS NOT NULL")


def upgrade() -> None:
    op.add_column("sso_email_domains", sa.Column("verified_at", UTCDateTime(), nullable=True))
    op.add_column(
        "sso_email_domains", sa.Column("verification_token", sa.String(64), nullable=True)
    )
    op.execute("UPDATE sso_email_domains SET verified_at = created_at")
    op.drop_index("uq_sso_email_domains_domain", table_name="sso_email_domains")
    op.create_index(
        "uq_sso_email_domains_domain",
        "sso_email_domains",
        ["domain"],
        unique=True,
        postgresql_where=VERIFIED,
        sqlite_where=VERIFIED,
    )


def downgrade() -> None:
    # Pending claims routed nothing; the global unique index has room for the verified only.
    op.execute("DELETE FROM sso_email_domains WHERE verified_at IS NULL")
    op.drop_index("uq_sso_email_domains_domain", table_name="sso_email_domains")
    op.create_index("uq_sso_email_domains_domain", "sso_email_domains", ["domain"], unique=True)
    with op.batch_alter_table("sso_email_domains") as batch:
        batch.drop_column("verification_token")
        batch.drop_column("verified_at")
