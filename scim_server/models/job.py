from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, JSONDoc, UTCDateTime, utcnow


class Job(Base):
    """Work for ``scim-server worker``, written in the transaction that asks for it.

    ``state`` is queued -> running -> succeeded | failed (a retried job goes
    back to queued with a later ``run_after``). A running job holds a lease
    (``claimed_by`` until ``lease_expires_at``), renewed with each saved step;
    a job whose lease expired (its worker died) is claimed again and resumes
    from ``checkpoint``. ``actor`` is who asked, so the worker's audit events
    name them.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_run_after", "state", "run_after"),
        Index("ix_jobs_state_lease_expires_at", "state", "lease_expires_at"),
    )

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    actor: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer, default=None)
    # Where a resumed run starts (the kind's own marker, e.g. the last user id done).
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
