"""What a registered client allows (``sso.provider.models.OAuthClient``): its redirect URIs,
compared exactly (a native app's loopback port aside), and its scope."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from sso.provider.clients import create_client
from tests.sso.provider.test_endpoints import (
    REDIRECT,
    authorize,
    code_from,
    codes,
    exchange,
    pkce,
    sign_in,
    userinfo,
)
from tests.sso.provider.test_endpoints import app as app  # the provider's fixtures
from tests.sso.provider.test_endpoints import person as person
from tests.sso.provider.test_endpoints import product as product
from tests.support import Scim


@pytest.mark.parametrize(
    "uri",
    [
        REDIRECT.replace("product", "PRODUCT"),
        REDIRECT + "#x",
        REDIRECT + "/",
        REDIRECT.replace("https", "http"),
        REDIRECT.replace(".com/", ".com:8443/"),
        REDIRECT.replace(".com/", ".com:443/"),
        REDIRECT.replace("https://", "https://evil@"),
        "https://product.example.com.evil.com/callback",
    ],
)
def test_a_redirect_uri_is_compared_exactly(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str], uri: str
) -> None:
    """RFC 6749 §3.1.2.3 / RFC 9700 §4.1.3: a redirect_uri that differs from the registered
    one in any character (case, fragment, slash, scheme, port, userinfo) is a page."""
    sign_in(app, client, scim.org_id, person["id"])
    resp = authorize(client, product[0], pkce()[1], redirect_uri=uri)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert codes(app) == []


def _native(app: Flask, uri: str) -> str:
    with db.reader(app)() as s:
        made, _ = create_client(s, "Native", [uri], public=True)
    return made.client_id


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb"),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:51234/cb"),
        ("http://127.0.0.1:8080/cb?app=1", "http://127.0.0.1/cb?app=1"),
        ("http://[::1]/cb", "http://[::1]:51234/cb"),
    ],
)
def test_a_loopback_redirect_uri_may_name_any_port(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, registered: str, requested: str
) -> None:
    """RFC 8252 §7.3: a native app registered with a loopback IP redirect URI listens on
    an ephemeral port; the port is not compared (the app was refused), the rest is, and the
    code is redeemed with the port it was sent to."""
    native = _native(app, registered)
    sign_in(app, client, scim.org_id, person["id"])
    verifier, challenge = pkce()
    resp = authorize(client, native, challenge, redirect_uri=requested)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    location = resp.headers["Location"]
    assert location.startswith(requested + ("&" if "?" in requested else "?"))
    code = parse_qs(urlsplit(location).query)["code"][0]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": requested,
        "code_verifier": verifier,
        "client_id": native,
    }
    token = client.post("/oauth/token", data=data)
    assert token.status_code == 200, token.get_json()
    data["redirect_uri"] = registered  # RFC 6749 §4.1.3: the one of the request, exactly
    assert client.post("/oauth/token", data=data).get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://localhost/cb", "http://localhost:51234/cb"),  # RFC 8252 §8.3: not a literal
        ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb/"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb?x=1"),
        ("http://127.0.0.1/cb?app=1", "http://127.0.0.1:51234/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb#x"),
        ("http://127.0.0.1/cb", "https://127.0.0.1:51234/cb"),
        ("http://127.0.0.1/cb", "http://evil@127.0.0.1:51234/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.2:51234/cb"),
        ("http://127.0.0.1/cb", "http://[::1]:51234/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:0/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:99999/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:5\t1/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:/cb"),
        ("http://[::1]/cb", "http://[0::1]:51234/cb"),
    ],
)
def test_only_the_port_of_a_loopback_ip_redirect_uri_is_free(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, registered: str, requested: str
) -> None:
    """The port is free only for http on the loopback IP literals; "localhost", another
    scheme, host, path, query, a fragment or userinfo is compared as for any client."""
    native = _native(app, registered)
    sign_in(app, client, scim.org_id, person["id"])
    resp = authorize(client, native, pkce()[1], redirect_uri=requested)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert codes(app) == []


def test_the_clients_scope_caps_the_claims(
    app: Flask, client: FlaskClient, scim: Scim, person: dict
) -> None:
    """A client registered with scope openid asking for profile and email gets openid only:
    no email at userinfo."""
    with db.reader(app)() as s:
        narrow, secret = create_client(s, "Narrow", [REDIRECT], scope="openid")
    assert secret is not None
    sign_in(app, client, scim.org_id, person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, narrow.client_id, challenge))
    resp = exchange(client, (narrow.client_id, secret), code, verifier)
    assert resp.status_code == 200 and resp.get_json()["scope"] == "openid"
    claims: dict[str, Any] = userinfo(client, resp.get_json()["access_token"]).get_json()
    assert claims["sub"] == person["id"] and "email" not in claims
