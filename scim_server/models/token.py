from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, UTCDateTime, utcnow


class ScimToken(Base):
    """A bearer token (SCIM or admin). Only the SHA-256 of the secret is kept."""

    __tablename__ = "scim_tokens"

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # A token is looked up by its hash alone, before the organization is known.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # "scim" tokens provision over /scim/v2; "admin" tokens use the admin API /api/v1.
    kind: Mapped[str] = mapped_column(String(10), default="scim", server_default="scim")
    # When the token last authenticated a request, to the minute (services.token_usage).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
