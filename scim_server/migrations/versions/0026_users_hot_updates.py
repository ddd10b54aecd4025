"""users: room for HOT updates; the license shortage index only where one is wanted

A PATCH that changes none of the users table's indexed columns (title, name, emails,
phone numbers: the document and the contact) may update the row in place on its
page (a heap-only tuple, HOT): no new entry in any of its eleven indexes, two of
them GIN trigram indexes. PostgreSQL can only do so when the page has room for the
new version; users' rows are about 1 kB, and with the default fillfactor (100) a
page filled by creates had none, so more than half of such updates wrote an entry
into every index (``bench.write_cost`` on PostgreSQL: 44 % HOT). A fillfactor of 80
leaves a version's room in every new page; pages already full get it as their rows
move (it applies to pages filled from now on, no table rewrite here).

``ix_users_org_id_license_wanted_id`` is read by equality only (the shortage of one
license), and most users wait for no license: a partial index of the users that do
means a create, or an update that moves the row, writes no entry for the others.

PostgreSQL only for the fillfactor (SQLite has none); the index on both.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

WANTED = sa.text("license_wanted_id IS NOT NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE users SET (fillfactor = 80)")
    op.drop_index("ix_users_org_id_license_wanted_id", table_name="users")
    op.create_index(
        "ix_users_org_id_license_wanted_id",
        "users",
        ["org_id", "license_wanted_id"],
        postgresql_where=WANTED,
        sqlite_where=WANTED,
    )


def downgrade() -> None:
    op.drop_index("ix_users_org_id_license_wanted_id", table_name="users")
    op.create_index("ix_users_org_id_license_wanted_id", "users", ["org_id", "license_wanted_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE users RESET (fillfactor)")
