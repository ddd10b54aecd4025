"""Storage of the SSO relying party: connections, domains, flow state, replay cache, links, records,
ended sessions.

Every piece of flow state (AuthnRequest ids, OIDC state/nonce/PKCE verifier,
assertion ids already seen) lives in the database, so a login started on one
node behind the load balancer can finish on another.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, ForeignKeyConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from scim_server.db import Base, JSONDoc, KeyText, UTCDateTime, utcnow

PROTOCOLS = ("saml", "oidc")


class SsoConnection(Base):
    """One identity provider an organization signs in with (SAML 2.0 or OpenID Connect).

    The SP key pair (``sp_private_key``, ``sp_certificate``) is generated when a
    SAML connection is created and signs our AuthnRequests. ``client_secret``
    is stored because the token endpoint needs it, but the admin API never
    returns it. Both secrets are stored sealed (``sso.connections.sealing``: AES-GCM with a
    key derived from SCIM_SECRET_KEY, bound to this connection), opened only
    where they are used (``sso.connections.reveal_secret``); a value without
    the ``enc:`` prefix is a legacy clear one, sealed by the next write.
    """

    __tablename__ = "sso_connections"
    __table_args__ = (
        # ACS paths route a POST to one connection; the prefix rule is checked in sso.connections.
        Index("uq_sso_connections_acs_path", "acs_path", unique=True),
    )

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    protocol: Mapped[str] = mapped_column(String(8))  # "saml" | "oidc"
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # When an admin last disabled it; kept when it is enabled again: it vouches only for
    # sign-ins after that (``sso.signin.session.connection_open``), not for a session (or an
    # OIDC provider's code or token) of the IdP it stopped trusting. None: never disabled.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    jit_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # IdP-initiated SAML has no request to bind the response to; off unless the admin accepts that.
    idp_initiated_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    # -- SAML --
    idp_entity_id: Mapped[str | None] = mapped_column(Text, default=None)
    idp_sso_url: Mapped[str | None] = mapped_column(Text, default=None)
    # [{"pem": ..., "not_after": ISO-8601, "fingerprint": sha256 hex}], several during rotation.
    idp_certificates: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    metadata_url: Mapped[str | None] = mapped_column(Text, default=None)
    sp_entity_id: Mapped[str | None] = mapped_column(Text, default=None)
    acs_path: Mapped[str | None] = mapped_column(String(200), default=None)
    sp_private_key: Mapped[str | None] = mapped_column(Text, default=None)  # sealed PEM
    sp_certificate: Mapped[str | None] = mapped_column(Text, default=None)
    want_encrypted_assertions: Mapped[bool] = mapped_column(Boolean, default=False)
    # -- OpenID Connect --
    issuer: Mapped[str | None] = mapped_column(Text, default=None)
    client_id: Mapped[str | None] = mapped_column(Text, default=None)
    client_secret: Mapped[str | None] = mapped_column(Text, default=None)  # sealed
    scopes: Mapped[str | None] = mapped_column(Text, default=None)  # space-separated
    discovery: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)
    discovery_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


VERIFIED = text("verified_at IS NOT NULL")


class SsoEmailDomain(Base):
    """An e-mail domain of an organization: routes home-realm discovery and allow-lists sign-ins.

    Only a verified domain does either (``verified_at``: its DNS TXT record was
    found, or the operator vouched for it). Several organizations may claim a
    domain, each with its own ``verification_token``; one only may hold it
    verified (the partial unique index), otherwise discovery could send a person
    to another tenant's IdP.
    """

    __tablename__ = "sso_email_domains"
    __table_args__ = (
        Index(
            "uq_sso_email_domains_domain",
            "domain",
            unique=True,
            postgresql_where=VERIFIED,
            sqlite_where=VERIFIED,
        ),
    )

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    domain: Mapped[str] = mapped_column(KeyText, primary_key=True)  # lower-case, IDNA
    # The connection discovery sends this domain to; None: the organization's only one.
    connection_id: Mapped[str | None] = mapped_column(String(36), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # None while pending: the claim routes nothing until the TXT record is found.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # What the TXT record must say (``scim-server-verification=<token>``); None once verified.
    verification_token: Mapped[str | None] = mapped_column(String(64), default=None)


class SsoState(Base):
    """Single-use state of a login in flight: consumed by DELETE ... RETURNING."""

    __tablename__ = "sso_states"
    __table_args__ = (Index("ix_sso_states_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    connection_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))  # "saml_request" | "oidc"
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SsoReplay(Base):
    """An assertion id already accepted, kept until its NotOnOrAfter so it cannot be replayed."""

    __tablename__ = "sso_replay"
    __table_args__ = (Index("ix_sso_replay_expires_at", "expires_at"),)

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    connection_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    assertion_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SsoIdentityLink(Base):
    """Which account an IdP subject of a connection signs in to: the binding, once made.

    ``subject`` is the SAML NameID or the OIDC ``sub`` exactly as the IdP sent
    it (NFC only, never case-folded). A subject reaches one account and an
    account is reached by one subject per connection; once linked, no e-mail
    or userName can send another subject to the account (``sso.signin.decision``).
    The link goes with the user, the connection or the organization.
    """

    __tablename__ = "sso_identity_links"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "user_id"], ["users.org_id", "users.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["org_id", "connection_id"],
            ["sso_connections.org_id", "sso_connections.id"],
            ondelete="CASCADE",
        ),
        Index(
            "uq_sso_identity_links_org_id_connection_id_user_id",
            "org_id",
            "connection_id",
            "user_id",
            unique=True,
        ),
    )

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    connection_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignInRecord(Base):
    """One sign-in attempt, success or failure: the connection debugger admins read.

    ``reason_code`` and ``detail`` are the precise cause (never shown to the
    person signing in, who gets a generic message).
    """

    __tablename__ = "sign_in_records"
    __table_args__ = (
        Index("ix_sign_in_records_org_id_at", "org_id", "at"),
        Index("ix_sign_in_records_org_id_connection_id_at", "org_id", "connection_id", "at"),
    )

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    connection_id: Mapped[str | None] = mapped_column(String(36), default=None)
    protocol: Mapped[str | None] = mapped_column(String(8), default=None)
    outcome: Mapped[str] = mapped_column(String(16))  # "success" | "failure" | "test"
    reason_code: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    subject: Mapped[str | None] = mapped_column(Text, default=None)
    email: Mapped[str | None] = mapped_column(Text, default=None)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    source_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    # Test mode only: the parsed attributes and the mapping result, for the admin to read.
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)


class SsoEndedSession(Base):
    """A sign-in session ended by its sign-out, kept until it would have expired anyway.

    The session is a signed cookie (``sso.signin.session``), which cannot be taken back:
    its random id is written here at sign-out, and each use reads this table by primary key
    (``speaks_for``), so a copy of the cookie taken before the sign-out stops working too,
    as do the OIDC provider's codes and tokens issued in the session. Rows past
    ``expires_at`` (the sign-in time plus SCIM_SSO_SESSION_SECONDS, SCIM_OAUTH_CODE_SECONDS
    and SCIM_OAUTH_ACCESS_TOKEN_SECONDS: the cookie and the last token are refused by then
    anyway) are deleted at the next sign-out.
    """

    __tablename__ = "sso_ended_sessions"
    __table_args__ = (Index("ix_sso_ended_sessions_expires_at", "expires_at"),)

    org_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
