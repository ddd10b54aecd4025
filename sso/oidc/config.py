"""What an OIDC login is configured with and what it yields; the refusal every step raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import mappings

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


# Asymmetric only: "none" forges anything, HS* would make the client secret a
# signing key (anyone holding it mints tokens) and invites alg confusion (RFC 8725 §2.1).
SUPPORTED_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class OidcError(Exception):
    """A refused OIDC step: ``reason_code`` is stable, ``detail`` says exactly what was wrong."""

    def __init__(self, reason_code: str, detail: str) -> None:
        super().__init__(f"{reason_code}: {detail}")
        self.reason_code = reason_code
        self.detail = detail


def secure_url(url: Any) -> bool:
    """HTTPS, or plain HTTP to the loopback interface (tests and local development only)."""
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


def wire_text(value: Any, limit: int = 200) -> str:
    """A value from the other side, safe to put in a log line: printable and short."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class OidcConnectionConfig:
    """One organization's OIDC connection, as the admin configured it."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)  # empty: a public client (PKCE only)
    scopes: str = "openid email profile"
    allowed_algs: tuple[str, ...] = ("RS256", "ES256", "PS256")
    discovery: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    jwks: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer) if isinstance(self.issuer, str) else None
        # OIDC Discovery §3: the issuer is an https URL with no query or fragment.
        if not secure_url(self.issuer) or not parts or parts.query or parts.fragment:
            raise OidcError("invalid_config", f"issuer {self.issuer!r} is not an https URL")
        if not self.client_id:
            raise OidcError("invalid_config", "client_id is empty")
        bad = [alg for alg in self.allowed_algs if alg not in SUPPORTED_ALGS]
        if bad or not self.allowed_algs:
            raise OidcError("invalid_config", f"signing algorithms not allowed: {bad or '(none)'}")

    @property
    def scope(self) -> str:
        """The scopes to request; ``openid`` first, always (OIDC Core §3.1.2.1)."""
        rest = [s for s in self.scopes.split() if s != "openid"]
        return " ".join(["openid", *rest])


@dataclass(frozen=True)
class OidcLogin:
    """A verified login: ``identity`` for the mapping rules, the claims it came from."""

    identity: mappings.ExternalIdentity
    issuer: str
    subject: str  # (issuer, subject) is the only stable key for an account (OIDC Core §5.7)
    claims: dict[str, Any]  # what the identity was built from; e-mail only if verified
    id_token_claims: dict[str, Any]
    userinfo: dict[str, Any] | None
    email_trusted: bool  # the IdP said email_verified=true
    unverified_email: str | None  # an address that was sent but dropped, to say why
