"""The provider's configuration document (OIDC Discovery §4): fetched, checked, reused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from sso.oidc.config import OidcConnectionConfig, OidcError, secure_url, wire_text
from sso.oidc.http import fetch, json_object

WELL_KNOWN = "/.well-known/openid-configuration"


def check_discovery(issuer: str, doc: Mapping[str, Any]) -> None:
    """Refuse a provider document that is not for ``issuer`` or lacks what the code flow needs."""
    # OIDC Discovery §4.3: the issuer MUST be identical to the one the document was fetched for.
    if doc.get("issuer") != issuer:
        got = wire_text(doc.get("issuer"))
        raise OidcError("discovery_issuer_mismatch", f"document issuer {got} is not {issuer}")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not secure_url(doc.get(name)):
            raise OidcError("discovery_failed", f"{name} missing or not https")
    if "userinfo_endpoint" in doc and not secure_url(doc["userinfo_endpoint"]):
        raise OidcError("discovery_failed", "userinfo_endpoint not https")
    if "code" not in doc.get("response_types_supported", ["code"]):
        raise OidcError("discovery_failed", "provider does not support response_type=code")
    # RFC 7636 §4.3 / RFC 8414 §2: absent means unknown, so only a list without S256 refuses.
    if "S256" not in doc.get("code_challenge_methods_supported", ["S256"]):
        raise OidcError("discovery_failed", "provider does not support PKCE S256")
    if not isinstance(doc.get("authorization_response_iss_parameter_supported", False), bool):
        raise OidcError("discovery_failed", "authorization_response_iss_parameter_supported")


def discover(issuer: str, http: requests.Session) -> dict[str, Any]:
    """Fetch and check the provider's configuration (OIDC Discovery §4)."""
    if not secure_url(issuer):
        raise OidcError("discovery_failed", f"issuer {wire_text(issuer)} is not https")
    url = issuer.rstrip("/") + WELL_KNOWN
    status, _, body = fetch(http, "GET", url, "discovery_failed", "discovery")
    if status != 200:
        raise OidcError("discovery_failed", f"{url} answered HTTP {status}")
    doc = json_object(body, "discovery_failed", "discovery document")
    check_discovery(issuer, doc)
    return doc


def for_config(
    config: OidcConnectionConfig, discovery: Mapping[str, Any] | None
) -> Mapping[str, Any]:
    doc = discovery if discovery is not None else config.discovery
    if doc is None:
        raise OidcError("discovery_failed", "no discovery document for this connection")
    check_discovery(config.issuer, doc)  # a cached document may belong to another connection
    return doc
