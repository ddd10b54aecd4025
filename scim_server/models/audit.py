from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, JSONDoc, UTCDateTime


class AuditEvent(Base):
    """One provisioning, admin or sign-in event: append-only, hash-chained per organization.

    ``seq`` is gap-free per organization and ``hash`` covers the canonical form
    of the event and ``prev_hash``: editing, deleting or reordering an event
    breaks the chain (see scim_server.audit.chain).
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_org_id_occurred_at", "org_id", "occurred_at"),
        Index("ix_audit_events_org_id_resource_id", "org_id", "resource_id", "seq"),
        Index("ix_audit_events_org_id_action", "org_id", "action", "seq"),
        Index("ix_audit_events_org_id_request_id", "org_id", "request_id"),
        Index("ix_audit_events_org_id_user_name", "org_id", "user_name", "seq"),
        Index("ix_audit_events_org_id_external_id", "org_id", "external_id", "seq"),
    )

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(64), default=None)
    actor_name: Mapped[str | None] = mapped_column(String(200), default=None)
    source_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(512), default=None)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    correlation_id: Mapped[str | None] = mapped_column(String(128), default=None)
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str | None] = mapped_column(String(32), default=None)
    resource_id: Mapped[str | None] = mapped_column(String(64), default=None)
    external_id: Mapped[str | None] = mapped_column(Text, default=None)
    user_name: Mapped[str | None] = mapped_column(Text, default=None)
    outcome: Mapped[str] = mapped_column(String(10))
    status: Mapped[int | None] = mapped_column(Integer, default=None)
    scim_type: Mapped[str | None] = mapped_column(String(32), default=None)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)
    explanation: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain head of one organization: last seq and hash, signed.

    Writers lock this row, which serialises them per organization (no fork, no
    gap). The signature (HMAC with the audit key, which is not in the
    database) makes a truncated tail detectable.
    """

    __tablename__ = "audit_heads"

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    # Where the chain starts: 0 and the genesis hash, or the last purged event.
    base_seq: Mapped[int] = mapped_column(Integer, default=0)
    base_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed statement of the chain head at some seq (periodic, and at each purge)."""

    __tablename__ = "audit_checkpoints"

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # "periodic" | "purge" | "manual"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    signature: Mapped[str] = mapped_column(String(64))
    # The Ed25519 signature of the checkpoint statement (``audit.checkpoints.statement``)
    # and the published key that made it; none on checkpoints older than migration 0014.
    key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    public_signature: Mapped[str | None] = mapped_column(String(128), default=None)


class AuditSigningKey(Base):
    """A public key that has signed audit statements, and the period it was the server's key.

    Only the public half is stored: the private key is configuration
    (``SCIM_AUDIT_SIGNING_KEY``). A rotated-out key keeps its row, with its
    end, so the statements it signed still verify.
    """

    __tablename__ = "audit_signing_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The server's HMAC of the row (``chain.key_signature``): a row without a valid one was
    # not written by the server, and is not published. None: from before migration 0029,
    # signed at the server's next ``register_key``.
    signature: Mapped[str | None] = mapped_column(String(64), default=None)
