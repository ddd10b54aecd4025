"""The console's import preview as a worker job: the uploaded file, each row's plan

``import_uploads`` keeps an uploaded spreadsheet's bytes (never a file on a node's
disk) from the upload request until the worker has read it into ``import_rows``
(the ``users.import.preview`` job), then it is deleted. ``import_rows.plan`` and
``plan_reason`` are what the preview said each row would do; ``action`` and
``reason`` stay what the import did. A partial index lists a preview's errors in
line order without reading its other rows.

Revision ID: 0025
Revises: 0021
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_uploads",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id", "job_id"],
            ["jobs.org_id", "jobs.id"],
            name=op.f("fk_import_uploads_org_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "job_id", name=op.f("pk_import_uploads")),
    )
    with op.batch_alter_table("import_rows") as batch:
        batch.add_column(sa.Column("plan", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("plan_reason", sa.Text(), nullable=True))
    op.create_index(
        "ix_import_rows_plan_errors",
        "import_rows",
        ["org_id", "job_id", "line"],
        postgresql_where=sa.text("plan = 'error'"),
        sqlite_where=sa.text("plan = 'error'"),
    )


def downgrade() -> None:
    op.drop_index("ix_import_rows_plan_errors", table_name="import_rows")
    with op.batch_alter_table("import_rows") as batch:
        batch.drop_column("plan_reason")
        batch.drop_column("plan")
    op.drop_table("import_uploads")
