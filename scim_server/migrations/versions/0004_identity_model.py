"""identity model: contacts, licenses, roles, rule sets, user status

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from scim_server.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "name_key",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("given_name", sa.Text(), nullable=True),
        sa.Column("family_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column(
            "email_key",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            nullable=True,
        ),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("department", sa.Text(), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("organization_contact_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id", "organization_contact_id"],
            ["contacts.org_id", "contacts.id"],
            name="fk_contacts_org_id_organization_contact_id_contacts",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_contacts_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_contacts")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index("ix_contacts_org_id_email_key", ["org_id", "email_key"], unique=False)
        batch_op.create_index(
            "ix_contacts_org_id_external_id", ["org_id", "external_id"], unique=False
        )
        batch_op.create_index(
            "ix_contacts_org_id_kind_name_key", ["org_id", "kind", "name_key"], unique=False
        )

    op.create_table(
        "licenses",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "name_key",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("seat_limit", sa.Integer(), nullable=True),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_licenses_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_licenses")),
    )
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.create_index("uq_licenses_org_id_name_key", ["org_id", "name_key"], unique=True)

    op.create_table(
        "roles",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "name_key",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_roles_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_roles")),
    )
    with op.batch_alter_table("roles", schema=None) as batch_op:
        batch_op.create_index("uq_roles_org_id_name_key", ["org_id", "name_key"], unique=True)

    op.create_table(
        "rule_sets",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("activated_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_rule_sets_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_rule_sets")),
    )
    with op.batch_alter_table("rule_sets", schema=None) as batch_op:
        batch_op.create_index("ix_rule_sets_org_id_active", ["org_id", "active"], unique=False)

    op.create_table(
        "user_roles",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("role_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("rule", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id", "role_id"],
            ["roles.org_id", "roles.id"],
            name=op.f("fk_user_roles_org_id_role_id_roles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "user_id"],
            ["users.org_id", "users.id"],
            name=op.f("fk_user_roles_org_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "org_id", "user_id", "role_id", "source", name=op.f("pk_user_roles")
        ),
    )
    with op.batch_alter_table("user_roles", schema=None) as batch_op:
        batch_op.create_index("ix_user_roles_org_id_role_id", ["org_id", "role_id"], unique=False)

    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "settings",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default="{}",
            )
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("username", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "username_key",
                sa.String().with_variant(sa.String(collation="C"), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("status", sa.String(length=24), nullable=False, server_default="PROVISIONED")
        )
        batch_op.add_column(sa.Column("last_login_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("license_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("license_source", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("license_rule", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("license_wanted_id", sa.String(length=36), nullable=True))
        batch_op.create_index("ix_users_org_id_contact_id", ["org_id", "contact_id"], unique=False)
        batch_op.create_index("ix_users_org_id_license_id", ["org_id", "license_id"], unique=False)
        batch_op.create_index(
            "uq_users_org_id_username_key", ["org_id", "username_key"], unique=True
        )
        batch_op.create_foreign_key(
            "fk_users_org_id_license_id_licenses",
            "licenses",
            ["org_id", "license_id"],
            ["org_id", "id"],
        )
        batch_op.create_foreign_key(
            "fk_users_org_id_contact_id_contacts",
            "contacts",
            ["org_id", "contact_id"],
            ["org_id", "id"],
        )

    _backfill()


def _backfill() -> None:
    """Existing users: status from `active`, a person contact each, username = userName."""
    import unicodedata
    import uuid

    def fold(value: str) -> str:
        return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())

    conn = op.get_bind()
    conn.execute(sa.text("UPDATE users SET status = 'DEACTIVATED' WHERE active = :f"), {"f": False})
    rows = conn.execute(
        sa.text(
            "SELECT org_id, id, user_name, external_id, display_name, created_at FROM users WHERE contact_id IS NULL"
        )
    ).all()
    for org_id, user_id, user_name, external_id, display_name, created_at in rows:
        contact_id = str(uuid.uuid4())
        name = display_name or user_name
        conn.execute(
            sa.text(
                "INSERT INTO contacts (org_id, id, kind, name, name_key, external_id, created_at, updated_at) "
                "VALUES (:o, :i, 'person', :n, :k, :e, :c, :c)"
            ),
            {
                "o": org_id,
                "i": contact_id,
                "n": name,
                "k": fold(name),
                "e": external_id,
                "c": created_at,
            },
        )
        conn.execute(
            sa.text(
                "UPDATE users SET contact_id = :c, username = :u, username_key = :k WHERE org_id = :o AND id = :i"
            ),
            {"c": contact_id, "u": user_name, "k": fold(user_name), "o": org_id, "i": user_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("fk_users_org_id_contact_id_contacts", type_="foreignkey")
        batch_op.drop_constraint("fk_users_org_id_license_id_licenses", type_="foreignkey")
        batch_op.drop_index("uq_users_org_id_username_key")
        batch_op.drop_index("ix_users_org_id_license_id")
        batch_op.drop_index("ix_users_org_id_contact_id")
        batch_op.drop_column("license_wanted_id")
        batch_op.drop_column("license_rule")
        batch_op.drop_column("license_source")
        batch_op.drop_column("license_id")
        batch_op.drop_column("last_login_at")
        batch_op.drop_column("status")
        batch_op.drop_column("username_key")
        batch_op.drop_column("username")
        batch_op.drop_column("contact_id")

    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("settings")

    with op.batch_alter_table("user_roles", schema=None) as batch_op:
        batch_op.drop_index("ix_user_roles_org_id_role_id")

    op.drop_table("user_roles")
    with op.batch_alter_table("rule_sets", schema=None) as batch_op:
        batch_op.drop_index("ix_rule_sets_org_id_active")

    op.drop_table("rule_sets")
    with op.batch_alter_table("roles", schema=None) as batch_op:
        batch_op.drop_index("uq_roles_org_id_name_key")

    op.drop_table("roles")
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.drop_index("uq_licenses_org_id_name_key")

    op.drop_table("licenses")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_org_id_kind_name_key")
        batch_op.drop_index("ix_contacts_org_id_external_id")
        batch_op.drop_index("ix_contacts_org_id_email_key")

    op.drop_table("contacts")
