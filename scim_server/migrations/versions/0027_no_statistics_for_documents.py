"""PostgreSQL: no planner statistics for the stored documents

ANALYZE samples up to 30,000 rows of a table and builds statistics for every column.
For the JSON documents a bulk change writes (a user's SCIM document, an audit event's
changes and explanation, a product event's payload) that is much of its time (a
100,000-user organization, ANALYZE without them: ``audit_events`` 0.79 -> 0.21 s,
``users`` 0.58 -> 0.47 s, ``events`` 0.22 -> 0.09 s), and what it builds is never
used: no query selects by these columns (they are read by key, with their rows), and
statistics of a whole JSON value say nothing about an expression over its parts. The
refreshes during a bulk change (``services.table_stats``: ``rules apply``, an import,
an initial sync) and autovacuum's own then sample only the columns the planner uses.

A statistics target of 0 leaves the column out of ANALYZE. SQLite has no such setting.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

# Large, written in bulk, never in a WHERE, ORDER BY or GROUP BY.
DOCUMENTS = (
    ("users", "data"),
    ("audit_events", "changes"),
    ("audit_events", "explanation"),
    ("events", "data"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in DOCUMENTS:
            op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET STATISTICS 0')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in DOCUMENTS:
            # -1: the default (default_statistics_target).
            op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET STATISTICS -1')
