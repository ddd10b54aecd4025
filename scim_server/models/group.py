from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, JSONDoc, KeyText, UTCDateTime, utcnow


class Group(Base):
    """A SCIM Group. Its members are rows of GroupMember, never a stored list."""

    __tablename__ = "groups"
    __table_args__ = (
        Index("uq_groups_org_id_display_name_key", "org_id", "display_name_key", unique=True),
        Index("ix_groups_org_id_external_id", "org_id", "external_id"),
        Index("ix_groups_org_id_created_at", "org_id", "created_at", "id"),
    )

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    display_name: Mapped[str] = mapped_column(Text)
    display_name_key: Mapped[str] = mapped_column(KeyText)
    external_id: Mapped[str | None] = mapped_column(Text, default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupMember(Base):
    """One membership: adding or removing a member touches exactly one row."""

    __tablename__ = "group_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "group_id"], ["groups.org_id", "groups.id"], ondelete="CASCADE"
        ),
        # A user's derived `groups` attribute and member clean-up on delete.
        Index("ix_group_members_org_id_member_id", "org_id", "member_id"),
    )

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_type: Mapped[str] = mapped_column(String(10))  # "User" | "Group"
    # RFC 7643 §4.2: a member's sub-attributes are immutable, set when it is added.
    # The display a client set then (None: show the member's current name), and its
    # folded form for members[display ...] filters.
    display: Mapped[str | None] = mapped_column(Text, default=None)
    display_key: Mapped[str | None] = mapped_column(KeyText, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
