"""Failed sign-ins of one account: what the lockout counts, kept in the database.

In the database (not a process) so every web node counts the same failures.
``failures`` holds, per recent wrong attempt, a keyed hash of what was typed
(never the password) and when: the same wrong password typed again is one
failure, and only attempts inside the organization's window are kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, JSONDoc, UTCDateTime


class AccountLockout(Base):
    """One row per account that failed a sign-in since its last success or unlock."""

    __tablename__ = "account_lockouts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "user_id"], ["users.org_id", "users.id"], ondelete="CASCADE"
        ),
        # The worker's sweep: locks whose time is up.
        Index("ix_account_lockouts_locked_until", "locked_until"),
    )

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # [[keyed hash (hex), ISO time], ...] of the distinct wrong attempts in the window.
    failures: Mapped[list[Any]] = mapped_column(JSONDoc, default=list)
    # Lockouts in a row (each one lasts twice the one before, up to the maximum).
    locks: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
