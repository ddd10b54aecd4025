"""users.status_before_deactivation: an admin's lock outlasts a deactivation

An identity provider may deactivate an account and later activate it again (Entra's
soft delete and restore, Okta's deactivate and reactivate). The activation returned the
account to PROVISIONED or ACTIVE whatever it was before the deactivation, so an account an
admin had locked (``LOCKED_BY_ADMIN``, "lifted only by an admin") or told to choose a new
password (``AWAITING_NEW_PASSWORD``) could sign in again with nobody lifting either. The
status a deactivation suspends is kept here and given back by the activation.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


HELD = ("LOCKED_BY_ADMIN", "AWAITING_NEW_PASSWORD")

users = sa.table(
    "users",
    sa.column("org_id", sa.String),
    sa.column("id", sa.String),
    sa.column("status", sa.String),
    sa.column("status_before_deactivation", sa.String),
)
audit_events = sa.table(
    "audit_events",
    sa.column("org_id", sa.String),
    sa.column("seq", sa.Integer),
    sa.column("action", sa.String),
    sa.column("resource_id", sa.String),
    sa.column("changes", sa.JSON),
)


def upgrade() -> None:
    # Nullable, no default: no table rewrite on PostgreSQL.
    op.add_column("users", sa.Column("status_before_deactivation", sa.String(24), nullable=True))
    # Accounts deactivated already: what their deactivation suspended is in its event (the
    # log's newest ``user.deactivate`` of each, by its index on (org_id, resource_id, seq)).
    bind = op.get_bind()
    deactivated = bind.execute(
        sa.select(users.c.org_id, users.c.id).where(users.c.status == "DEACTIVATED")
    ).all()
    for org_id, user_id in deactivated:
        changes = bind.execute(
            sa.select(audit_events.c.changes)
            .where(
                audit_events.c.org_id == org_id,
                audit_events.c.resource_id == user_id,
                audit_events.c.action == "user.deactivate",
            )
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        ).scalar()
        before = ((changes or {}).get("status") or {}).get("before")
        if before in HELD:
            bind.execute(
                users.update()
                .where(users.c.org_id == org_id, users.c.id == user_id)
                .values(status_before_deactivation=before)
            )


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+ too), as 0039: a batch copy of
    # ``users`` dropped the table, and its foreign keys' ON DELETE CASCADE emptied the tables
    # that refer to it (passwords, their history, console grants, roles, second factors...).
    op.drop_column("users", "status_before_deactivation")
