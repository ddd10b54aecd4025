"""Home-realm discovery: /sso/login sends a person to their organization's IdP by e-mail domain."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient

from tests.support import Scim
from tests.support.dns_server import add_verified_domain
from tests.support.sso import SamlConnection


def test_login_page_is_a_form(client: FlaskClient) -> None:
    """GET /sso/login: an HTML form posting the address, next kept (escaped), never cached."""
    resp = client.get('/sso/login?next=/oauth/authorize?a=1%26b="x"')
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert '<form method="post" action="/sso/login"' in body
    assert 'value="/oauth/authorize?a=1&amp;b=&#34;x&#34;"' in body
    assert '<label for="email">' in body
    assert resp.headers["Cache-Control"] == "no-store"
    # The one look comes from a stylesheet: a strict CSP, no inline style or script.
    csp = resp.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert "style=" not in body and "<script" not in body and "<style" not in body
    css = client.get("/static/css/app.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    css.close()


def test_login_page_drops_foreign_next(client: FlaskClient) -> None:
    """An absolute or protocol-relative next becomes the default landing page."""
    for bad in ("https://evil.test/", "//evil.test/", "/\\evil.test", "javascript:alert(1)"):
        body = client.get("/sso/login", query_string={"next": bad}).get_data(as_text=True)
        assert 'value="/sso/welcome"' in body, bad


def test_discovery_by_domain(client: FlaskClient, saml_connection: SamlConnection) -> None:
    """alice@EXAMPLE.com goes to the example.com connection's start URL, next preserved."""
    resp = client.post("/sso/login", data={"email": "alice@EXAMPLE.com", "next": "/app"})
    assert resp.status_code == 303
    url = urlsplit(resp.headers["Location"])
    assert url.path == f"/sso/saml/{saml_connection.id}/start"
    assert parse_qs(url.query) == {"next": ["/app"]}
    follow = client.get(resp.headers["Location"])
    assert follow.status_code == 302
    assert follow.headers["Location"].startswith("https://idp.example.test/sso?SAMLRequest=")


def test_unknown_domain(client: FlaskClient, saml_connection: SamlConnection) -> None:
    """An address with no registered domain: the password step, whether or not it has an account.

    (Before local passwords this was an error page; now that answer would tell
    who has an account, so every unrouted address gets the password form.)
    """
    resp = client.post("/sso/login", data={"email": "bob@unknown.test", "next": "/app"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'action="/sso/login/password"' in body
    assert 'value="bob@unknown.test"' in body and 'value="/app"' in body
    assert "single sign-on" not in body.split("Forgot your password?")[1]


def test_sso_only_domain_without_connection(
    client: FlaskClient, saml_connection: SamlConnection, admin: Scim
) -> None:
    """An sso_only organization whose connection is disabled: the clear SSO message, no form."""
    resp = admin.patch(f"/api/v1/sso/connections/{saml_connection.id}", {"enabled": False})
    assert resp.status_code == 200, resp.get_json()
    admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"})
    resp = client.post("/sso/login", data={"email": "bob@example.com", "next": "/app"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "We do not know a single sign-on connection" in body


def test_discovery_to_oidc_passes_login_hint(client: FlaskClient, admin: Scim) -> None:
    """An OIDC connection's domain routes to its start URL with login_hint."""
    conn = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "oidc", "issuer": "https://login.acme.test", "client_id": "c"},
    ).get_json()
    add_verified_domain(admin, "acme.test")
    resp = client.post("/sso/login", data={"email": "eve@acme.test"})
    url = urlsplit(resp.headers["Location"])
    assert url.path == f"/sso/oidc/{conn['id']}/start"
    assert parse_qs(url.query) == {"next": ["/sso/welcome"], "login_hint": ["eve@acme.test"]}


def test_disabled_or_ambiguous_connections_are_not_discovered(
    client: FlaskClient, admin: Scim, saml_connection: SamlConnection
) -> None:
    """A disabled connection is not offered; two connections and an unrouted domain: none.

    With its only connection disabled, an organization on automatic sign-in methods
    allows passwords: the password form, with no SSO button.
    """
    admin.patch(f"/api/v1/sso/connections/{saml_connection.id}", {"enabled": False})
    resp = client.post("/sso/login", data={"email": "a@example.com"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "/sso/saml/" not in body
    admin.patch(f"/api/v1/sso/connections/{saml_connection.id}", {"enabled": True})
    admin.post("/api/v1/sso/connections", {"protocol": "saml", "name": "second"})
    admin.delete("/api/v1/sso/domains/example.com")
    add_verified_domain(admin, "example.com")
    assert client.post("/sso/login", data={"email": "a@example.com"}).status_code == 400
