"""contacts: resources of an external system and their availability hours

``contacts.resource_system`` names the external system (a planning tool) a contact is a
resource of; ``contact_availability`` holds its daily hours per ISO-week parity (odd,
even) and weekday, one row per range. ``ix_contacts_org_id_name_key_id`` serves the
console's contact list (keyset pages by name, any kind).

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resource_system", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_contacts_org_id_name_key_id", ["org_id", "name_key", "id"], unique=False
        )
    op.create_table(
        "contact_availability",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("week_parity", sa.String(length=4), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("end_minute", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "week_parity IN ('odd', 'even')", name=op.f("ck_contact_availability_week_parity")
        ),
        sa.CheckConstraint("weekday BETWEEN 1 AND 7", name=op.f("ck_contact_availability_weekday")),
        sa.CheckConstraint(
            "start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute",
            name=op.f("ck_contact_availability_range"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "contact_id"],
            ["contacts.org_id", "contacts.id"],
            name=op.f("fk_contact_availability_org_id_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "org_id",
            "contact_id",
            "week_parity",
            "weekday",
            "start_minute",
            name=op.f("pk_contact_availability"),
        ),
    )


def downgrade() -> None:
    op.drop_table("contact_availability")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_org_id_name_key_id")
        batch_op.drop_column("resource_system")
