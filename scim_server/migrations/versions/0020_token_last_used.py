"""tokens: last_used_at; import_rows (a console import's rows, done by the worker)

``scim_tokens.last_used_at``: when a token last authenticated a request, written at
most once a minute per token (``services.token_usage.note_use``). ``import_rows``: the
rows of a spreadsheet uploaded in the console, kept with their ``users.import`` job and
each row's outcome (``user_import.jobs``).

Revision ID: 0020
Revises: 0023
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scim_server.db import JSONDoc, UTCDateTime

revision = "0020"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scim_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_used_at", UTCDateTime(), nullable=True))
    op.create_table(
        "import_rows",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("line", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("values", JSONDoc, nullable=False),
        sa.Column("action", sa.String(length=10), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id", "job_id"],
            ["jobs.org_id", "jobs.id"],
            name=op.f("fk_import_rows_org_id_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "job_id", "line", name=op.f("pk_import_rows")),
    )


def downgrade() -> None:
    op.drop_table("import_rows")
    with op.batch_alter_table("scim_tokens", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
