from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, KeyText, UTCDateTime, utcnow

ROLE_KINDS = ("task", "ticket", "portal", "group", "profile", "app")


class Role(Base):
    """A named role of the organization, with a kind (task, ticket, portal, group, profile, app)."""

    __tablename__ = "roles"
    __table_args__ = (Index("uq_roles_org_id_name_key", "org_id", "name_key", unique=True),)

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    name_key: Mapped[str] = mapped_column(KeyText)
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserRole(Base):
    """A role held by a user, and where it came from.

    ``source`` keeps admin assignments (``manual``) apart from rule-derived
    ones (``rule``) and from app roles the IdP provisioned (``scim``), so that
    re-evaluating the rules never overwrites an admin's decision.
    """

    __tablename__ = "user_roles"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "user_id"], ["users.org_id", "users.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["org_id", "role_id"], ["roles.org_id", "roles.id"], ondelete="CASCADE"
        ),
        Index("ix_user_roles_org_id_role_id", "org_id", "role_id"),
    )

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    role_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(String(10), primary_key=True)
    rule: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
