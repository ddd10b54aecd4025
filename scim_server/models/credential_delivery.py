"""When credentials go out: sends scheduled for a date, and the record of every send.

Neither row ever holds a secret: a scheduled send keeps only when and to whom,
and the temporary password or link is made when the worker sends the mail.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, UTCDateTime, utcnow


class CredentialSchedule(Base):
    """A credentials send that waits for ``scim-server worker``: one per user.

    An admin's date (a go-live day), or the welcome of a user created over SCIM
    (due at once: the password is generated and hashed by the worker, not in the
    IdP's request).

    ``state`` is ``scheduled`` until ``scim-server worker`` sends it (the row is
    then deleted, in the transaction that queues the mail) or ``failed`` (the
    account could not receive credentials at that time: ``last_error`` says why,
    and it stays visible until the admin reschedules or cancels it). A worker
    holds it under a lease (``claimed_by`` until ``lease_expires_at``) while it
    sends; after an unexpected error ``lease_expires_at`` is when to try again.
    """

    __tablename__ = "credential_schedules"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "user_id"], ["users.org_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_credential_schedules_state_send_at", "state", "send_at"),
        # The worker takes organizations in turn, each one's oldest due send first
        # (``credential_schedules.send_due``).
        Index("ix_credential_schedules_org_id_state_send_at", "org_id", "state", "send_at"),
    )

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    send_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # None: to the user; else the acting admin's address ("to myself").
    recipient: Mapped[str | None] = mapped_column(String(320), default=None)
    # The public URL when it was scheduled: the worker has no request to take it from.
    base_url: Mapped[str] = mapped_column(Text)
    # "welcome" (a SCIM create: due at once) or "scheduled" (an admin's date).
    reason: Mapped[str] = mapped_column(String(16), default="scheduled")
    state: Mapped[str] = mapped_column(String(16), default="scheduled")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    scheduled_by: Mapped[str | None] = mapped_column(Text, default=None)
    # The console person who scheduled it (user id; no foreign key: they may leave first).
    # None: the admin API or the command line, which act as the organization. A send to
    # them ("to me") is checked against their console roles again when it goes out.
    scheduled_by_id: Mapped[str | None] = mapped_column(String(36), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class CredentialSend(Base):
    """One credentials mail made for a user (why, when, which mail): resends and resets count these.

    ``reason``: ``welcome`` (created over SCIM), ``send`` (an admin), ``resend``,
    ``scheduled``, ``reset`` (an admin reset the password), ``forgot`` (the person
    asked for a reset link).
    """

    __tablename__ = "credential_sends"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "user_id"], ["users.org_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_credential_sends_org_id_user_id_created_at", "org_id", "user_id", "created_at"),
    )

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(String(16))
    mail_id: Mapped[str | None] = mapped_column(String(36), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
