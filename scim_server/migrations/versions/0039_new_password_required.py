"""users.new_password_required: an admin's demand for a new password outlasts a lock

An admin's ``require_new_password`` (``AWAITING_NEW_PASSWORD``) was only a status, so any
status that replaced it dropped it: a lock or an automatic lock (ten wrong passwords, which
anyone can type) ended at ACTIVE or PROVISIONED, and a stranger's /sso/forgot request moved
it to RECOVERY, where the old password signed straight in and SSO worked again. The demand
is now kept beside the status and lifted only by a new password (or an admin's
``complete_recovery``); a lock, an automatic lock, a deactivation or a reset link asked for
leave it in place.

Accounts awaiting a new password now, or deactivated while awaiting one, get it. Accounts
locked, automatically locked, deactivated while locked, or in RECOVERY get it when their log
shows that what put them there began from ``AWAITING_NEW_PASSWORD`` (the newest status
events, by the index on (org_id, resource_id, seq); a purged log gives nothing).

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None

AWAITING = "AWAITING_NEW_PASSWORD"
# Statuses that may hide a demand the status no longer shows.
OVERRIDING = ("LOCKED_BY_ADMIN", "AUTO_LOCKED", "DEACTIVATED", "RECOVERY")
# The moves that put a status over another, and the statuses they go on from.
COVERING = (
    "user.lock",
    "user.auto_lock",
    "user.deactivate",
    "user.activate",
    "user.start_recovery",
)
PASSED_THROUGH = ("LOCKED_BY_ADMIN", "AUTO_LOCKED", "DEACTIVATED")
STATUS_ACTIONS = (
    *COVERING,
    "user.unlock",
    "user.require_new_password",
    "user.complete_recovery",
    "user.first_sign_in",
)
MAX_STEPS = 20

users = sa.table(
    "users",
    sa.column("org_id", sa.String),
    sa.column("id", sa.String),
    sa.column("status", sa.String),
    sa.column("status_before_deactivation", sa.String),
    sa.column("new_password_required", sa.Boolean),
)
audit_events = sa.table(
    "audit_events",
    sa.column("org_id", sa.String),
    sa.column("seq", sa.Integer),
    sa.column("action", sa.String),
    sa.column("resource_id", sa.String),
    sa.column("changes", sa.JSON),
)


def _began_awaiting(bind: sa.Connection, org_id: str, user_id: str) -> bool:
    """Whether the account's newest status moves lead back, through locks and deactivations
    only, to one that left ``AWAITING_NEW_PASSWORD``."""
    rows = bind.execute(
        sa.select(audit_events.c.action, audit_events.c.changes)
        .where(
            audit_events.c.org_id == org_id,
            audit_events.c.resource_id == user_id,
            audit_events.c.action.in_(STATUS_ACTIONS),
        )
        .order_by(audit_events.c.seq.desc())
        .limit(MAX_STEPS)
    ).all()
    for action, changes in rows:
        before = ((changes or {}).get("status") or {}).get("before")
        if action not in COVERING:
            return False
        if before == AWAITING:
            return True
        if before not in PASSED_THROUGH:
            return False
    return False


def upgrade() -> None:
    # A constant default: no table rewrite on PostgreSQL (11+); SQLite adds it in place.
    op.add_column(
        "users",
        sa.Column("new_password_required", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    bind = op.get_bind()
    bind.execute(
        users.update()
        .where(sa.or_(users.c.status == AWAITING, users.c.status_before_deactivation == AWAITING))
        .values(new_password_required=True)
    )
    # Only the accounts whose log names the status at all in such a move (one pass over the
    # log): most locked and deactivated accounts (every leaver) never awaited a password.
    mentioned = (
        sa.select(audit_events.c.org_id, audit_events.c.resource_id)
        .where(
            audit_events.c.action.in_(COVERING),
            sa.cast(audit_events.c.changes, sa.Text).like(f"%{AWAITING}%"),
        )
        .distinct()
    )
    hidden = bind.execute(
        sa.select(users.c.org_id, users.c.id).where(
            users.c.status.in_(OVERRIDING),
            users.c.new_password_required == sa.false(),
            sa.tuple_(users.c.org_id, users.c.id).in_(mentioned),
        )
    ).all()
    for org_id, user_id in hidden:
        if _began_awaiting(bind, org_id, user_id):
            bind.execute(
                users.update()
                .where(users.c.org_id == org_id, users.c.id == user_id)
                .values(new_password_required=True)
            )


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+ too): a batch copy of ``users``
    # would drop the table, and its foreign keys' ON DELETE CASCADE would empty the tables
    # that refer to it (credential schedules, passwords...).
    op.drop_column("users", "new_password_required")
