"""The id_token's amr (RFC 8176): how the person signed in, through the product's OIDC flow."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from sso.signin.amr import local_amr, upstream_amr
from tests.sso.local.conftest import LOGIN
from tests.sso.local.test_mfa import _enrol, _require_mfa, _second_step, _sign_out
from tests.sso.local.test_passkeys import _register, _sign_in_with_passkey
from tests.sso.oidc_op.provider import LocalOP
from tests.sso.provider.test_endpoints import (
    authorize,
    code_from,
    exchange,
    pkce,
    verify_id_token,
)
from tests.sso.provider.test_endpoints import product as product
from tests.sso.saml_idp import FakeIdp, valid_response
from tests.support import Clock, Scim
from tests.support.authenticator import SoftAuthenticator
from tests.support.local import code_now, sign_in
from tests.support.sso import SamlConnection, make_person, oidc_login


@pytest.fixture
def app(app: Flask) -> Flask:
    """A fixed key-encryption secret for the provider's signing key (no key file written)."""
    app.config["OAUTH_KEY_SECRET"] = "test-oauth-secret"
    return app


def _id_token(client: FlaskClient, product: tuple[str, str]) -> dict[str, Any]:
    """With the browser's sign-in session: authorize, exchange the code, verify the id_token."""
    verifier, challenge = pkce()
    nonce = secrets.token_urlsafe(8)  # a nonce seen before is a replay
    code = code_from(authorize(client, product[0], challenge, nonce=nonce))
    resp = exchange(client, product, code, verifier)
    assert resp.status_code == 200, resp.get_json()
    # As the product would: the JWKS, and the issuer the discovery document names.
    keys = KeySet.import_key_set(client.get("/oauth/jwks").get_json())
    token = jwt.decode(resp.get_json()["id_token"], keys, algorithms=["RS256"])
    issuer = client.get("/.well-known/openid-configuration").get_json()["issuer"]
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": product[0]},
        nonce={"essential": True, "value": nonce},
    ).validate(token.claims)
    return dict(token.claims)


def test_password_alone_is_pwd(
    app: Flask, client: FlaskClient, scim: Scim, person: str, product: tuple[str, str]
) -> None:
    """authorize → /sso/login → password → back: the id_token says amr ["pwd"]."""
    verifier, challenge = pkce()
    resp = authorize(client, product[0], challenge, nonce="n-1")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/sso/login?next=")
    next_path = parse_qs(urlsplit(resp.headers["Location"]).query)["next"][0]
    assert sign_in(client, LOGIN, next_path=next_path).status_code == 303
    code = code_from(client.get(next_path))
    body = exchange(client, product, code, verifier).get_json()
    claims = verify_id_token(client, {**body, "nonce": "n-1"}, product[0]).claims
    assert claims["amr"] == ["pwd"]
    # userinfo is about the person, not the sign-in: no amr there.
    info = client.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert "amr" not in info.get_json()


def test_password_and_totp_is_pwd_otp_mfa(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    admin: Scim,
    person: str,
    clock: Clock,
    product: tuple[str, str],
) -> None:
    """A TOTP code after the password (at enrolment, then at a later sign-in): pwd, otp, mfa."""
    _require_mfa(admin)
    secret, codes = _enrol(client, clock)
    assert _id_token(client, product)["amr"] == ["pwd", "otp", "mfa"]
    _sign_out(client)
    clock.advance(seconds=60)
    assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa"
    assert _second_step(client, code_now(secret, clock.now)).status_code == 303
    assert _id_token(client, product)["amr"] == ["pwd", "otp", "mfa"]
    _sign_out(client)
    assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa"
    assert _second_step(client, codes[0]).status_code == 303  # a recovery code: one-time too
    assert _id_token(client, product)["amr"] == ["pwd", "otp", "mfa"]


def test_password_and_passkey_is_pwd_pop_user_mfa(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock, product: Any
) -> None:
    """A passkey as the second factor: proof of possession of a key, user presence, mfa."""
    key = SoftAuthenticator()
    assert sign_in(client, LOGIN).status_code == 303
    assert _register(client, key, "/sso/security").status_code == 200
    _sign_out(client)
    resp = _sign_in_with_passkey(client, key)
    assert resp.status_code == 200 and resp.get_json() == {"redirect": "/app"}
    assert _id_token(client, product)["amr"] == ["pwd", "pop", "user", "mfa"]


def test_oidc_identity_provider_amr_is_passed_on(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    product: tuple[str, str],
) -> None:
    """The IdP's id_token said amr ["pwd", "hwk", "mfa"]: our id_token says the same."""
    make_person(app, scim)
    local_op.amr = ["pwd", "hwk", "mfa"]
    assert oidc_login(client, oidc_conn).status_code == 303
    assert _id_token(client, product)["amr"] == ["pwd", "hwk", "mfa"]


@pytest.mark.parametrize("amr", [None, [], "pwd", [1, 2], ["pwd", "has space"]])
def test_oidc_identity_provider_without_a_usable_amr_gives_none(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    product: tuple[str, str],
    amr: Any,
) -> None:
    """No amr, or one that is not a list of short tokens, upstream: the claim is omitted."""
    make_person(app, scim)
    local_op.amr = amr
    assert oidc_login(client, oidc_conn).status_code == 303
    assert "amr" not in _id_token(client, product)


def test_saml_sign_in_has_no_amr(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    product: tuple[str, str],
) -> None:
    """SAML says nothing we can map: the id_token omits amr rather than guess."""
    make_person(app, scim)
    request_id = saml_connection.start()
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert "amr" not in _id_token(client, product)


def test_local_and_upstream_mappings() -> None:
    """The mapping itself: each proof once, mfa only beside a password; upstream shape checked."""
    assert local_amr(["password"]) == ("pwd",)
    assert local_amr(["password", "totp", "totp"]) == ("pwd", "otp", "mfa")
    assert local_amr(["password", "recovery_code"]) == ("pwd", "otp", "mfa")
    assert local_amr(["password", "webauthn"]) == ("pwd", "pop", "user", "mfa")
    assert local_amr(["test"]) == ()
    assert upstream_amr({"amr": ["rsa", "ngcmfa", "rsa"]}) == ("rsa", "ngcmfa")
    assert upstream_amr({"amr": ["x"] * 11}) == ()
    assert upstream_amr({"amr": ["a" * 41]}) == ()
    assert upstream_amr({}) == ()
