"""Claims → identity: userinfo (OIDC Core §5.3) over the ID token; e-mail only if verified."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from mappings.sources import OIDC_ALIASES
from mappings.text import fold
from scim_server.text import UNSTORABLE
from sso.oidc.config import OidcError, wire_text
from sso.oidc.http import fetch, json_object

# Folded as the mapping's lookup folds claim names (``mappings.sources.lookup_raw``: NFKC
# and case), so that no spelling of an address claim (fullwidth ``mail``) outlives the removal
# below and is then read as the address.
EMAIL_CLAIMS = frozenset(fold(n) for n in ("email", "email_verified", *OIDC_ALIASES["email"]))


# Token mechanics, checked here and of no use to mapping rules (acr, amr, auth_time stay).
PROTOCOL_CLAIMS = ("nonce", "at_hash", "c_hash", "exp", "iat", "nbf", "jti")


def fetch_userinfo(
    doc: Mapping[str, Any], access_token: str, sub: str, http: requests.Session
) -> dict[str, Any] | None:
    """The UserInfo response (OIDC Core §5.3), only for the subject of the ID token."""
    url = doc.get("userinfo_endpoint")
    if not url:
        return None
    status, ctype, body = fetch(
        http,
        "GET",
        url,
        "userinfo_failed",
        "userinfo",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    if status != 200:
        raise OidcError("userinfo_failed", f"userinfo answered HTTP {status}")
    if ctype == "application/jwt":
        raise OidcError("userinfo_failed", "signed or encrypted userinfo is not supported")
    info = json_object(body, "userinfo_failed", "userinfo")
    # OIDC Core §5.3.2: the sub MUST exactly match the ID token's, else the values MUST NOT be used.
    if info.get("sub") != sub:
        raise OidcError("userinfo_sub_mismatch", f"userinfo sub {wire_text(info.get('sub'))}")
    return info


def check_storable(source: str, claims: Mapping[str, Any]) -> None:
    """Refuse claims holding text no column can hold (``UNSTORABLE``: NUL, a lone
    surrogate): JSON carries them ("\\ud800"), RFC 8259 §8.2 leaves them to the receiver,
    and the subject, the names and the sign-in record are all stored. A refusal like any
    other, named; never the database's error."""

    def bad(value: Any) -> bool:
        if isinstance(value, str):
            return UNSTORABLE.search(value) is not None
        if isinstance(value, list):
            return any(bad(v) for v in value)
        if isinstance(value, dict):
            return any(bad(k) or bad(v) for k, v in value.items())
        return False

    for name, value in claims.items():
        if bad(name) or bad(value):
            raise OidcError(
                "invalid_claims",
                f"the {source}'s claim {name!a} holds NUL or a lone surrogate, not UTF-8 text",
            )


def merge_claims(
    id_claims: Mapping[str, Any], info: Mapping[str, Any] | None
) -> tuple[dict[str, Any], bool, str | None]:
    """ID token claims over userinfo; the e-mail kept only when the IdP says it is verified.

    ``email`` and ``email_verified`` are taken as a pair from one source; other
    address claims (``mail``) carry no verification at all and are dropped.
    Trusting an unverified address lets anyone who can set one in a
    multi-tenant IdP take over an account by e-mail ("nOAuth").
    """
    claims = {**(info or {}), **id_claims}
    for name in PROTOCOL_CLAIMS:
        claims.pop(name, None)
    source = id_claims if "email" in id_claims else info or {}
    email, verified = source.get("email"), source.get("email_verified")
    # AWS Cognito sends email_verified as the string "true".
    trusted = isinstance(email, str) and bool(email) and verified in (True, "true")
    for name in [k for k in claims if isinstance(k, str) and fold(k) in EMAIL_CLAIMS]:
        del claims[name]
    if trusted:
        claims.update(email=email, email_verified=True)
        return claims, True, None
    claims["email_verified"] = False
    return claims, False, email if isinstance(email, str) and email else None
