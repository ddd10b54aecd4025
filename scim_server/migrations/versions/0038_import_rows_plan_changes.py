"""import_rows.plan_changes: the import applies what its preview showed

The console's import re-decided each row against the directory as it was when Import ran,
not as the admin approved it in the preview: a row previewed as an update of an account the
IdP deleted since created a new one, a name change also reactivated an account deactivated
since, a row previewed as a create patched an account the IdP created since. The preview now
keeps, beside ``plan``, the account a row would change (``user_id``, present since 0020,
written by the import only until now) and the attributes it would change (this column, a
JSON list); the import refuses a row whose account or change differs. Rows previewed before
this runs get NULL: an update or unchanged row among them is refused (preview the file
again), never re-decided; a preview is dropped after a day anyway.

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Nullable, no default: no table rewrite on PostgreSQL; SQLite adds it in place.
    op.add_column("import_rows", sa.Column("plan_changes", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("import_rows") as batch:
        batch.drop_column("plan_changes")
