"""The whole chain: the product asks our OIDC provider, the person signs in by SAML, a code comes back."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient

from sso.provider.clients import create_client
from tests.sso.saml_idp import FakeIdp, valid_response
from tests.support import Scim
from tests.support.sso import SamlConnection, make_person, read, request_id_of

REDIRECT = "https://product.example.com/callback"


def test_product_login_through_saml(
    app: Flask, client: FlaskClient, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """authorize → /sso/login → discovery → IdP → ACS → authorize again → code → id_token."""
    user_id = make_person(app, scim)
    with read(app) as s:
        product, secret = create_client(s, "Product", [REDIRECT])
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    query = {
        "response_type": "code",
        "client_id": product.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "st",
        "nonce": "n",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    resp = client.get("/oauth/authorize", query_string=query)
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/sso/login?next=")
    next_path = parse_qs(urlsplit(resp.headers["Location"]).query)["next"][0]
    resp = client.post("/sso/login", data={"email": "alice@example.com", "next": next_path})
    resp = client.get(resp.headers["Location"])
    request_id = request_id_of(resp.headers["Location"])
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert resp.status_code == 303 and resp.headers["Location"] == next_path
    resp = client.get(next_path)
    assert resp.status_code == 302 and resp.headers["Location"].startswith(REDIRECT + "?")
    code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
    auth = base64.b64encode(f"{product.client_id}:{secret}".encode()).decode()
    token = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        headers={"Authorization": f"Basic {auth}"},
    )
    assert token.status_code == 200, token.get_json()
    info = client.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {token.get_json()['access_token']}"}
    )
    assert info.get_json()["sub"] == user_id
