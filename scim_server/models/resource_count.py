from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base


class ResourceCount(Base):
    """How many Users (or Groups) an organization has.

    Kept by the services in the same transaction as every create and delete, so
    that an unfiltered list knows its ``totalResults`` without counting the
    organization. ``generation`` moves on each change of the set: caches derived
    from the set (list page anchors) compare it to know they are stale.
    """

    __tablename__ = "resource_counts"

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    resource_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)
