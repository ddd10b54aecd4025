"""users: an index for the license shortage count

Every licenses page, profile and the reports count, per license, the users the
rules want on it but who got no seat (``license_wanted_id``). Without an index
that is a scan of the organization's users per license (55 ms at 100k users on
PostgreSQL, measured by ``python -m bench --only console``).

Revision ID: 0023
Revises: 0017
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_users_org_id_license_wanted_id", "users", ["org_id", "license_wanted_id"])


def downgrade() -> None:
    op.drop_index("ix_users_org_id_license_wanted_id", table_name="users")
