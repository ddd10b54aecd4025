"""OpenID Connect relying party: authorization code flow with PKCE, protocol only.

No database and no Flask request globals: ``begin_login`` returns the login
state for the caller to keep server-side, ``finish_login`` gets it back with
the callback parameters. Every refusal raises ``OidcError`` with a stable
``reason_code`` (for the log and the audit event) and a precise ``detail``;
the person sees a generic message chosen by the caller.

JOSE is done with joserfc, the library Authlib's own OIDC code now uses
(``authlib.jose`` is deprecated and warns on import). Its claim checks are not
relied on: issuer, audience, times and nonce are compared here, explicitly.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import Key, import_key

import mappings
from mappings.sources import OIDC_ALIASES

WELL_KNOWN = "/.well-known/openid-configuration"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Asymmetric only: "none" forges anything, HS* would make the client secret a
# signing key (anyone holding it mints tokens) and invites alg confusion (RFC 8725 §2.1).
SUPPORTED_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
HTTP_TIMEOUT = 5.0  # seconds per connect / read
HTTP_DEADLINE = 10.0  # seconds for a whole response body
MAX_RESPONSE_BYTES = 512 * 1024
MAX_STATE_AGE = 600  # seconds between begin_login and the callback
LEEWAY = 60  # seconds of clock skew tolerated on exp / iat / nbf
EMAIL_CLAIMS = frozenset(n.casefold() for n in ("email", *OIDC_ALIASES["email"]))
# Token mechanics, checked here and of no use to mapping rules (acr, amr, auth_time stay).
PROTOCOL_CLAIMS = ("nonce", "at_hash", "c_hash", "exp", "iat", "nbf", "jti")


class OidcError(Exception):
    """A refused OIDC step: ``reason_code`` is stable, ``detail`` says exactly what was wrong."""

    def __init__(self, reason_code: str, detail: str) -> None:
        super().__init__(f"{reason_code}: {detail}")
        self.reason_code = reason_code
        self.detail = detail


def _secure_url(url: Any) -> bool:
    """HTTPS, or plain HTTP to the loopback interface (tests and local development only)."""
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


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
        if not _secure_url(self.issuer) or not parts or parts.query or parts.fragment:
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


# ---------------------------------------------------------------- HTTP


def _fetch(
    http: requests.Session, method: str, url: str, reason: str, what: str, **kwargs: Any
) -> tuple[int, str, bytes]:
    """One back-channel request with a size and time bound; never follows redirects."""
    started = time.monotonic()
    try:
        with http.request(
            method, url, timeout=HTTP_TIMEOUT, allow_redirects=False, stream=True, **kwargs
        ) as resp:
            body = bytearray()
            # The deadline is checked between chunks: a provider that drips bytes just
            # under the read timeout can still hold a worker for a while.
            for chunk in resp.iter_content(4096):
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise OidcError(reason, f"{what}: response over {MAX_RESPONSE_BYTES} bytes")
                if time.monotonic() - started > HTTP_DEADLINE:
                    raise OidcError(reason, f"{what}: response took over {HTTP_DEADLINE} s")
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            return resp.status_code, ctype, bytes(body)
    except requests.RequestException as exc:
        raise OidcError(reason, f"{what}: {type(exc).__name__} from {url}") from exc


def _json_object(body: bytes, reason: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise OidcError(reason, f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise OidcError(reason, f"{what} is not a JSON object")
    return value


def _wire_text(value: Any, limit: int = 200) -> str:
    """A value from the other side, safe to put in a log line: printable and short."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- discovery


def check_discovery(issuer: str, doc: Mapping[str, Any]) -> None:
    """Refuse a provider document that is not for ``issuer`` or lacks what the code flow needs."""
    # OIDC Discovery §4.3: the issuer MUST be identical to the one the document was fetched for.
    if doc.get("issuer") != issuer:
        got = _wire_text(doc.get("issuer"))
        raise OidcError("discovery_issuer_mismatch", f"document issuer {got} is not {issuer}")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not _secure_url(doc.get(name)):
            raise OidcError("discovery_failed", f"{name} missing or not https")
    if "userinfo_endpoint" in doc and not _secure_url(doc["userinfo_endpoint"]):
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
    if not _secure_url(issuer):
        raise OidcError("discovery_failed", f"issuer {_wire_text(issuer)} is not https")
    url = issuer.rstrip("/") + WELL_KNOWN
    status, _, body = _fetch(http, "GET", url, "discovery_failed", "discovery")
    if status != 200:
        raise OidcError("discovery_failed", f"{url} answered HTTP {status}")
    doc = _json_object(body, "discovery_failed", "discovery document")
    check_discovery(issuer, doc)
    return doc


def _discovery(
    config: OidcConnectionConfig, discovery: Mapping[str, Any] | None
) -> Mapping[str, Any]:
    doc = discovery if discovery is not None else config.discovery
    if doc is None:
        raise OidcError("discovery_failed", "no discovery document for this connection")
    check_discovery(config.issuer, doc)  # a cached document may belong to another connection
    return doc


# ---------------------------------------------------------------- JWKS


@dataclass
class _KeyEntry:
    jwks_uri: str
    keys: list[Key]
    loaded_at: float  # when these keys were fetched: staleness
    tried_at: float  # the last fetch attempt, good or bad: the refetch rate limit


class JwksCache:
    """Signing keys per issuer, shared by logins (thread-safe; keep one per process).

    An unknown ``kid`` forces a refetch (key rotation), but at most once per
    ``refetch_interval`` per issuer: tokens with made-up key ids must not turn
    us into a request amplifier against the IdP. It is a cache, not shared
    state: with N nodes, an issuer sees at most N refetches per interval. The
    lock is held while fetching, so concurrent logins wait for one request.
    """

    def __init__(
        self,
        refetch_interval: float = 60.0,
        max_age: float = 86400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refetch_interval = refetch_interval
        self.max_age = max_age
        self.clock = clock
        self._entries: dict[str, _KeyEntry] = {}
        self._lock = threading.Lock()

    def keys(
        self, issuer: str, jwks_uri: str, http: requests.Session, seed: Mapping | None = None
    ) -> list[Key]:
        """The cached keys; fetched on first use, when stale, or when the jwks_uri changed."""
        with self._lock:
            entry, now = self._entries.get(issuer), self.clock()
            if entry is None and seed is not None:
                entry = _KeyEntry(jwks_uri, _import_keys(seed), now, float("-inf"))
                self._entries[issuer] = entry
            if entry and entry.jwks_uri == jwks_uri and now - entry.loaded_at < self.max_age:
                return entry.keys
            return self._fetch(issuer, jwks_uri, http)

    def refresh(self, issuer: str, jwks_uri: str, http: requests.Session) -> list[Key] | None:
        """Refetch after an unknown kid; None when the last attempt is too recent."""
        with self._lock:
            entry = self._entries.get(issuer)
            if entry and self.clock() - entry.tried_at < self.refetch_interval:
                return None
            return self._fetch(issuer, jwks_uri, http)

    def _fetch(self, issuer: str, jwks_uri: str, http: requests.Session) -> list[Key]:
        now = self.clock()
        entry = self._entries.setdefault(issuer, _KeyEntry(jwks_uri, [], float("-inf"), now))
        entry.tried_at = now  # a failing IdP is also asked at most once per interval
        status, _, body = _fetch(http, "GET", jwks_uri, "jwks_failed", "JWKS")
        if status != 200:
            raise OidcError("jwks_failed", f"{jwks_uri} answered HTTP {status}")
        keys = _import_keys(_json_object(body, "jwks_failed", "JWKS"))
        self._entries[issuer] = _KeyEntry(jwks_uri, keys, now, now)
        return keys


def _import_keys(jwks: Mapping[str, Any]) -> list[Key]:
    """Public signing keys of a JWKS (RFC 7517 §5); keys we cannot read are skipped, not fatal."""
    keys = []
    raw = jwks.get("keys")
    for item in raw[:100] if isinstance(raw, list) else []:
        if isinstance(item, dict) and item.get("use", "sig") == "sig":
            try:
                keys.append(import_key(item))
            except (JoseError, ValueError, TypeError, KeyError):
                continue
    return keys


def _candidates(keys: list[Key], kid: str | None, alg: str) -> list[Key]:
    kty = KEY_TYPES.get(alg[:2])
    return [
        k
        for k in keys
        if k.key_type == kty and (kid is None or k.kid == kid) and k.get("alg") in (None, alg)
    ]


# ---------------------------------------------------------------- login


def begin_login(
    config: OidcConnectionConfig,
    redirect_uri: str,
    discovery: Mapping[str, Any] | None = None,
    *,
    login_hint: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The URL to send the browser to, and the state to keep server-side until the callback."""
    doc = _discovery(config, discovery)
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
        raise OidcError("iss_mismatch", f"iss parameter {_wire_text(iss)} is not {config.issuer}")
    if error is not None:
        description = _arg(args, "error_description")
        text = _wire_text(error) + (f" ({_wire_text(description)})" if description else "")
        raise OidcError("idp_error", f"provider refused: {text}")
    code = _arg(args, "code")
    if not code or len(code) > 4096:
        raise OidcError("missing_code", "no authorization code in the callback")
    return code


def _exchange_code(
    config: OidcConnectionConfig,
    doc: Mapping[str, Any],
    code: str,
    state_data: Mapping[str, Any],
    http: requests.Session,
) -> dict[str, Any]:
    """The token request (RFC 6749 §4.1.3, OIDC Core §3.1.3.1) with the PKCE verifier."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": state_data.get("redirect_uri"),
        "code_verifier": state_data.get("code_verifier"),  # RFC 7636 §4.5
    }
    headers = {"Accept": "application/json"}
    # OIDC Discovery §3: token_endpoint_auth_methods_supported defaults to client_secret_basic.
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if not config.client_secret:
        data["client_id"] = config.client_id
    elif "client_secret_basic" in methods:
        # RFC 6749 §2.3.1: both parts form-urlencoded before base64.
        pair = f"{quote(config.client_id, safe='')}:{quote(config.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + b64encode(pair.encode()).decode()
    elif "client_secret_post" in methods:
        data.update(client_id=config.client_id, client_secret=config.client_secret)
    else:
        raise OidcError("token_request_failed", f"no supported client auth method in {methods}")
    url = doc["token_endpoint"]
    status, _, body = _fetch(
        http, "POST", url, "token_request_failed", "token endpoint", data=data, headers=headers
    )
    if status != 200:
        try:
            err = _json_object(body, "token_request_failed", "token error")
            text = f"{_wire_text(err.get('error'))} ({_wire_text(err.get('error_description'))})"
        except OidcError:
            text = "no error body"
        raise OidcError("token_request_failed", f"token endpoint answered HTTP {status}: {text}")
    token = _json_object(body, "token_request_failed", "token response")
    # OIDC Core §3.1.3.3: a successful response MUST carry an id_token and a Bearer token.
    if not isinstance(token.get("id_token"), str):
        raise OidcError("missing_id_token", "token response has no id_token")
    if not isinstance(token.get("access_token"), str):
        raise OidcError("token_request_failed", "token response has no access_token")
    if str(token.get("token_type", "")).lower() != "bearer":
        raise OidcError("token_request_failed", "token_type is not Bearer")
    return token


def _verify_signature(
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
        raise OidcError("alg_not_allowed", f"id_token alg {_wire_text(alg)} not allowed")
    if kid is not None and not isinstance(kid, str):
        raise OidcError("malformed_id_token", "kid is not a string")
    keys = _candidates(jwks_cache.keys(config.issuer, doc["jwks_uri"], http, config.jwks), kid, alg)
    if not keys:
        # The IdP may have rotated its keys: refetch, rate-limited by the cache.
        fresh = jwks_cache.refresh(config.issuer, doc["jwks_uri"], http)
        if fresh is None:
            raise OidcError("unknown_key", f"no key {_wire_text(kid)} (JWKS refetched recently)")
        keys = _candidates(fresh, kid, alg)
        if not keys:
            raise OidcError("unknown_key", f"no key {_wire_text(kid)} in the JWKS after refetch")
    for key in keys[:10]:
        try:
            return jwt.decode(id_token, key, algorithms=[alg]).claims, alg
        except BadSignatureError:
            continue
        except (JoseError, ValueError, TypeError) as exc:
            raise OidcError("malformed_id_token", f"id_token: {_wire_text(exc)}") from exc
    raise OidcError("bad_signature", f"id_token signature does not verify (kid {_wire_text(kid)})")


def _number(claims: Mapping[str, Any], name: str, required: bool) -> float | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OidcError("malformed_id_token", f"{name} missing or not a number")
    return float(value)


def _check_id_token_claims(
    config: OidcConnectionConfig,
    claims: Mapping[str, Any],
    nonce: Any,
    access_token: str,
    alg: str,
) -> None:
    """OIDC Core §3.1.3.7 steps 2-11 and §3.1.3.8, every comparison done here."""
    if claims.get("iss") != config.issuer:  # step 2: exact match
        raise OidcError("wrong_issuer", f"id_token iss {_wire_text(claims.get('iss'))}")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if config.client_id not in audiences:  # step 3
        raise OidcError("wrong_audience", f"id_token aud {_wire_text(aud)} lacks our client_id")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != config.client_id:  # steps 4-5
        raise OidcError("wrong_audience", f"azp {_wire_text(azp)} is not our client_id")
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


def _userinfo(
    doc: Mapping[str, Any], access_token: str, sub: str, http: requests.Session
) -> dict[str, Any] | None:
    """The UserInfo response (OIDC Core §5.3), only for the subject of the ID token."""
    url = doc.get("userinfo_endpoint")
    if not url:
        return None
    status, ctype, body = _fetch(
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
    info = _json_object(body, "userinfo_failed", "userinfo")
    # OIDC Core §5.3.2: the sub MUST exactly match the ID token's, else the values MUST NOT be used.
    if info.get("sub") != sub:
        raise OidcError("userinfo_sub_mismatch", f"userinfo sub {_wire_text(info.get('sub'))}")
    return info


def _merge_claims(
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
    for name in [k for k in claims if isinstance(k, str) and k.casefold() in EMAIL_CLAIMS]:
        del claims[name]
    claims.pop("email_verified", None)
    if trusted:
        claims.update(email=email, email_verified=True)
        return claims, True, None
    claims["email_verified"] = False
    return claims, False, email if isinstance(email, str) and email else None


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
    doc = _discovery(config, discovery)
    code = _check_callback(config, doc, callback_args, state_data)
    token = _exchange_code(config, doc, code, state_data, http)
    id_claims, alg = _verify_signature(config, doc, token["id_token"], http, jwks_cache)
    _check_id_token_claims(config, id_claims, state_data.get("nonce"), token["access_token"], alg)
    info = _userinfo(doc, token["access_token"], id_claims["sub"], http)
    claims, trusted, unverified = _merge_claims(id_claims, info)
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
