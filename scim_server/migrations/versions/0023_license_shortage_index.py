"""users: indexes for the license shortage count and the dashboard's sorts; trigram search

Every licenses page, profile and the reports count, per license, the users the
rules want on it but who got no seat (``license_wanted_id``). Without an index
that is a scan of the organization's users per license (55 ms at 100k users on
PostgreSQL, measured by ``python -m bench --only console``).

The users dashboard sorted by last sign-in sorted every user of the organization
for each page (85 ms at 100k on PostgreSQL): an index on it lets a page be read
in order (sorted by name, 150 ms, is served by 0019's contacts (org_id, name_key, id)).

On PostgreSQL, where the pg_trgm extension can be created (it ships with
PostgreSQL's contrib and is a trusted extension from PostgreSQL 13: the
database's owner may create it), GIN trigram indexes on the four keys the
users dashboard searches by substring (``services.user_search``). Without
them a search scans every user and contact of the organization (about 0.2 s
per keystroke at 100k users); with them it reads the matching rows. They are
declared here only, not in the models: a database where pg_trgm is not
allowed still migrates (the search stays correct, only slower), and
``TRIGRAM_INDEXES`` tells the schema comparison to expect either.

Revision ID: 0023
Revises: 0019
Create Date: 2026-12-05
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from scim_server.db import TRIGRAM_INDEXES

revision = "0023"
down_revision = "0019"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)


_WHERE_TRGM = (
    "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
    "WHERE e.extname = 'pg_trgm'"
)


def _pg_trgm_schema(bind: sa.engine.Connection) -> str | None:
    """The schema pg_trgm lives in, creating it in ``public`` if it is missing and allowed.

    It is database-wide: in ``public`` it outlives a schema of this application's being
    dropped (the tests make one per run), and the indexes name its operator class by schema.
    """
    found = bind.execute(sa.text(_WHERE_TRGM)).scalar()
    if found is not None:
        return str(found)
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        log.warning(
            "pg_trgm could not be created (%s); the users dashboard's search will scan. "
            "A superuser can run CREATE EXTENSION pg_trgm and then `scim-server db upgrade`.",
            exc.orig,
        )
        return None
    savepoint.commit()
    return str(bind.execute(sa.text(_WHERE_TRGM)).scalar())


def upgrade() -> None:
    op.create_index("ix_users_org_id_license_wanted_id", "users", ["org_id", "license_wanted_id"])
    op.create_index("ix_users_org_id_last_login_at", "users", ["org_id", "last_login_at"])
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = _pg_trgm_schema(bind)
    if schema is None:
        return
    ops = f"{bind.dialect.identifier_preparer.quote_schema(schema)}.gin_trgm_ops"
    for name, (table, column) in TRIGRAM_INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({column} {ops})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in TRIGRAM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_index("ix_users_org_id_last_login_at", table_name="users")
    op.drop_index("ix_users_org_id_license_wanted_id", table_name="users")
