"""Storage of the OpenID Connect provider facade: clients, codes, access tokens, signing keys.

Everything lives in the database so that any node behind the load balancer can
finish a flow another node started. Secrets (client secrets, codes, access
tokens) are stored as SHA-256 hashes only; they are random and long, so a
plain hash is enough and a lookup stays one indexed query.

The methods named ``get_*`` / ``check_*`` are the interface authlib's server
expects (``authlib.oauth2.rfc6749.ClientMixin``, ``AuthorizationCodeMixin``,
``TokenMixin``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, object_session

from scim_server.db import Base, JSONDoc, UTCDateTime, utcnow
from scim_server.models import User

# RFC 8252 §7.3: http on a loopback IP literal (never "localhost", §8.3), an optional port
# (1 to 65535 is checked apart), then path and query: printable ASCII, no fragment.
_LOOPBACK = re.compile(r"http://(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?([/?][!-\"$-~]*)?")


def _loopback_parts(uri: str) -> tuple[str, str] | None:
    """A loopback IP redirect URI's host and the rest (path and query), its port left out;
    None for any other URI."""
    match = _LOOPBACK.fullmatch(uri)
    if match is None:
        return None
    host, port, rest = match.groups()
    if port is not None and not 0 < int(port) < 65536:
        return None
    return host, rest or ""


def secret_hash(secret: str) -> str:
    """The stored form of a client secret, code or access token."""
    return hashlib.sha256(secret.encode()).hexdigest()


class OAuthClient(Base):
    """A registered product (relying party).

    ``org_id`` None is a global client: the product itself, which signs in the
    users of every organization. A client bound to one organization only ever
    receives codes for that organization's users. ``secret_hash`` None is a
    public client (a SPA or native app), which must use PKCE and no secret.
    """

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("organizations.id", ondelete="CASCADE"), default=None, index=True
    )
    name: Mapped[str] = mapped_column(Text)
    secret_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # RFC 6749 §3.1.2.3 / OAuth 2.1: compared exactly, never as a prefix or pattern.
    redirect_uris: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    scope: Mapped[str] = mapped_column(Text, default="openid profile email")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def is_public(self) -> bool:
        return self.secret_hash is None

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OIDC Core §3.1.2.1: redirect_uri is required; no default is ever assumed.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Registered exactly; or, RFC 8252 §7.3, a native app's loopback IP redirect URI
        with any port ("MUST allow any port ... at the time of the request": the app
        listens on an ephemeral one), the rest compared exactly."""
        if redirect_uri in self.redirect_uris:
            return True
        requested = _loopback_parts(redirect_uri)
        return requested is not None and any(
            _loopback_parts(uri) == requested for uri in self.redirect_uris
        )

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_hash is None:
            return False
        return hmac.compare_digest(self.secret_hash, secret_hash(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


class OAuthCode(Base):
    """An authorization code: single use (``used_at``), short-lived, bound to client and URI."""

    __tablename__ = "oauth_codes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "user_id"], ["users.org_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_oauth_codes_org_id_user_id", "org_id", "user_id"),
        # OIDC Core §15.5.2: a nonce seen before for this client is a replay.
        Index("ix_oauth_codes_client_id_nonce", "client_id", "nonce"),
    )

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE")
    )
    org_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(36))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(255), default=None)
    # RFC 7636 §4.2: S256 only; "plain" is refused at the authorization endpoint.
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(10), default="S256")
    auth_time: Mapped[int] = mapped_column(Integer)
    # RFC 8176 values of how the person signed in (``sso.signin.amr``); None: not known.
    amr: Mapped[list[str] | None] = mapped_column(JSONDoc, default=None)
    # The account's ``session_epoch`` at the sign-in: a password set or removed since ends
    # the code with the session (``server.still_current``).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The random id of that sign-in session (``sso.signin.session``): its sign-out ends the
    # code (``server.still_current``). None: issued before sessions were recorded here.
    session_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # The SSO connection that session came through (``sso.signin.session.connection_open``):
    # disabled or deleted, it ends the code; enabled again, it vouches only for sign-ins
    # (``auth_time``) after its disabling. None: a password sign-in, or a row from before
    # 0042: not checked.
    connection_id: Mapped[str | None] = mapped_column(String(36), default=None)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        """OIDC Core §2 ``amr`` of the id_token this code gives (authlib adds it when set)."""
        return list(self.amr) if self.amr else None


class OAuthToken(Base):
    """An access token (hash only), checked on every userinfo call by any node."""

    __tablename__ = "oauth_tokens"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "user_id"], ["users.org_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_oauth_tokens_org_id_user_id", "org_id", "user_id"),
        # RFC 6749 §4.1.2: a reused code revokes the tokens it produced.
        Index("ix_oauth_tokens_code_hash", "code_hash"),
    )

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE")
    )
    org_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(36))
    scope: Mapped[str] = mapped_column(Text)
    code_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # The ``session_epoch`` of the sign-in it came from (``server.still_current``).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The id of the sign-in session it came from, its code's: signed out, the token stops.
    session_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # The SSO connection of that session and when the person signed in, its code's
    # (``server.still_current``): the connection disabled or deleted, the token stops, and
    # enabling it again does not bring back a token of a sign-in from before. None: a
    # password sign-in, or a row from before 0042: not checked.
    connection_id: Mapped[str | None] = mapped_column(String(36), default=None)
    auth_time: Mapped[int | None] = mapped_column(Integer, default=None)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def check_client(self, client: OAuthClient) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.expires_at - self.issued_at).total_seconds()))

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def get_user(self) -> User | None:
        return object_session(self).get(User, (self.org_id, self.user_id))  # type: ignore[union-attr]

    def get_client(self) -> OAuthClient | None:
        return object_session(self).get(OAuthClient, self.client_id)  # type: ignore[union-attr]


class OAuthSigningKey(Base):
    """An RS256 key pair for id_tokens. The current key signs; retired keys stay published.

    The private key is a PKCS#8 PEM encrypted with a password derived from
    SCIM_SECRET_KEY (``sso.provider.keys``); the public JWK is kept in clear
    so that JWKS never needs the secret.
    """

    __tablename__ = "oauth_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(10), default="RS256")
    private_key_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
