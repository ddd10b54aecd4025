from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, KeyText, UTCDateTime, utcnow


class License(Base):
    """A license type of the organization: what a user must hold to sign in, and what is billed."""

    __tablename__ = "licenses"
    __table_args__ = (Index("uq_licenses_org_id_name_key", "org_id", "name_key", unique=True),)

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    name_key: Mapped[str] = mapped_column(KeyText)
    seat_limit: Mapped[int | None] = mapped_column(Integer, default=None)  # None: unlimited
    price_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
