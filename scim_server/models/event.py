from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, JSONDoc, UTCDateTime


class Event(Base):
    """One product event (``user.deactivated``, ...): for the feed and for webhooks.

    Written in the transaction of the change it reports (derived from that
    change's audit events, ``services.events``), so a rolled-back change leaves
    none and a committed one always has its own. ``position`` is gap-free and
    increasing per organization: writers of one organization are serialised by
    the audit head lock they already hold. ``data`` holds the actor, the
    resource, its state after the change and what changed (before/after).
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_id", "id", unique=True),
        Index("ix_events_org_id_occurred_at", "org_id", "occurred_at"),
    )

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resource_type: Mapped[str | None] = mapped_column(String(32), default=None)
    resource_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # The audit event it was derived from: the evidence behind it.
    audit_seq: Mapped[int | None] = mapped_column(Integer, default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
