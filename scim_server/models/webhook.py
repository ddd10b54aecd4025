from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, JSONDoc, UTCDateTime, utcnow

# A delivery still to send (the partial index's words, as the worker's claim says them).
PENDING = "state = 'pending'"


class WebhookSubscription(Base):
    """Where an organization wants its events pushed, and with which secret they are signed.

    ``secret`` (``whsec_...``) signs each message the Standard Webhooks way; it is
    shown only once, at creation or rotation, and stored sealed
    (``services.webhook_secrets``: ``enc:v1:...``, bound to the organization, the
    subscription and the column), opened only to sign a message; a row from before
    migration 0040 may still hold it in clear until its next write. After a rotation
    ``previous_secret`` (sealed the same way) still signs (a second signature) until
    ``previous_secret_expires_at``. ``failing_since``
    is the first failure of the current run of failures; a subscription failing
    for the whole retry window is disabled (``disabled_reason``). The worker
    turns the organization's events after ``fanned_position`` into deliveries;
    a new subscription starts at the newest event, a disabled one resumes where
    it stopped when enabled again, with the events retention has kept (one it purged
    meanwhile is a ``webhook.gap``: audited, logged as a failed delivery, mailed).
    """

    __tablename__ = "webhook_subscriptions"

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSONDoc)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    # Who is told by mail when the subscription is disabled for failing.
    alert_email: Mapped[str | None] = mapped_column(String(320), default=None)
    # Sealed (longer than the secret itself: text since migration 0040).
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text, default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When it was created enabled or last enabled again (None: not since this was kept): a
    # delivery's retry window starts no earlier (``services.webhook_delivery``).
    enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The last event position made into deliveries (``services.webhook_fanout``).
    fanned_position: Mapped[int] = mapped_column(Integer, default=0)
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event (or test message) to send to one subscription: the webhook outbox.

    ``state`` is pending -> sending -> delivered, or back to pending with a later
    ``next_attempt_at`` (exponential backoff), or failed once the retry window
    is over. ``id`` increases with creation; deliveries about one resource
    (``resource_key``) go out in that order, one at a time. ``event_id`` has no
    foreign key: the log outlives a purged event. ``payload`` is set only for a
    test message, which has no event.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index(
            "ix_webhook_deliveries_subscription_id_resource_key",
            "subscription_id",
            "resource_key",
            "id",
        ),
        Index("ix_webhook_deliveries_org_id_subscription_id", "org_id", "subscription_id", "id"),
        # The worker takes organizations in turn (``webhook_delivery.due_orgs``): each one's
        # pending deliveries in order, not the log of what went.
        Index(
            "ix_webhook_deliveries_pending_org_id_next_attempt_at",
            "org_id",
            "next_attempt_at",
            postgresql_where=text(PENDING),
            sqlite_where=text(PENDING),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    subscription_id: Mapped[str] = mapped_column(String(36))
    event_id: Mapped[str | None] = mapped_column(String(40), default=None)
    event_type: Mapped[str] = mapped_column(String(40))
    position: Mapped[int | None] = mapped_column(Integer, default=None)
    resource_key: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: the delivery log an admin reads."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[int] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
