"""sso: connections, e-mail domains, flow state, replay cache, sign-in records

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from scim_server.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
KEY_TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"],
        ["organizations.id"],
        name=f"fk_{table}_org_id_organizations",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "sso_connections",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("jit_enabled", sa.Boolean(), nullable=False),
        sa.Column("idp_initiated_allowed", sa.Boolean(), nullable=False),
        sa.Column("idp_entity_id", sa.Text(), nullable=True),
        sa.Column("idp_sso_url", sa.Text(), nullable=True),
        sa.Column("idp_certificates", JSON_DOC, nullable=False),
        sa.Column("metadata_url", sa.Text(), nullable=True),
        sa.Column("sp_entity_id", sa.Text(), nullable=True),
        sa.Column("acs_path", sa.String(length=200), nullable=True),
        sa.Column("sp_private_key", sa.Text(), nullable=True),
        sa.Column("sp_certificate", sa.Text(), nullable=True),
        sa.Column("want_encrypted_assertions", sa.Boolean(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=True),
        sa.Column("client_id", sa.Text(), nullable=True),
        sa.Column("client_secret", sa.Text(), nullable=True),
        sa.Column("scopes", sa.Text(), nullable=True),
        sa.Column("discovery", JSON_DOC, nullable=True),
        sa.Column("discovery_fetched_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _org_fk("sso_connections"),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_sso_connections"),
    )
    op.create_index("uq_sso_connections_acs_path", "sso_connections", ["acs_path"], unique=True)

    op.create_table(
        "sso_email_domains",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("domain", KEY_TEXT, nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _org_fk("sso_email_domains"),
        sa.PrimaryKeyConstraint("org_id", "domain", name="pk_sso_email_domains"),
    )
    op.create_index("uq_sso_email_domains_domain", "sso_email_domains", ["domain"], unique=True)

    op.create_table(
        "sso_states",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("data", JSON_DOC, nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _org_fk("sso_states"),
        sa.PrimaryKeyConstraint("id", name="pk_sso_states"),
    )
    op.create_index("ix_sso_states_expires_at", "sso_states", ["expires_at"])

    op.create_table(
        "sso_replay",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("assertion_id", sa.String(length=256), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        _org_fk("sso_replay"),
        sa.PrimaryKeyConstraint("org_id", "connection_id", "assertion_id", name="pk_sso_replay"),
    )
    op.create_index("ix_sso_replay_expires_at", "sso_replay", ["expires_at"])

    op.create_table(
        "sign_in_records",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=True),
        sa.Column("protocol", sa.String(length=8), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("data", JSON_DOC, nullable=True),
        _org_fk("sign_in_records"),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_sign_in_records"),
    )
    op.create_index("ix_sign_in_records_org_id_at", "sign_in_records", ["org_id", "at"])
    op.create_index(
        "ix_sign_in_records_org_id_connection_id_at",
        "sign_in_records",
        ["org_id", "connection_id", "at"],
    )


def downgrade() -> None:
    op.drop_table("sign_in_records")
    op.drop_table("sso_replay")
    op.drop_table("sso_states")
    op.drop_table("sso_email_domains")
    op.drop_table("sso_connections")
