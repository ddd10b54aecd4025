from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, UTCDateTime, utcnow

# What a person may do in the admin console (ARCHITECTURE.md, "Console permissions").
CONSOLE_ROLES = ("org_admin", "user_manager", "security_admin", "auditor")


class ConsoleGrant(Base):
    """A console permission held by a user of the organization (one row per role held).

    Keyed by organization and user: a person's console rights never reach another
    organization, and deleting the user takes them away.
    """

    __tablename__ = "console_grants"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "user_id"], ["users.org_id", "users.id"], ondelete="CASCADE"
        ),
    )

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
