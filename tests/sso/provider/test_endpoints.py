"""The OpenID Connect provider facade: the product's authorization code flow with PKCE."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oauth2.rfc6749 import InvalidRequestError
from flask import Flask
from flask import session as flask_session
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from werkzeug.datastructures import MultiDict

from scim_server.db import db, utcnow
from scim_server.models import AuditEvent, User
from scim_server.services.licenses import assign, create_license
from scim_server.services.lifecycle import LOCKED_BY_ADMIN
from scim_server.services.roles import create_role, set_source_roles
from sso.extension import sso_extension
from sso.provider.checks import S256CodeChallenge
from sso.provider.clients import create_client, revoke_client
from sso.provider.keys import STAGING, encryption_secret, rotate
from sso.provider.models import OAuthCode, OAuthToken
from sso.signin.session import current_session, end_session, start_session
from tests.support import Scim, make_org
from tests.support.console import session_epoch
from tests.support.local import give_password, person_with_password
from tests.support.local import sign_in as password_sign_in

REDIRECT = "https://product.example.com/callback"
ISSUER = "http://localhost"
PRODUCT = "urn:scim-server:schemas:extension:product:1.0:User"


@pytest.fixture
def app(app: Flask) -> Flask:
    """The suite's app, with a fixed key-encryption secret (no key file written)."""
    app.config["OAUTH_KEY_SECRET"] = "test-oauth-secret"
    return app


def grant_access(app: Flask, org_id: str, user_id: str) -> None:
    """What an admin (or the rules) would do: the Engineer license and two roles."""
    with db.reader(app)() as s:
        lic = create_license(s, org_id, "Engineer", None)
        roles = [
            create_role(s, org_id, "Planner", "task"),
            create_role(s, org_id, "Helpdesk", "ticket"),
        ]
        with s.begin():
            user = s.get(User, (org_id, user_id))
            assert user is not None
            assign(s, org_id, user, lic, source="manual")
            set_source_roles(s, org_id, user_id, "manual", {r.id: None for r in roles})


@pytest.fixture
def person(app: Flask, scim: Scim) -> dict[str, Any]:
    """A provisioned user of "acme" holding the Engineer license and two roles."""
    user = scim.create_user(
        "bjensen@example.com",
        name={"givenName": "Barbara", "familyName": "Jensen"},
        emails=[{"value": "bjensen@example.com", "type": "work", "primary": True}],
    )
    grant_access(app, scim.org_id, user["id"])
    return user


@pytest.fixture
def product(app: Flask) -> tuple[str, str]:
    """The product: a global confidential client."""
    with db.reader(app)() as s:
        client, secret = create_client(s, "Product", [REDIRECT])
    assert secret is not None
    return client.client_id, secret


def sign_in(app: Flask, client: FlaskClient, org_id: str, user_id: str, age: int = 0) -> None:
    """What the SSO core does after a login: start_session, its cookie copied to the client.

    ``age`` backdates the sign-in by that many seconds.
    """
    epoch = session_epoch(app, org_id, user_id)
    with app.test_request_context():
        start_session(org_id, user_id, "test", None, epoch=epoch)
        if age:
            stored = dict(flask_session["sso"])
            flask_session["sso"] = {**stored, "auth_time": stored["auth_time"] - age}
        resp = app.response_class()
        app.session_interface.save_session(app, flask_session, resp)  # type: ignore[arg-type]
    value = resp.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], value)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(client: FlaskClient, client_id: str, challenge: str | None, **extra: str) -> Any:
    args = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile email",
        "state": "st-1",
        "nonce": extra.pop("nonce", secrets.token_hex(8)),
        **extra,
    }
    if challenge is not None:
        args.setdefault("code_challenge", challenge)
        args.setdefault("code_challenge_method", "S256")
    return client.get("/oauth/authorize", query_string={k: v for k, v in args.items() if v})


def code_from(resp: Any) -> str:
    assert resp.status_code == 302, resp.get_data(as_text=True)
    location = urlsplit(resp.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


def error_from(resp: Any) -> dict[str, str]:
    """OIDC Core §3.1.2.6: the error went back to the client's redirect_uri, with the state."""
    assert resp.status_code == 302, resp.get_data(as_text=True)
    location = urlsplit(resp.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["state"] == "st-1" and "code" not in query
    assert query["error_description"]
    return query


def exchange(
    client: FlaskClient, product: tuple[str, str], code: str, verifier: str, **extra: str
) -> Any:
    client_id, secret = product
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        **extra,
    }
    auth = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return client.post("/oauth/token", data=data, headers={"Authorization": f"Basic {auth}"})


def login_flow(app: Flask, client: FlaskClient, product: tuple[str, str], person: dict) -> dict:
    """Sign in, get a code, exchange it; return the token response body."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    verifier, challenge = pkce()
    nonce = secrets.token_urlsafe(12)
    code = code_from(authorize(client, product[0], challenge, nonce=nonce))
    resp = exchange(client, product, code, verifier)
    assert resp.status_code == 200, resp.get_json()
    return {**resp.get_json(), "nonce": nonce}


def _org_of(app: Flask, user_id: str) -> str:
    with db.reader(app)() as s:
        return s.scalars(select(User.org_id).where(User.id == user_id)).one()


def verify_id_token(client: FlaskClient, body: dict, client_id: str) -> jwt.Token:
    """Verify a token response's id_token as the product would: JWKS, iss, aud, nonce."""
    keys = KeySet.import_key_set(client.get("/oauth/jwks").get_json())
    token = jwt.decode(body["id_token"], keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": client_id},
        nonce={"essential": True, "value": body["nonce"]},
        sub={"essential": True},
    ).validate(token.claims)
    return token


def userinfo(client: FlaskClient, access_token: str) -> Any:
    return client.get("/oauth/userinfo", headers={"Authorization": f"Bearer {access_token}"})


def codes(app: Flask) -> list[OAuthCode]:
    with db.reader(app)() as s:
        return list(s.scalars(select(OAuthCode)))


# -- discovery and sessions ----------------------------------------------------------------


def test_discovery_document(client: FlaskClient) -> None:
    """The discovery document names every endpoint and offers only code + PKCE S256 + RS256."""
    resp = client.get("/.well-known/openid-configuration")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == f"{ISSUER}/oauth/authorize"
    assert doc["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert doc["userinfo_endpoint"] == f"{ISSUER}/oauth/userinfo"
    assert doc["jwks_uri"] == f"{ISSUER}/oauth/jwks"
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"org_id", "contact_id", "license", "roles"} <= set(doc["claims_supported"])
    # OIDC Discovery §3: both default to true (request_uri) or mean "refused" when false.
    assert doc["request_parameter_supported"] is False
    assert doc["request_uri_parameter_supported"] is False


def test_base_url_is_the_issuer(app: Flask, client: FlaskClient) -> None:
    """With SCIM_BASE_URL set, the issuer and endpoints use it, whatever host the request hit."""
    app.config["BASE_URL"] = "https://id.example.com"
    doc = client.get("/.well-known/openid-configuration").get_json()
    assert doc["issuer"] == "https://id.example.com"
    assert doc["jwks_uri"] == "https://id.example.com/oauth/jwks"


def test_session_roundtrip_and_fixation(app: Flask) -> None:
    """start_session clears what was there before; current_session reads it; end_session clears."""
    with app.test_request_context():
        flask_session["attacker"] = "planted"
        assert current_session() is None
        start_session("org-1", "user-1", "saml", "conn-1")
        assert "attacker" not in flask_session
        sso = current_session()
        assert sso is not None
        assert (sso.org_id, sso.user_id, sso.method, sso.connection_id) == (
            "org-1",
            "user-1",
            "saml",
            "conn-1",
        )
        assert sso.auth_time > 0
        end_session(None)
        assert current_session() is None


def test_no_session_redirects_to_sso_login(client: FlaskClient, product: tuple[str, str]) -> None:
    """Without an SSO session the browser goes to /sso/login with a relative next URL."""
    _, challenge = pkce()
    resp = authorize(client, product[0], challenge)
    assert resp.status_code == 302
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/sso/login"
    back = parse_qs(location.query)["next"][0]
    assert back.startswith("/oauth/authorize?")
    assert parse_qs(urlsplit(back).query)["code_challenge"] == [challenge]


def test_prompt_none_without_session_returns_login_required(
    client: FlaskClient, product: tuple[str, str]
) -> None:
    """prompt=none and no session: the client gets error=login_required, no login page."""
    _, challenge = pkce()
    resp = authorize(client, product[0], challenge, prompt="none")
    assert error_from(resp)["error"] == "login_required"


def test_prompt_none_with_a_sign_in_older_than_max_age_returns_login_required(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """prompt=none and max_age exceeded: login_required to the client, not the login page."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"], age=600)
    resp = authorize(client, product[0], pkce()[1], prompt="none", max_age="300")
    assert error_from(resp)["error"] == "login_required"


def test_prompt_login_forces_a_new_login_without_looping(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """prompt=login sends a signed-in person to the login, and the next URL drops the prompt."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    _, challenge = pkce()
    resp = authorize(client, product[0], challenge, prompt="login")
    assert urlsplit(resp.headers["Location"]).path == "/sso/login"
    back = parse_qs(urlsplit(resp.headers["Location"]).query)["next"][0]
    assert "prompt" not in parse_qs(urlsplit(back).query)


def test_max_age_exceeded_sends_to_login(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """A sign-in older than max_age goes back to the login; a recent one gets a code."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"], age=600)
    resp = authorize(client, product[0], pkce()[1], max_age="300")
    assert urlsplit(resp.headers["Location"]).path == "/sso/login"
    code_from(authorize(client, product[0], pkce()[1], max_age="3600"))


def test_expired_sso_session_is_no_session(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """An SSO session older than SSO_SESSION_SECONDS counts as none: back to the login."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"], age=13 * 3600)
    resp = authorize(client, product[0], pkce()[1])
    assert urlsplit(resp.headers["Location"]).path == "/sso/login"


# -- the flow ----------------------------------------------------------------------------------


def test_code_flow_with_pkce(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """Session → code → tokens; the id_token verifies with the JWKS and carries the internal model."""
    body = login_flow(app, client, product, person)
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] == 3600
    token = verify_id_token(client, body, product[0])
    claims = token.claims
    org_id = _org_of(app, person["id"])
    assert claims["sub"] == person["id"]
    assert claims["org_id"] == org_id
    assert claims["org_name"] == "acme"
    assert claims["contact_id"] == person[PRODUCT]["contactId"]
    assert claims["license"] == "Engineer"
    assert sorted(claims["roles"], key=lambda r: r["name"]) == [
        {"name": "Helpdesk", "kind": "ticket"},
        {"name": "Planner", "kind": "task"},
    ]
    assert claims["preferred_username"] == "bjensen@example.com"
    assert claims["email"] == "bjensen@example.com"
    assert claims["given_name"] == "Barbara"
    assert "at_hash" in claims and "auth_time" in claims
    assert token.header["kid"] == client.get("/oauth/jwks").get_json()["keys"][0]["kid"]


def test_userinfo_returns_license_and_roles(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """userinfo with the access token gives the same claims; no token or a bad one is 401."""
    body = login_flow(app, client, product, person)
    resp = userinfo(client, body["access_token"])
    assert resp.status_code == 200
    info = resp.get_json()
    assert info["sub"] == person["id"]
    assert info["license"] == "Engineer"
    assert {r["name"] for r in info["roles"]} == {"Planner", "Helpdesk"}
    assert info["org_name"] == "acme"
    assert client.get("/oauth/userinfo").status_code == 401
    bad = userinfo(client, "not-a-token")
    assert bad.status_code == 401
    assert "invalid_token" in bad.headers["WWW-Authenticate"]


def test_tokens_stored_hashed_and_flow_audited(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """Only hashes of codes and tokens are stored; sign-in and token issue are in the log."""
    body = login_flow(app, client, product, person)
    with db.reader(app)() as s:
        stored = s.scalars(select(OAuthToken.token_hash)).all()
        assert body["access_token"] not in stored and len(stored) == 1
        actions = s.scalars(
            select(AuditEvent.action).where(AuditEvent.resource_id == person["id"])
        ).all()
    assert "oauth.authorize" in actions and "oauth.token" in actions


def test_public_client_with_pkce(app: Flask, client: FlaskClient, person: dict) -> None:
    """A public client (no secret) completes the flow with PKCE alone."""
    with db.reader(app)() as s:
        public, secret = create_client(s, "SPA", [REDIRECT], public=True)
    assert secret is None
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, public.client_id, challenge))
    resp = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": public.client_id,
        },
    )
    assert resp.status_code == 200, resp.get_json()
    assert "id_token" in resp.get_json()


# -- refusals ----------------------------------------------------------------------------------


def test_wrong_redirect_uri_is_not_followed(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """A redirect_uri not registered exactly gets a page, never a redirect, and no code."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    _, challenge = pkce()
    for uri in (REDIRECT + "/evil", "https://evil.example.com/callback", REDIRECT + "?x=1"):
        resp = authorize(client, product[0], challenge, redirect_uri=uri)
        assert resp.status_code == 400
        assert "Location" not in resp.headers
        assert "text/html" in resp.content_type
    assert codes(app) == []


@pytest.mark.parametrize(
    ("challenge", "method"),
    [
        pytest.param(None, None, id="missing"),
        pytest.param("a" * 43, "plain", id="plain"),
        pytest.param("a" * 43, None, id="method-missing-means-plain"),
    ],
)
def test_pkce_is_required_and_s256_only(
    app: Flask,
    client: FlaskClient,
    product: tuple[str, str],
    person: dict,
    challenge: str | None,
    method: str | None,
) -> None:
    """RFC 7636: no challenge, or a plain one, gets error=invalid_request and no code."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    resp = authorize(
        client,
        product[0],
        None,
        code_challenge=challenge or "",
        code_challenge_method=method or "",
    )
    assert resp.status_code == 302
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query["error"] == ["invalid_request"]
    assert "code" not in query
    assert codes(app) == []


def test_wrong_code_verifier_is_refused(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """A code redeemed with another verifier gets invalid_grant."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    _, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    resp = exchange(client, product, code, pkce()[0])
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_replayed_nonce_is_refused(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """OIDC Core §15.5.2: a nonce this client already used gets error=invalid_request."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    code_from(authorize(client, product[0], pkce()[1], nonce="once-only"))
    resp = authorize(client, product[0], pkce()[1], nonce="once-only")
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query["error"] == ["invalid_request"] and "code" not in query


def test_reused_code_is_refused_and_revokes_its_tokens(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """RFC 6749 §4.1.2: a second redemption fails and the first tokens stop working."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    first = exchange(client, product, code, verifier)
    assert first.status_code == 200
    access = first.get_json()["access_token"]
    assert userinfo(client, access).status_code == 200
    again = exchange(client, product, code, verifier)
    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_grant"
    assert userinfo(client, access).status_code == 401
    with db.reader(app)() as s:
        failures = s.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.action == "oauth.token", AuditEvent.outcome == "failure"
            )
        ).all()
    assert any("reused" in (d or "") for d in failures)


def test_expired_code_is_refused(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """A code past its lifetime gets invalid_grant."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    with db.reader(app)() as s, s.begin():
        s.execute(update(OAuthCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    resp = exchange(client, product, code, verifier)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_refused(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """A wrong secret gets 401 invalid_client and the code stays unused."""
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    resp = exchange(client, (product[0], "wrong-secret"), code, verifier)
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"
    assert [c.used_at for c in codes(app)] == [None]
    no_secret = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": product[0],
        },
    )
    assert no_secret.status_code in (400, 401)
    assert no_secret.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("prompt", [None, "none"], ids=["interactive", "prompt-none"])
def test_deactivated_user_gets_access_denied(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    product: tuple[str, str],
    person: dict,
    prompt: str | None,
) -> None:
    """A leaver with a live SSO session: the deactivation ended it (``session_epoch``), as a
    password change does: no code; prompt=none gets login_required, an interactive request
    goes to sign in again (where an inactive account is refused with its reason)."""
    sign_in(app, client, scim.org_id, person["id"])
    scim.patch_ops(
        f"/scim/v2/Users/{person['id']}", {"op": "replace", "path": "active", "value": False}
    )
    _, challenge = pkce()
    resp = authorize(client, product[0], challenge, prompt=prompt)
    if prompt == "none":
        assert error_from(resp)["error"] == "login_required"
    else:
        assert resp.status_code == 302
        assert urlsplit(resp.headers["Location"]).path == "/sso/login"
    assert codes(app) == []


def test_locked_user_gets_access_denied(
    app: Flask, client: FlaskClient, scim: Scim, product: tuple[str, str], person: dict
) -> None:
    """An admin-locked account, prompt=none: access_denied saying the account is locked."""
    with db.reader(app)() as s, s.begin():
        s.get(User, (scim.org_id, person["id"])).status = LOCKED_BY_ADMIN
    sign_in(app, client, scim.org_id, person["id"])
    query = error_from(authorize(client, product[0], pkce()[1], prompt="none"))
    assert query["error"] == "access_denied"
    assert "locked" in query["error_description"]
    assert codes(app) == []


def test_user_without_license_gets_access_denied(
    app: Flask, client: FlaskClient, scim: Scim, product: tuple[str, str]
) -> None:
    """A user holding no license: access_denied saying so, no code."""
    user = scim.create_user("nolicense@example.com")
    sign_in(app, client, scim.org_id, user["id"])
    _, challenge = pkce()
    query = error_from(authorize(client, product[0], challenge))
    assert query["error"] == "access_denied"
    assert "license" in query["error_description"]
    assert codes(app) == []


def test_refusal_with_an_unregistered_redirect_uri_stays_a_page(
    app: Flask, client: FlaskClient, scim: Scim, product: tuple[str, str], person: dict
) -> None:
    """prompt=none for a leaver but a redirect_uri not registered: a page, never a redirect."""
    sign_in(app, client, scim.org_id, person["id"])
    scim.patch_ops(
        f"/scim/v2/Users/{person['id']}", {"op": "replace", "path": "active", "value": False}
    )
    resp = authorize(client, product[0], pkce()[1], prompt="none", redirect_uri=REDIRECT + "/x")
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_deactivation_stops_tokens_already_issued(
    app: Flask, client: FlaskClient, scim: Scim, product: tuple[str, str], person: dict
) -> None:
    """A leaver's access token is refused at userinfo as soon as the account is deactivated."""
    body = login_flow(app, client, product, person)
    scim.patch_ops(
        f"/scim/v2/Users/{person['id']}", {"op": "replace", "path": "active", "value": False}
    )
    assert userinfo(client, body["access_token"]).status_code == 401


def test_deactivation_between_code_and_token(
    app: Flask, client: FlaskClient, scim: Scim, product: tuple[str, str], person: dict
) -> None:
    """A code issued just before deactivation can no longer be exchanged."""
    sign_in(app, client, scim.org_id, person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    scim.patch_ops(
        f"/scim/v2/Users/{person['id']}", {"op": "replace", "path": "active", "value": False}
    )
    resp = exchange(client, product, code, verifier)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_org_bound_client_refuses_other_organizations(
    app: Flask, client: FlaskClient, person: dict
) -> None:
    """A client registered for one organization gives no code to another's users."""
    other_org, _ = make_org(app, "globex")
    with db.reader(app)() as s:
        bound, _secret = create_client(s, "Globex portal", [REDIRECT], org_id=other_org)
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    _, challenge = pkce()
    query = error_from(authorize(client, bound.client_id, challenge))
    assert query["error"] == "access_denied"
    assert "not available to this organization" in query["error_description"]


def test_unknown_client_gets_a_page(client: FlaskClient) -> None:
    """An unknown client_id is refused on a page, not redirected anywhere."""
    _, challenge = pkce()
    resp = authorize(client, "no-such-client", challenge)
    assert resp.status_code == 400
    assert "Location" not in resp.headers


# -- keys --------------------------------------------------------------------------------------


def test_rotated_key_is_published_before_it_signs(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """OIDC Core §10.1.1: a new key is in the JWKS a relying party may have cached (max-age)
    before any id_token carries it; until then the old key signs."""
    old = login_flow(app, client, product, person)
    old_kid = verify_id_token(client, old, product[0]).header["kid"]
    with db.reader(app)() as s, s.begin():
        new_kid = rotate(s, encryption_secret(app)).kid
    published = [k["kid"] for k in client.get("/oauth/jwks").get_json()["keys"]]
    assert published == [new_kid, old_kid]
    later = login_flow(app, client, product, person)
    assert verify_id_token(client, later, product[0]).header["kid"] == old_kid


def test_key_rotation_keeps_old_tokens_verifiable(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """Once the new key has been published for ``STAGING``, new id_tokens carry it; old ones
    still verify with the JWKS."""
    old = login_flow(app, client, product, person)
    old_kid = verify_id_token(client, old, product[0]).header["kid"]
    with db.reader(app)() as s, s.begin():
        rotated = utcnow() - STAGING - timedelta(seconds=1)
        new_kid = rotate(s, encryption_secret(app), now=rotated).kid
    assert new_kid != old_kid
    new = login_flow(app, client, product, person)
    assert verify_id_token(client, new, product[0]).header["kid"] == new_kid
    assert verify_id_token(client, old, product[0]).header["kid"] == old_kid
    published = [k["kid"] for k in client.get("/oauth/jwks").get_json()["keys"]]
    assert sorted(published) == sorted([new_kid, old_kid])


def test_rotation_at_once_signs_with_the_new_key(
    app: Flask, client: FlaskClient, product: tuple[str, str], person: dict
) -> None:
    """For a key that cannot be opened or must not sign: the new key signs the next token,
    and the old one stays published for the grace period (its tokens still verify)."""
    old = login_flow(app, client, product, person)
    old_kid = verify_id_token(client, old, product[0]).header["kid"]
    with db.reader(app)() as s, s.begin():
        rotate(s, encryption_secret(app))  # a staged rotation first: at once overrides it
        new_kid = rotate(s, encryption_secret(app), at_once=True).kid
    new = login_flow(app, client, product, person)
    assert verify_id_token(client, new, product[0]).header["kid"] == new_kid
    assert verify_id_token(client, old, product[0]).header["kid"] == old_kid


def test_retired_key_leaves_jwks_after_grace(app: Flask, client: FlaskClient) -> None:
    """A key retired longer ago than the grace period is no longer published."""
    first = client.get("/oauth/jwks").get_json()["keys"]
    assert len(first) == 1
    with db.reader(app)() as s, s.begin():
        rotate(s, encryption_secret(app), now=utcnow() - timedelta(days=2))
    keys = client.get("/oauth/jwks").get_json()["keys"]
    assert [k["kid"] for k in keys] != [first[0]["kid"]]
    assert len(keys) == 1
    assert "d" not in keys[0]  # never the private part


def test_jwks_publishes_no_private_part(app: Flask, client: FlaskClient) -> None:
    """RFC 7518 §6.3.2: no key in the JWKS, current or retired, carries a private member."""
    client.get("/oauth/jwks")
    with db.reader(app)() as s, s.begin():
        rotate(s, encryption_secret(app))
    keys = client.get("/oauth/jwks").get_json()["keys"]
    assert len(keys) == 2
    assert all(not ({"d", "p", "q", "dp", "dq", "qi", "oth"} & set(k)) for k in keys)


# -- command line ------------------------------------------------------------------------------


def test_cli_client_create_and_keys_rotate(tmp_path: Any, monkeypatch: Any) -> None:
    """oauth client create prints a client_id and a secret once; keys rotate prints the new kid."""
    from click.testing import CliRunner

    from scim_server.cli import main

    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SCIM_SECRET_KEY", "cli-test-secret")
    runner = CliRunner()
    out = runner.invoke(
        main,
        ["oauth", "client", "create", "--name", "Product", "--redirect-uri", REDIRECT],
        catch_exceptions=False,
    )
    assert out.exit_code == 0
    lines = dict(line.split(": ", 1) for line in out.output.strip().splitlines())
    assert set(lines) == {"client_id", "client_secret"}
    listed = runner.invoke(main, ["oauth", "client", "list"], catch_exceptions=False)
    assert lines["client_id"] in listed.output and lines["client_secret"] not in listed.output
    public = runner.invoke(
        main,
        ["oauth", "client", "create", "--name", "SPA", "--redirect-uri", REDIRECT, "--public"],
    )
    assert public.exit_code == 0 and "client_secret" not in public.output
    bad = runner.invoke(
        main, ["oauth", "client", "create", "--name", "X", "--redirect-uri", "http://evil.com/cb"]
    )
    assert bad.exit_code != 0 and "https" in bad.output
    first = runner.invoke(main, ["oauth", "keys", "rotate"], catch_exceptions=False)
    assert first.exit_code == 0 and first.output.startswith("signing key: ")
    lines = dict(line.split(": ", 1) for line in first.output.strip().splitlines())
    start = datetime.strptime(lines["signs from"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(start - utcnow()) < timedelta(minutes=1)  # no key signed before: at once
    second = runner.invoke(main, ["oauth", "keys", "rotate"], catch_exceptions=False)
    lines = dict(line.split(": ", 1) for line in second.output.strip().splitlines())
    start = datetime.strptime(lines["signs from"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert STAGING - timedelta(minutes=1) < start - utcnow() <= STAGING
    third = runner.invoke(main, ["oauth", "keys", "rotate", "--now"], catch_exceptions=False)
    lines = dict(line.split(": ", 1) for line in third.output.strip().splitlines())
    start = datetime.strptime(lines["signs from"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(start - utcnow()) < timedelta(minutes=1)


@pytest.mark.parametrize("max_age", ["\u00b2", "1\u00b9", "9" * 5000])
def test_provider_max_age_that_is_not_a_number_is_no_500(
    app: Flask,
    client: FlaskClient,
    scim: Any,
    person: dict[str, Any],
    product: tuple[str, str],
    max_age: str,
) -> None:
    """OIDC Core §3.1.2.1 max_age from the client: a value ``str.isdigit`` accepts but
    ``int`` cannot read (a superscript digit, more than 4,300 digits) is not a number of
    seconds: the request goes on as without it, never a 500."""
    sign_in(app, client, scim.org_id, person["id"])
    _, challenge = pkce()
    resp = authorize(client, product[0], challenge, max_age=max_age)
    assert resp.status_code < 500, resp.get_data(as_text=True)[:500]


# -- max_age and a fresh sign-in ----------------------------------------------------------------


def test_max_age_zero_gives_a_code_after_the_fresh_sign_in_it_asked_for(
    app: Flask, client: FlaskClient, scim: Scim, product: tuple[str, str]
) -> None:
    """OIDC Core §3.1.2.1: max_age=0 is prompt=login: after the fresh sign-in it sends the
    person to, the client gets its code (the max_age was compared again with a sign-in a
    fraction of a second old, and the browser went back to the login page forever)."""
    person_with_password(app, scim, "alice@example.com")
    _, challenge = pkce()
    resp = authorize(client, product[0], challenge, max_age="0")
    assert urlsplit(resp.headers["Location"]).path == "/sso/login"
    next_path = parse_qs(urlsplit(resp.headers["Location"]).query)["next"][0]
    assert "max_age" not in parse_qs(urlsplit(next_path).query)
    client.post("/sso/login", data={"email": "alice@example.com", "next": next_path})
    signed = password_sign_in(client, "alice@example.com", next_path=next_path)
    assert signed.status_code == 303 and signed.headers["Location"] == next_path
    back = client.get(next_path)
    assert back.status_code == 302
    assert back.headers["Location"].startswith(REDIRECT + "?"), back.headers["Location"][:120]
    assert "code" in parse_qs(urlsplit(back.headers["Location"]).query)


def test_max_age_is_measured_on_the_sign_in_clock(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    person: dict,
    product: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """auth_time is written from the SSO clock (``sso_extension().clock``): max_age reads
    the same clock, not the machine's."""
    sign_in(app, client, scim.org_id, person["id"])
    monkeypatch.setattr(sso_extension(app), "clock", lambda: utcnow() + timedelta(seconds=600))
    resp = authorize(client, product[0], pkce()[1], max_age="300")
    assert urlsplit(resp.headers["Location"]).path == "/sso/login"


# -- what a password reset ends -------------------------------------------------------------------

NEW_PASSWORD = "A brand new passphrase 42!"


def _reset_password(scim: Scim, user_id: str) -> None:
    """The IdP sets a new password over SCIM (README: this ends every sign-in session)."""
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}", {"op": "replace", "path": "password", "value": NEW_PASSWORD}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_code_issued_in_a_session_a_password_reset_ended_cannot_be_redeemed(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """README "Sessions end with the password": an intruder's session got a code just before
    the owner's reset; after the reset the code is invalid_grant (it gave fresh tokens)."""
    give_password(app, scim.org_id, person["id"], "The leaked passphrase 1!")
    sign_in(app, client, scim.org_id, person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    _reset_password(scim, person["id"])
    # The session itself is over: a new authorize goes to the login.
    assert urlsplit(authorize(client, product[0], pkce()[1]).headers["Location"]).path == (
        "/sso/login"
    )
    resp = exchange(client, product, code, verifier)
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"] == "invalid_grant"


def test_access_token_issued_before_a_password_reset_stops_working(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """The access token of that session stops at once, as a deactivation stops it (userinfo
    answered it for up to SCIM_OAUTH_ACCESS_TOKEN_SECONDS); a sign-in after the reset
    gets a token that works."""
    give_password(app, scim.org_id, person["id"], "The leaked passphrase 1!")
    body = login_flow(app, client, product, person)
    assert userinfo(client, body["access_token"]).status_code == 200
    _reset_password(scim, person["id"])
    assert userinfo(client, body["access_token"]).status_code == 401
    again = login_flow(app, client, product, person)
    assert userinfo(client, again["access_token"]).status_code == 200


def test_access_token_of_a_password_sign_in_stops_when_the_organization_goes_sso_only(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, product: tuple[str, str]
) -> None:
    """What a password session was issued ends with it when passwords stop being a way in
    (``sso.signin.session.local_allowed``): the application's token too."""
    person_with_password(app, scim, "alice@example.com")
    verifier, challenge = pkce()
    resp = authorize(client, product[0], challenge)
    next_path = parse_qs(urlsplit(resp.headers["Location"]).query)["next"][0]
    assert password_sign_in(client, "alice@example.com", next_path=next_path).status_code == 303
    body = exchange(client, product, code_from(client.get(next_path)), verifier).get_json()
    assert userinfo(client, body["access_token"]).status_code == 200
    assert admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}).status_code == 200
    assert userinfo(client, body["access_token"]).status_code == 401
    assert admin.put("/api/v1/settings", {"sign_in_methods": None}).status_code == 200
    assert userinfo(client, body["access_token"]).status_code == 200  # no connection: passwords


# -- RFC 6749 §5.2 at the token endpoint -----------------------------------------------------------


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param(
            {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"\xff\xfe:secret").decode()},
            id="base64-of-invalid-utf8",
        ),
        pytest.param({"HTTP_AUTHORIZATION": "Basic \xff\xfe"}, id="non-ascii-credentials"),
    ],
)
def test_token_endpoint_basic_credentials_that_are_not_text_are_invalid_client(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    person: dict,
    product: tuple[str, str],
    environ: dict[str, str],
) -> None:
    """RFC 6749 §5.2: Basic credentials that cannot be read are 401 invalid_client, a JSON
    body, Cache-Control: no-store and WWW-Authenticate (they were a 500)."""
    app.config["PROPAGATE_EXCEPTIONS"] = False  # what production does with an exception
    sign_in(app, client, scim.org_id, person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    resp = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        environ_base=environ,
    )
    assert resp.status_code == 401, resp.get_data(as_text=True)[:300]
    assert resp.get_json()["error"] == "invalid_client"
    assert resp.headers.get("Cache-Control") == "no-store"
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert [c.used_at for c in codes(app)] == [None]


def test_token_request_with_a_repeated_parameter_is_invalid_request(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """RFC 6749 §3.2: no parameter more than once; §5.2: invalid_request (the first of two
    code_verifier values was used)."""
    sign_in(app, client, scim.org_id, person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    data = MultiDict(
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("code_verifier", pkce()[0]),
        ]
    )
    resp = client.post("/oauth/token", data=data, headers=_basic(*product))
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"] == "invalid_request"
    assert resp.headers.get("Cache-Control") == "no-store"
    assert [c.used_at for c in codes(app)] == [None]


def test_token_request_with_two_client_authentication_methods_is_invalid_request(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """RFC 6749 §2.3: one authentication method per request; §5.2: "multiple credentials"
    is invalid_request (Basic and client_secret in the body together got tokens)."""
    sign_in(app, client, scim.org_id, person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    resp = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": product[0],
            "client_secret": product[1],
        },
        headers=_basic(*product),
    )
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"] == "invalid_request"
    # Basic with the client_id in the body as well is one method (authlib's clients send it).
    resp = exchange(client, product, code, verifier, client_id=product[0])
    assert resp.status_code == 200, resp.get_json()


# -- OIDC Core at the authorization endpoint ---------------------------------------------------------


def _authorize_form(client_id: str, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "st-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def test_authorization_endpoint_accepts_post(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """OIDC Core §3.1.2.1: GET and POST (form-serialized parameters) at the authorization
    endpoint (POST was a 405). A POST's refusals go to the client like a GET's."""
    sign_in(app, client, scim.org_id, person["id"])
    resp = client.post("/oauth/authorize", data=_authorize_form(product[0], pkce()[1]))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:200]
    assert "code" in parse_qs(urlsplit(resp.headers["Location"]).query)
    refused = client.post(
        "/oauth/authorize", data=_authorize_form(product[0], pkce()[1], code_challenge_method="")
    )
    assert error_from(refused)["error"] == "invalid_request"


def test_authorization_post_without_a_session_becomes_the_same_get(
    client: FlaskClient, product: tuple[str, str]
) -> None:
    """The session cookie is SameSite=Lax: a form POST from the product's site comes without
    it. The same parameters as a GET (a navigation, which carries it) decide, so a POST
    does nothing a GET would not."""
    form = _authorize_form(product[0], pkce()[1], prompt="none")
    resp = client.post("/oauth/authorize", data=form)
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/oauth/authorize" and not location.netloc
    assert {k: v[0] for k, v in parse_qs(location.query).items()} == form
    assert error_from(client.get(resp.headers["Location"]))["error"] == "login_required"


def test_authorization_post_with_a_query_string_is_refused(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """A POST's parameters are its form (OIDC Core §3.1.2.1); parameters in its URL as well
    would be read from two places: a page, no code."""
    sign_in(app, client, scim.org_id, person["id"])
    resp = client.post(
        "/oauth/authorize?scope=openid+email", data=_authorize_form(product[0], pkce()[1])
    )
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert codes(app) == []


def test_authorization_request_with_a_repeated_parameter_is_refused(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """RFC 6749 §3.1: no parameter more than once, whichever it is (authlib checks five):
    a second max_age or nonce is refused, not one of them picked."""
    sign_in(app, client, scim.org_id, person["id"])
    args = MultiDict(_authorize_form(product[0], pkce()[1]))
    args.add("max_age", "0")
    args.add("max_age", "3600")
    resp = client.get("/oauth/authorize", query_string=args)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert codes(app) == []


@pytest.mark.parametrize(
    ("param", "value", "error"),
    [
        pytest.param(
            "request",
            "eyJhbGciOiJub25lIn0.eyJtYXhfYWdlIjowfQ.",
            "request_not_supported",
            id="request",
        ),
        pytest.param(
            "request_uri", "https://product.example.com/r/1", "request_uri_not_supported", id="uri"
        ),
    ],
)
@pytest.mark.parametrize("signed_in", [True, False], ids=["session", "no-session"])
def test_unsupported_request_object_is_refused_not_ignored(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    person: dict,
    product: tuple[str, str],
    param: str,
    value: str,
    error: str,
    signed_in: bool,
) -> None:
    """OIDC Core §6.1 / §6.2: an OP that does not support ``request`` (``request_uri``) "MUST
    return the request_not_supported (request_uri_not_supported) error", to the client
    with its state, before any sign-in (a code was issued from the outer parameters alone,
    dropping whatever the request object said)."""
    if signed_in:
        sign_in(app, client, scim.org_id, person["id"])
    resp = authorize(client, product[0], pkce()[1], **{param: value})
    assert error_from(resp)["error"] == error
    assert codes(app) == []


# -- unsupported response types ---------------------------------------------------------------------

# RFC 6749 §4.1.2.1: error_description is printable ASCII without a quote or backslash.
ODD_CHARACTERS = ['"', "\\", "\t", "\u202e", "\u00e9"]


@pytest.mark.parametrize("value", ODD_CHARACTERS, ids=["quote", "backslash", "tab", "rlo", "e"])
def test_an_unsupported_response_type_is_refused_whatever_it_holds(
    app: Flask, client: FlaskClient, product: tuple[str, str], value: str
) -> None:
    """RFC 6749 §4.1.2.1: an unsupported response_type holding a quote, a backslash, a tab or
    non-ASCII gets our page (no client, or a redirect_uri not registered) or
    unsupported_response_type at the registered redirect_uri with a fixed description
    (authlib put the value in the description; its own character check made that a 500)."""
    unknown = client.get(
        "/oauth/authorize", query_string={"response_type": value, "client_id": "x"}
    )
    assert unknown.status_code == 400 and "Location" not in unknown.headers
    assert "text/html" in unknown.content_type
    resp = authorize(
        client, product[0], pkce()[1], response_type=value, redirect_uri=REDIRECT + "/x"
    )
    assert resp.status_code == 400 and "Location" not in resp.headers
    query = error_from(authorize(client, product[0], pkce()[1], response_type=value))
    assert query["error"] == "unsupported_response_type"
    assert query["error_description"] == "Only the response_type code is supported."
    assert codes(app) == []


# -- CORS for public clients (a SPA) ------------------------------------------------------------------

SPA_ORIGIN = "https://product.example.com"


@pytest.fixture
def spa(app: Flask) -> str:
    """A public client (a SPA) whose redirect URI is on SPA_ORIGIN."""
    with db.reader(app)() as s:
        made, _ = create_client(s, "SPA", [REDIRECT], public=True)
    return made.client_id


def _preflight(client: FlaskClient, path: str, origin: str, method: str, headers: str = "") -> Any:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=request_headers)


def test_a_public_clients_origin_may_use_the_token_endpoint_and_userinfo(
    app: Flask, client: FlaskClient, person: dict, spa: str
) -> None:
    """README: ``--public`` is for a SPA. Its fetch() from the origin of a registered
    redirect URI gets the CORS headers at /oauth/token and /oauth/userinfo, the preflight
    included (userinfo sends Authorization), never with credentials (no header was sent:
    the browser hid every response and no SPA could finish the flow)."""
    pre = _preflight(client, "/oauth/token", SPA_ORIGIN, "POST", "content-type")
    assert pre.status_code in (200, 204)
    assert pre.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert "content-type" in pre.headers["Access-Control-Allow-Headers"].lower()
    assert "Origin" in pre.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in pre.headers
    sign_in(app, client, _org_of(app, person["id"]), person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, spa, challenge))
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": spa,
    }
    resp = client.post("/oauth/token", data=data, headers={"Origin": SPA_ORIGIN})
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "Origin" in resp.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in resp.headers
    access = resp.get_json()["access_token"]

    pre = _preflight(client, "/oauth/userinfo", SPA_ORIGIN, "GET", "authorization")
    assert pre.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "authorization" in pre.headers["Access-Control-Allow-Headers"].lower()
    assert "GET" in pre.headers["Access-Control-Allow-Methods"]
    info = client.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {access}", "Origin": SPA_ORIGIN}
    )
    assert info.status_code == 200 and info.get_json()["sub"] == person["id"]
    assert info.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    refused = client.get(
        "/oauth/userinfo", headers={"Authorization": "Bearer nope", "Origin": SPA_ORIGIN}
    )
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    # RFC 6750 §3: the SPA may read why (the header is not CORS-safelisted).
    assert "WWW-Authenticate" in refused.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://confidential.example.com",  # a confidential client's: its secret is no browser's
        "https://evil.example.com",
        "https://product.example.com:8443",
        "http://product.example.com",
        "https://product.example.com.evil.com",
        "https://PRODUCT.example.com/",
        "null",
    ],
)
def test_cross_origin_is_answered_only_for_a_public_clients_origin(
    app: Flask, client: FlaskClient, spa: str, origin: str
) -> None:
    """Never an arbitrary origin reflected: only the exact origin (scheme, host, port) of an
    active public client's redirect URI gets CORS headers; every answer says Vary: Origin."""
    with db.reader(app)() as s:
        create_client(s, "Back end", ["https://confidential.example.com/cb"])
    for path, method in (("/oauth/token", "POST"), ("/oauth/userinfo", "GET")):
        pre = _preflight(client, path, origin, method, "authorization")
        plain = client.post(path, data={"grant_type": "x"}, headers={"Origin": origin})
        for resp in (pre, plain):
            assert "Access-Control-Allow-Origin" not in resp.headers, (path, resp.headers)
            assert "Access-Control-Allow-Methods" not in resp.headers
            assert "Origin" in resp.headers.get("Vary", "")


def test_a_revoked_public_client_gives_its_origin_no_cors(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Only active public clients count: once revoked, its origin gets nothing."""
    with db.reader(app)() as s:
        made, _ = create_client(s, "SPA", [REDIRECT], public=True, org_id=scim.org_id)
    assert (
        _preflight(client, "/oauth/token", SPA_ORIGIN, "POST").headers.get(
            "Access-Control-Allow-Origin"
        )
        == SPA_ORIGIN
    )
    with db.reader(app)() as s:
        revoke_client(s, scim.org_id, made.client_id)
    resp = _preflight(client, "/oauth/token", SPA_ORIGIN, "POST")
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_discovery_and_jwks_may_be_read_from_any_origin(client: FlaskClient) -> None:
    """Public documents without credentials: any origin may read them (a SPA configures
    itself from discovery and verifies the id_token with the JWKS)."""
    for path in ("/.well-known/openid-configuration", "/oauth/jwks"):
        resp = client.get(path, headers={"Origin": "https://anyone.example"})
        assert resp.status_code == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in resp.headers


def test_a_check_that_echoes_the_request_in_its_description_is_a_page(
    app: Flask,
    client: FlaskClient,
    product: tuple[str, str],
    scim: Scim,
    person: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Any authlib check whose error_description takes the request's words (authlib raises
    ValueError building it when they hold a quote or non-ASCII) refuses the request on our
    page, not with a 500."""

    def echoing(self: Any, grant: Any, redirect_uri: str) -> None:
        raise InvalidRequestError(f"Bad challenge {grant.request.payload.data['code_challenge']}")

    monkeypatch.setattr(S256CodeChallenge, "validate_code_challenge", echoing)
    sign_in(app, client, scim.org_id, person["id"])
    resp = authorize(client, product[0], 'caf\u00e9"')
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert "not valid" in resp.get_data(as_text=True)
    assert codes(app) == []
