from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, UTCDateTime, utcnow


class MailOutbox(Base):
    """One mail, written in the transaction of the change that causes it; sent by the worker.

    ``state`` is queued -> sending -> sent, or -> failed (to be retried at
    ``next_attempt_at``, with backoff) -> abandoned after the last attempt; or
    cancelled (credentials the account may no longer receive, or replaced). A
    ``sending`` mail holds a lease (``claimed_by`` until ``lease_expires_at``);
    if its worker dies the mail is claimed again when the lease expires.

    The subject and bodies are rendered when the mail is queued. A body may
    contain a temporary password (the welcome mail), so both bodies are cleared
    once the mail is sent: the row keeps who got what kind of mail, and when,
    never the secret. ``user_id`` has no foreign key on purpose: the record of a
    mail outlives the account it was about.
    """

    __tablename__ = "mail_outbox"
    __table_args__ = (
        Index("ix_mail_outbox_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_mail_outbox_org_id_created_at", "org_id", "created_at"),
        # Credentials mail by account: newer ones at the send, earlier ones to cancel.
        Index("ix_mail_outbox_org_id_user_id_created_at", "org_id", "user_id", "created_at"),
    )

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str | None] = mapped_column(Text, default=None)
    body_html: Mapped[str | None] = mapped_column(Text, default=None)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the mail was asked to go out (a scheduled credentials send); None: at once.
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    message_id: Mapped[str | None] = mapped_column(String(255), default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
