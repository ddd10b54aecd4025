"""The OpenID Connect relying party against a real provider running on 127.0.0.1.

The provider (``tests/sso/oidc_op``) is Authlib's authorization server with
PKCE, OpenID Connect and RFC 9207; the browser is ``requests`` following the
authorization URL. Malicious tokens are the provider's own, rewritten and
re-signed by the test through its token hook. Test names follow the step of
OIDC Core §3.1.3.7 (or the RFC) that refuses them.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import Key, OctKey

import mappings
from sso.oidc.config import OidcConnectionConfig, OidcError, OidcLogin
from sso.oidc.discovery import discover
from sso.oidc.jwks import JwksCache
from sso.oidc.login import begin_login, finish_login
from tests.sso.oidc_op.provider import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, LocalOP, running_op

Claims = dict[str, Any]


class _StandInIdentity:
    """Used only while ``mappings.ExternalIdentity`` is not there yet (it is being written)."""

    def __init__(self, claims: Claims) -> None:
        self.claims = claims

    @classmethod
    def from_oidc(cls, claims: Claims) -> _StandInIdentity:
        return cls(claims)


@pytest.fixture(autouse=True)
def _external_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(mappings, "ExternalIdentity"):
        monkeypatch.setattr(mappings, "ExternalIdentity", _StandInIdentity, raising=False)


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalOP]:
    with running_op() as op:
        yield op


@pytest.fixture
def op(provider: LocalOP) -> LocalOP:
    provider.reset()
    return provider


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def config(op: LocalOP) -> OidcConnectionConfig:
    return OidcConnectionConfig(issuer=op.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> JwksCache:
    return JwksCache(refetch_interval=60, clock=clock)


def browse(url: str) -> dict[str, str]:
    """The browser: follow the authorization URL, auto-consent, read the callback parameters."""
    resp = requests.get(url, allow_redirects=False, timeout=5)
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return dict(parse_qsl(urlsplit(location).query))


def login(
    op: LocalOP,
    config: OidcConnectionConfig,
    http: requests.Session,
    cache: JwksCache,
    *,
    args: Callable[[dict[str, str]], None] = lambda a: None,
    state: Callable[[dict[str, Any]], None] = lambda s: None,
) -> OidcLogin:
    """A whole login; ``args`` and ``state`` may tamper with the callback or the stored state."""
    doc = discover(op.issuer, http)
    url, state_data = begin_login(config, REDIRECT_URI, doc)
    callback = browse(url)
    args(callback)
    state(state_data)
    return finish_login(config, callback, state_data, doc, http, cache)


def refused(reason: str, run: Callable[[], Any]) -> OidcError:
    """Run ``run`` and expect exactly this reason code."""
    with pytest.raises(OidcError) as info:
        run()
    assert info.value.reason_code == reason, info.value
    return info.value


def resign(
    op: LocalOP,
    change: Callable[[Claims], None] = lambda c: None,
    *,
    key: Key | None = None,
    header: dict[str, Any] | None = None,
) -> None:
    """Serve the provider's id_token with its claims changed, re-signed with ``key`` (RS256)."""

    def hook(body: Claims) -> Claims:
        assert op.signing_key is not None
        claims = jwt.decode(body["id_token"], op.signing_key).claims
        change(claims)
        signer = key or op.signing_key
        body["id_token"] = jwt.encode(header or {"alg": "RS256", "kid": signer.kid}, claims, signer)
        return body

    op.token_hook = hook


def _b64(data: Claims) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# ---------------------------------------------------------------- discovery and request


def test_discover_returns_the_checked_document(op: LocalOP, http: requests.Session) -> None:
    """The provider's configuration is fetched and returned as is."""
    doc = discover(op.issuer, http)
    assert doc["issuer"] == op.issuer
    assert doc["token_endpoint"] == f"{op.issuer}/token"


def test_discover_refuses_an_issuer_mismatch(op: LocalOP, http: requests.Session) -> None:
    """OIDC Discovery §4.3: a document naming another issuer is refused."""
    op.discovery_overrides["issuer"] = "https://evil.example"
    err = refused("discovery_issuer_mismatch", lambda: discover(op.issuer, http))
    assert "evil.example" in err.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("jwks_uri", None),
        ("token_endpoint", "http://idp.example/token"),
        ("code_challenge_methods_supported", ["plain"]),
    ],
)
def test_discover_refuses_an_unusable_document(
    op: LocalOP, http: requests.Session, field: str, value: Any
) -> None:
    """No JWKS, a plain-HTTP endpoint off loopback, or no PKCE S256: discovery fails."""
    op.discovery_overrides[field] = value
    refused("discovery_failed", lambda: discover(op.issuer, http))


def test_discover_refuses_plain_http_and_unreachable_issuers(http: requests.Session) -> None:
    """HTTPS is required off loopback; a closed port is a clear discovery failure."""
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    refused("discovery_failed", lambda: discover("http://idp.example", http))
    refused("discovery_failed", lambda: discover(closed, http))


def test_config_refuses_none_and_hmac_algorithms(op: LocalOP) -> None:
    """A connection can never be configured to accept alg none or HS256."""
    for algs in (("none",), ("RS256", "HS256")):
        refused(
            "invalid_config",
            lambda a=algs: OidcConnectionConfig(op.issuer, CLIENT_ID, "s", allowed_algs=a),
        )


def test_config_keeps_the_secret_out_of_its_repr(config: OidcConnectionConfig) -> None:
    """The client secret never reaches a log line through repr()."""
    assert CLIENT_SECRET not in repr(config)


def test_begin_login_sends_pkce_state_and_nonce(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig
) -> None:
    """RFC 7636 §4.3: the request carries the S256 challenge, never the verifier."""
    url, state = begin_login(config, REDIRECT_URI, discover(op.issuer, http))
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["response_type"] == "code"
    assert params["scope"] == "openid email profile"
    assert params["state"] == state["state"] and params["nonce"] == state["nonce"]
    assert params["code_challenge_method"] == "S256"
    assert state["code_verifier"] not in url
    assert set(state) >= {"state", "nonce", "code_verifier", "redirect_uri", "created_at"}


# ---------------------------------------------------------------- the good path


def test_login_end_to_end(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """A real login: code redeemed with client_secret_basic, ID token verified, userinfo read."""
    result = login(op, config, http, cache)
    assert (result.issuer, result.subject) == (op.issuer, "user-42")
    assert result.email_trusted and result.unverified_email is None
    assert result.claims["email"] == "alice@example.com"
    assert result.claims["groups"] == ["Engineering"]
    assert "nonce" not in result.claims and result.id_token_claims["nonce"]
    assert result.userinfo is not None and result.userinfo["sub"] == "user-42"
    assert isinstance(result.identity, mappings.ExternalIdentity)
    sent = op.token_requests[-1]
    assert sent["authorization"].startswith("Basic ")
    assert "client_secret" not in sent["form"] and sent["form"]["code_verifier"]


def test_login_with_client_secret_post(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """A provider advertising only client_secret_post gets the secret in the body."""
    op.client.auth_methods = ("client_secret_post",)
    assert login(op, config, http, cache).subject == "user-42"
    assert op.token_requests[-1]["form"]["client_secret"] == CLIENT_SECRET


# ---------------------------------------------------------------- the authorization response


def test_wrong_state_is_refused(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """RFC 6749 §10.12: a callback whose state is not ours is refused before any request."""
    refused(
        "state_mismatch",
        lambda: login(op, config, http, cache, args=lambda a: a.update(state="forged")),
    )
    assert op.token_requests == []


def test_old_state_is_refused(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """A login started more than ten minutes ago cannot be finished."""
    refused(
        "state_expired",
        lambda: login(
            op, config, http, cache, state=lambda s: s.update(created_at=time.time() - 3600)
        ),
    )


def test_idp_error_is_reported(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """RFC 6749 §4.1.2.1: the provider's error response becomes idp_error with its code."""
    op.deny = True
    err = refused("idp_error", lambda: login(op, config, http, cache))
    assert "access_denied" in err.detail


def test_rfc9207_missing_iss_is_refused(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """RFC 9207 §2.4: the provider advertises the iss parameter, so its absence is refused."""
    op.send_iss = False
    refused("iss_missing", lambda: login(op, config, http, cache))


def test_rfc9207_wrong_iss_is_refused(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """RFC 9207 §2.4: a response from another issuer (mix-up attack) is refused."""
    refused(
        "iss_mismatch",
        lambda: login(op, config, http, cache, args=lambda a: a.update(iss="https://evil.example")),
    )
    assert op.token_requests == []


def test_rfc9207_iss_not_required_when_not_advertised(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """A provider that does not advertise RFC 9207 may leave iss out."""
    op.send_iss = False
    op.discovery_overrides["authorization_response_iss_parameter_supported"] = None
    assert login(op, config, http, cache).subject == "user-42"


# ---------------------------------------------------------------- the token response


def test_pkce_verifier_is_checked_by_the_provider(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """RFC 7636 §4.6: a wrong verifier makes the token request fail, reported with its error."""
    wrong = "x" * 64
    err = refused(
        "token_request_failed",
        lambda: login(op, config, http, cache, state=lambda s: s.update(code_verifier=wrong)),
    )
    assert "invalid_grant" in err.detail


def test_missing_id_token_is_refused(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """OIDC Core §3.1.3.3: a token response without an id_token is plain OAuth, refused."""
    op.token_hook = lambda body: {k: v for k, v in body.items() if k != "id_token"}
    refused("missing_id_token", lambda: login(op, config, http, cache))


# ---------------------------------------------------------------- the ID token


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda c: c.update(iss="https://evil.example"), "wrong_issuer"),  # step 2
        (lambda c: c.update(aud=["someone-else"]), "wrong_audience"),  # step 3
        (lambda c: c.update(aud=[CLIENT_ID, "other"]), "wrong_audience"),  # step 4: no azp
        (lambda c: c.update(azp="other"), "wrong_audience"),  # step 5
        (lambda c: c.update(exp=int(time.time()) - 600), "expired"),  # step 9
        (lambda c: c.update(iat=int(time.time()) + 3600), "not_yet_valid"),  # step 10
        (lambda c: c.update(nonce="replayed"), "nonce_mismatch"),  # step 11
        (lambda c: c.pop("nonce"), "nonce_mismatch"),  # step 11
        (lambda c: c.pop("sub"), "malformed_id_token"),  # §2
        (lambda c: c.update(sub="u" * 256), "malformed_id_token"),  # §2: at most 255 ASCII
        (lambda c: c.update(at_hash="AAAAAAAAAAAAAAAAAAAAAA"), "at_hash_mismatch"),  # §3.1.3.8
    ],
    ids=[
        "wrong-iss",
        "wrong-aud",
        "multi-aud-no-azp",
        "wrong-azp",
        "expired",
        "issued-in-future",
        "nonce-mismatch",
        "nonce-missing",
        "no-sub",
        "sub-too-long",
        "at-hash",
    ],
)
def test_id_token_claims_are_checked(
    op: LocalOP,
    http: requests.Session,
    config: OidcConnectionConfig,
    cache: JwksCache,
    change: Callable[[Claims], None],
    reason: str,
) -> None:
    """OIDC Core §3.1.3.7: a correctly signed token with a wrong claim is refused."""
    resign(op, change)
    refused(reason, lambda: login(op, config, http, cache))


def test_an_audience_besides_ours_is_refused_even_with_our_azp(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """OIDC Core §3.1.3.7 step 3: a token with an audience the client does not trust MUST
    be rejected; a connection trusts its own client_id only (it was accepted when azp
    named us). Our client_id alone, as a one-element list, is fine."""
    resign(op, lambda c: c.update(aud=[CLIENT_ID, "other"], azp=CLIENT_ID))
    refused("wrong_audience", lambda: login(op, config, http, cache))
    resign(op, lambda c: c.update(aud=[CLIENT_ID], azp=CLIENT_ID))
    assert login(op, config, http, cache).subject == "user-42"


def test_small_clock_skew_is_tolerated(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """A token expired a few seconds ago (clock skew) still passes."""
    resign(op, lambda c: c.update(exp=int(time.time()) - 5))
    assert login(op, config, http, cache).subject == "user-42"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("exp", float("nan")),
        ("exp", float("inf")),
        ("exp", 10**400),
        ("iat", float("nan")),
        ("iat", float("-inf")),
        ("nbf", float("nan")),
    ],
    ids=["exp-nan", "exp-infinity", "exp-beyond-float", "iat-nan", "iat-minus-infinity", "nbf-nan"],
)
def test_non_finite_time_claims_are_refused(
    op: LocalOP,
    http: requests.Session,
    config: OidcConnectionConfig,
    cache: JwksCache,
    name: str,
    value: float,
) -> None:
    """RFC 7519 §2: a NumericDate that is NaN, infinite or beyond a float is malformed_id_token
    (Python's json reads NaN; exp=NaN fails every comparison: a token that never expires)."""
    resign(op, lambda c: c.update({name: value}))
    refused("malformed_id_token", lambda: login(op, config, http, cache))


def test_alg_none_is_refused(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """RFC 8725 §3.1: an unsigned token is refused on its header, whatever it claims."""

    def unsigned(body: Claims) -> Claims:
        claims = jwt.decode(body["id_token"], op.signing_key).claims
        body["id_token"] = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        return body

    op.token_hook = unsigned
    refused("alg_not_allowed", lambda: login(op, config, http, cache))


def test_hs256_with_the_client_secret_is_refused(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """A token MACed with the client secret (alg confusion) is refused: only pinned algs pass."""

    def hmac_signed(body: Claims) -> Claims:
        claims = jwt.decode(body["id_token"], op.signing_key).claims
        secret = OctKey.import_key(CLIENT_SECRET)
        body["id_token"] = jwt.encode({"alg": "HS256"}, claims, secret, algorithms=["HS256"])
        return body

    op.token_hook = hmac_signed
    refused("alg_not_allowed", lambda: login(op, config, http, cache))


def test_signature_by_another_key_with_our_kid_is_refused(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """A token signed by an attacker's key that claims the provider's kid fails verification."""
    forger = op.keys[2]
    resign(op, key=forger, header={"alg": "RS256", "kid": "k1"})
    refused("bad_signature", lambda: login(op, config, http, cache))


def test_tampered_payload_is_refused(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """A token whose payload was swapped after signing fails verification."""

    def swap(body: Claims) -> Claims:
        header, _, signature = body["id_token"].split(".")
        claims = jwt.decode(body["id_token"], op.signing_key).claims
        body["id_token"] = f"{header}.{_b64({**claims, 'sub': 'admin'})}.{signature}"
        return body

    op.token_hook = swap
    refused("bad_signature", lambda: login(op, config, http, cache))


# ---------------------------------------------------------------- key rotation


def test_unknown_kid_refetches_jwks_once_per_interval(
    op: LocalOP,
    http: requests.Session,
    config: OidcConnectionConfig,
    cache: JwksCache,
    clock: Clock,
) -> None:
    """Rotation works by refetching the JWKS; a second unknown kid within the limit does not refetch."""
    login(op, config, http, cache)
    assert op.jwks_requests == 1

    op.published, op.signing_key = [op.keys[0], op.keys[1]], op.keys[1]  # the IdP rotates
    clock.now += 61
    assert login(op, config, http, cache).subject == "user-42"
    assert op.jwks_requests == 2

    op.signing_key = op.keys[2]  # a kid the JWKS does not have, right after a refetch
    clock.now += 5
    err = refused("unknown_key", lambda: login(op, config, http, cache))
    assert "k3" in err.detail
    assert op.jwks_requests == 2

    op.published = [op.keys[1], op.keys[2]]  # once the interval is over, it is fetched again
    clock.now += 60
    assert login(op, config, http, cache).subject == "user-42"
    assert op.jwks_requests == 3


def test_kid_still_unknown_after_refetch_is_refused(
    op: LocalOP,
    http: requests.Session,
    config: OidcConnectionConfig,
    cache: JwksCache,
    clock: Clock,
) -> None:
    """A kid the provider does not publish is refused after one refetch."""
    login(op, config, http, cache)
    op.signing_key = op.keys[2]
    clock.now += 61
    err = refused("unknown_key", lambda: login(op, config, http, cache))
    assert "after refetch" in err.detail
    assert op.jwks_requests == 2


def test_configured_jwks_is_used_without_fetching(
    op: LocalOP, http: requests.Session, cache: JwksCache
) -> None:
    """Keys cached with the connection verify tokens without a JWKS request."""
    jwks = {"keys": [op.keys[0].as_dict(private=False)]}
    config = OidcConnectionConfig(op.issuer, CLIENT_ID, CLIENT_SECRET, jwks=jwks)
    assert login(op, config, http, cache).subject == "user-42"
    assert op.jwks_requests == 0


# ---------------------------------------------------------------- userinfo and e-mail


def test_userinfo_for_another_subject_is_refused(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """OIDC Core §5.3.2: userinfo about someone else is never used."""
    op.userinfo_overrides["sub"] = "user-99"
    refused("userinfo_sub_mismatch", lambda: login(op, config, http, cache))


def test_unverified_email_is_not_trusted(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """An e-mail the IdP has not verified is dropped (with mail aliases) and flagged."""
    op.user.update(email_verified=False, mail="alice@example.com")
    result = login(op, config, http, cache)
    assert not result.email_trusted
    assert result.unverified_email == "alice@example.com"
    assert "email" not in result.claims and "mail" not in result.claims
    assert result.claims["email_verified"] is False


def test_email_without_email_verified_is_not_trusted(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """No email_verified claim at all (Entra ID) means not verified ("nOAuth")."""
    del op.user["email_verified"]
    result = login(op, config, http, cache)
    assert not result.email_trusted and "email" not in result.claims


def test_userinfo_cannot_verify_the_id_token_email(
    op: LocalOP, http: requests.Session, config: OidcConnectionConfig, cache: JwksCache
) -> None:
    """email and email_verified are read as a pair from one source, never mixed."""
    del op.user["email_verified"]
    op.userinfo_overrides.update(email="other@example.com", email_verified=True)
    result = login(op, config, http, cache)
    assert not result.email_trusted and result.unverified_email == "alice@example.com"
