from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, UTCDateTime, utcnow

# Mail the worker has still to send (the predicate of the partial index; a query that is
# to use it says it in these words: literal values, not parameters).
WAITING = "state IN ('queued', 'failed')"


class MailOutbox(Base):
    """One mail, written in the transaction of the change that causes it; sent by the worker.

    ``state`` is queued -> sending -> sent, or -> failed (to be retried at
    ``next_attempt_at``, with backoff) -> abandoned (a permanent refusal, or still
    failing a day after ``first_attempt_at``); or cancelled (credentials the account
    may no longer receive, or replaced). A ``sending`` mail holds a lease
    (``claimed_by`` until ``lease_expires_at``); if its worker dies the mail is
    claimed again when the lease expires (``lost_leases`` counts those).

    The subject and bodies are rendered when the mail is queued. A body may
    contain a temporary password (the welcome mail), so both bodies are cleared
    once the mail is sent: the row keeps who got what kind of mail, and when,
    never the secret. ``user_id`` has no foreign key on purpose: the record of a
    mail outlives the account it was about. ``for_admin``: credentials an admin had
    sent to themselves ("to me"), not to the account's address.
    """

    __tablename__ = "mail_outbox"
    __table_args__ = (
        Index("ix_mail_outbox_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_mail_outbox_org_id_created_at", "org_id", "created_at"),
        # Credentials mail by account: newer ones at the send, earlier ones to cancel.
        Index("ix_mail_outbox_org_id_user_id_created_at", "org_id", "user_id", "created_at"),
        # The worker takes organizations in turn: each one's oldest waiting mail, and the
        # next organization that has any (``mail_delivery.claim_mail``, ``due_orgs``); only
        # the mail still to send, not the history of what went.
        Index(
            "ix_mail_outbox_waiting_org_id_next_attempt_at",
            "org_id",
            "next_attempt_at",
            postgresql_where=text(WAITING),
            sqlite_where=text(WAITING),
        ),
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
    # When the relay was first tried: a mail failing for a day after is abandoned.
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Claims whose worker never recorded an outcome (it died holding the lease).
    lost_leases: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Credentials: True sent to the acting admin ("to me"), False to the account's own
    # address; None for other mail and for mail queued before migration 0041.
    for_admin: Mapped[bool | None] = mapped_column(Boolean, default=None)
