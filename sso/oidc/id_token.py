"""ID token validation (OIDC Core §3.1.3.7): pinned algorithm, provider key, claims compared here.

JOSE is done with joserfc, the library Authlib's own OIDC code now uses
(``authlib.jose`` is deprecated and warns on import). Its claim checks are not
relied on: issuer, audience, times and nonce are compared here, explicitly.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Mapping
from typing import Any

import requests
from authlib.oidc.core.util import create_half_hash
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError

from sso.oidc.config import OidcConnectionConfig, OidcError, wire_text
from sso.oidc.jwks import JwksCache, candidates

LEEWAY = 60  # seconds of clock skew tolerated on exp / iat / nbf


def verify_signature(
    config: OidcConnectionConfig,
    doc: Mapping[str, Any],
    id_token: str,
    http: requests.Session,
    jwks_cache: JwksCache,
) -> tuple[dict[str, Any], str]:
    """Signature with a pinned algorithm and a key from the provider's JWKS (RFC 8725 §3.1)."""
    try:
        header = jws.extract_compact(id_token.encode()).headers()
    except (JoseError, ValueError, TypeError) as exc:
        raise OidcError("malformed_id_token", "id_token is not a compact JWS") from exc
    alg, kid = header.get("alg"), header.get("kid")
    # OIDC Core §3.1.3.7 steps 6-7: only the algorithms this connection allows, never "none".
    if alg not in config.allowed_algs:
        raise OidcError("alg_not_allowed", f"id_token alg {wire_text(alg)} not allowed")
    if kid is not None and not isinstance(kid, str):
        raise OidcError("malformed_id_token", "kid is not a string")
    keys = candidates(jwks_cache.keys(config.issuer, doc["jwks_uri"], http, config.jwks), kid, alg)
    if not keys:
        # The IdP may have rotated its keys: refetch, rate-limited by the cache.
        fresh = jwks_cache.refresh(config.issuer, doc["jwks_uri"], http)
        if fresh is None:
            raise OidcError("unknown_key", f"no key {wire_text(kid)} (JWKS refetched recently)")
        keys = candidates(fresh, kid, alg)
        if not keys:
            raise OidcError("unknown_key", f"no key {wire_text(kid)} in the JWKS after refetch")
    for key in keys[:10]:
        try:
            return jwt.decode(id_token, key, algorithms=[alg]).claims, alg
        except BadSignatureError:
            continue
        except (JoseError, ValueError, TypeError) as exc:
            raise OidcError("malformed_id_token", f"id_token: {wire_text(exc)}") from exc
    raise OidcError("bad_signature", f"id_token signature does not verify (kid {wire_text(kid)})")


def _number(claims: Mapping[str, Any], name: str, required: bool) -> float | None:
    """A NumericDate claim (RFC 7519 §2) as a finite number, None if absent and optional.

    Python's json reads ``NaN`` and ``Infinity`` (not JSON, RFC 8259 §6): every comparison
    with NaN is false, so ``exp: NaN`` would be a token that never expires."""
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OidcError("malformed_id_token", f"{name} missing or not a number")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range: no date
        raise OidcError("malformed_id_token", f"{name} is out of range") from None
    if not math.isfinite(number):
        raise OidcError("malformed_id_token", f"{name} is not a finite number")
    return number


def check_claims(
    config: OidcConnectionConfig,
    claims: Mapping[str, Any],
    nonce: Any,
    access_token: str,
    alg: str,
) -> None:
    """OIDC Core §3.1.3.7 steps 2-11 and §3.1.3.8, every comparison done here."""
    if claims.get("iss") != config.issuer:  # step 2: exact match
        raise OidcError("wrong_issuer", f"id_token iss {wire_text(claims.get('iss'))}")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if config.client_id not in audiences:  # step 3
        raise OidcError("wrong_audience", f"id_token aud {wire_text(aud)} lacks our client_id")
    if any(a != config.client_id for a in audiences):
        # Step 3 too: a token with audiences the client does not trust MUST be rejected.
        # A connection trusts its own client_id only (a token meant also for another
        # party is not one to sign a person in with here).
        raise OidcError("wrong_audience", f"id_token aud {wire_text(aud)} names other parties")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != config.client_id:  # steps 4-5
        raise OidcError("wrong_audience", f"azp {wire_text(azp)} is not our client_id")
    now = time.time()
    exp = _number(claims, "exp", True)
    if exp is not None and now > exp + LEEWAY:  # step 9
        raise OidcError("expired", f"id_token expired {int(now - exp)} s ago")
    for name in ("iat", "nbf"):  # step 10; nbf per RFC 7519 §4.1.5
        when = _number(claims, name, name == "iat")
        if when is not None and when > now + LEEWAY:
            raise OidcError("not_yet_valid", f"id_token {name} is {int(when - now)} s ahead")
    got = claims.get("nonce")  # step 11: replay protection
    if not (isinstance(got, str) and isinstance(nonce, str)) or not hmac.compare_digest(
        got.encode(), nonce.encode()
    ):
        raise OidcError("nonce_mismatch", "id_token nonce missing or different")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:  # OIDC Core §2
        raise OidcError("malformed_id_token", "sub missing or invalid")
    at_hash = claims.get("at_hash")
    if at_hash is not None:  # §3.1.3.8: optional in the code flow, checked when sent
        expected = create_half_hash(access_token, alg)  # None: no hash defined for this alg
        if expected is not None and at_hash != expected.decode():
            raise OidcError("at_hash_mismatch", "at_hash does not match the access token")
