from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, JSONDoc, UTCDateTime, utcnow


class Organization(Base):
    """A tenant. Nothing below it is ever visible to another organization."""

    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # SCIM requests per minute per token: None follows SCIM_RATE_LIMIT_PER_MINUTE,
    # 0 is unlimited (scim_server.ratelimit).
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer, default=None)
    # Identity settings (scim_server.services.settings): username format, contact
    # match keys, strict seat mode, default license and roles.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
