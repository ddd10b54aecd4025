"""OpenID Connect relying party: authorization code flow with PKCE, protocol only.

No database and no Flask request globals: ``begin_login`` returns the login
state for the caller to keep server-side, ``finish_login`` gets it back with
the callback parameters and runs the steps in order: the callback
(here), discovery (``discovery``), the token request (``token``), the ID token
(``id_token``, keys from ``jwks``), userinfo and claims (``claims``). Every
refusal raises ``OidcError`` with a stable ``reason_code`` (for the log and the
audit event) and a precise ``detail``; the person sees a generic message chosen
by the caller.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

import mappings
from sso.oidc.claims import check_storable, fetch_userinfo, merge_claims
from sso.oidc.config import OidcConnectionConfig, OidcError, OidcLogin, wire_text
from sso.oidc.discovery import for_config
from sso.oidc.id_token import check_claims, verify_signature
from sso.oidc.jwks import JwksCache
from sso.oidc.token import exchange_code

MAX_STATE_AGE = 600  # seconds between begin_login and the callback


def begin_login(
    config: OidcConnectionConfig,
    redirect_uri: str,
    discovery: Mapping[str, Any] | None = None,
    *,
    login_hint: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The URL to send the browser to, and the state to keep server-side until the callback."""
    doc = for_config(config, discovery)
    state_data = {
        "state": generate_token(43),  # 43 of 62 symbols: over 250 bits
        "nonce": generate_token(43),
        "code_verifier": generate_token(64),  # RFC 7636 §4.1: 43 to 128 unreserved characters
        "redirect_uri": redirect_uri,
        "created_at": int(time.time()),
        "issuer": config.issuer,
    }
    params = [
        ("response_type", "code"),
        ("client_id", config.client_id),
        ("redirect_uri", redirect_uri),
        ("scope", config.scope),
        ("state", state_data["state"]),
        ("nonce", state_data["nonce"]),
        # RFC 7636 §4.2-4.3: only the S256 hash of the verifier leaves this server.
        ("code_challenge", create_s256_code_challenge(state_data["code_verifier"])),
        ("code_challenge_method", "S256"),
    ]
    if login_hint:
        params.append(("login_hint", login_hint))  # OIDC Core §3.1.2.1, home-realm discovery
    return add_params_to_uri(doc["authorization_endpoint"], params), state_data


def _arg(args: Mapping[str, Any], name: str) -> str | None:
    """One callback parameter; repeated ones are refused (RFC 6749 §3.1)."""
    if hasattr(args, "getlist") and len(args.getlist(name)) > 1:
        raise OidcError("invalid_callback", f"parameter {name!r} repeated")
    value = args.get(name)
    return value if isinstance(value, str) else None


def _check_callback(
    config: OidcConnectionConfig,
    doc: Mapping[str, Any],
    args: Mapping[str, Any],
    state_data: Mapping[str, Any],
) -> str:
    """The authorization response (RFC 6749 §4.1.2, RFC 9207 §2.4); returns the code."""
    state, error = _arg(args, "state"), _arg(args, "error")
    expected = state_data.get("state")
    if not isinstance(expected, str) or state_data.get("issuer") != config.issuer:
        raise OidcError("state_mismatch", "stored login state is not for this connection")
    # RFC 6749 §10.12: the state binds the response to this browser's login (CSRF).
    # An error response without state ends the login anyway: report the IdP's error.
    if (state is None and error is None) or (
        state is not None and not hmac.compare_digest(state.encode(), expected.encode())
    ):
        raise OidcError("state_mismatch", "state parameter missing or different")
    created = state_data.get("created_at")
    if not isinstance(created, int | float) or time.time() - created > MAX_STATE_AGE:
        raise OidcError("state_expired", f"login started over {MAX_STATE_AGE} s ago")
    # RFC 9207 §2.4: compare iss when present; require it when the provider advertises it.
    iss = _arg(args, "iss")
    if iss is None and doc.get("authorization_response_iss_parameter_supported") is True:
        raise OidcError("iss_missing", "provider advertises RFC 9207 but sent no iss")
    if iss is not None and iss != config.issuer:
        raise OidcError("iss_mismatch", f"iss parameter {wire_text(iss)} is not {config.issuer}")
    if error is not None:
        description = _arg(args, "error_description")
        text = wire_text(error) + (f" ({wire_text(description)})" if description else "")
        raise OidcError("idp_error", f"provider refused: {text}")
    code = _arg(args, "code")
    if not code or len(code) > 4096:
        raise OidcError("missing_code", "no authorization code in the callback")
    return code


def finish_login(
    config: OidcConnectionConfig,
    callback_args: Mapping[str, Any],
    state_data: Mapping[str, Any],
    discovery: Mapping[str, Any] | None,
    http: requests.Session,
    jwks_cache: JwksCache,
) -> OidcLogin:
    """Check the callback, redeem the code, verify the ID token, read userinfo; or refuse.

    The caller must delete ``state_data`` before calling (single use), and
    checks the e-mail domain allow-list and the sign-in rules afterwards.
    """
    doc = for_config(config, discovery)
    code = _check_callback(config, doc, callback_args, state_data)
    token = exchange_code(config, doc, code, state_data, http)
    id_claims, alg = verify_signature(config, doc, token["id_token"], http, jwks_cache)
    check_storable("ID token", id_claims)
    check_claims(config, id_claims, state_data.get("nonce"), token["access_token"], alg)
    info = fetch_userinfo(doc, token["access_token"], id_claims["sub"], http)
    if info is not None:
        check_storable("userinfo", info)
    claims, trusted, unverified = merge_claims(id_claims, info)
    return OidcLogin(
        identity=mappings.ExternalIdentity.from_oidc(claims),
        issuer=config.issuer,
        subject=id_claims["sub"],
        claims=claims,
        id_token_claims=dict(id_claims),
        userinfo=info,
        email_trusted=trusted,
        unverified_email=unverified,
    )
