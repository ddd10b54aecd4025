"""A person's second factors: TOTP authenticators, passkeys, and single-use recovery codes.

The TOTP secret is stored sealed (AES-GCM, bound to its row); a passkey is a
public key, useless to whoever copies it; recovery codes are kept as hashes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, UTCDateTime, utcnow


def _user_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["org_id", "user_id"], ["users.org_id", "users.id"], ondelete="CASCADE"
    )


class MfaFactor(Base):
    """One enrolled factor: ``kind`` is ``totp`` or ``webauthn``."""

    __tablename__ = "mfa_factors"
    __table_args__ = (_user_fk(), Index("ix_mfa_factors_org_id_user_id", "org_id", "user_id"))

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # TOTP: the sealed base32 secret, and the last time step accepted (never accepted twice).
    secret: Mapped[str | None] = mapped_column(Text, default=None)
    last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # WebAuthn: the credential id and COSE public key (base64url), the signature counter.
    credential_id: Mapped[str | None] = mapped_column(Text, default=None)
    public_key: Mapped[str | None] = mapped_column(Text, default=None)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)


class MfaRecoveryCode(Base):
    """A single-use recovery code (SHA-256 of it: the codes are random, 49 bits each)."""

    __tablename__ = "mfa_recovery_codes"
    __table_args__ = (
        _user_fk(),
        Index("ix_mfa_recovery_codes_org_id_user_id", "org_id", "user_id"),
    )

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    position: Mapped[int] = mapped_column(Integer, default=0)
