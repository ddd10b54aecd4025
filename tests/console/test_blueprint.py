"""The console's gate: sign-in, idle timeout, roles, CSRF, headers; the APIs untouched."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.models import AuditEvent, User
from scim_server.services import console_access
from tests.support import Scim
from tests.support.console import console_user, csrf_token, sign_in_as, sign_in_console


def test_root_leads_to_the_console(client: FlaskClient) -> None:
    """``/`` redirects to /admin/, which sends a stranger to the product's sign-in."""
    resp = client.get("/")
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/"
    resp = client.get("/admin/")
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/sso/login?next=/admin/"


def test_htmx_request_without_session_navigates_to_sign_in(client: FlaskClient) -> None:
    """htmx gets HX-Redirect, so the sign-in page is not swapped into a fragment."""
    resp = client.get("/admin/", headers={"HX-Request": "true"})
    assert resp.status_code == 204
    assert resp.headers["HX-Redirect"].startswith("/sso/login?next=")


def test_signed_in_admin_sees_the_overview_with_strict_headers(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The overview names the organization; CSP forbids inline script and framing."""
    sign_in_console(app, client, scim, "org_admin")
    resp = client.get("/admin/")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "acme" in body and "org_admin" in body
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert resp.headers["Cache-Control"] == "no-store"
    assert "<script>" not in body and " style=" not in body


def test_signed_in_without_console_role_is_403(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """A person of the organization without a console role is refused, told whom to ask."""
    user_id = console_user(app, scim, "nobody@example.com")
    sign_in_as(app, client, scim.org_id, user_id)
    resp = client.get("/admin/")
    assert resp.status_code == 403
    assert "No console access" in resp.get_data(as_text=True)


def test_locked_account_loses_the_console(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """A console user whose account is locked is signed out at the next request."""
    user_id = sign_in_console(app, client, scim, "org_admin")
    from scim_server.services import accounts

    with db.reader(app)() as s:
        accounts.act(s, scim.org_id, user_id, "lock", None)
    resp = client.get("/admin/")
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/sso/login")


def test_idle_session_ends(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """Unused for longer than CONSOLE_IDLE_SECONDS, the console session is over."""
    sign_in_console(app, client, scim, "org_admin")
    assert client.get("/admin/").status_code == 200
    with client.session_transaction() as sess:
        sess["console_seen"] -= app.config["CONSOLE_IDLE_SECONDS"] + 1
    resp = client.get("/admin/")
    assert resp.status_code == 303
    assert client.get("/admin/").status_code == 303  # the session itself is gone


def test_idle_time_counts_from_the_sign_in_until_the_console_is_used(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A session signed in longer ago than CONSOLE_IDLE_SECONDS and never used in the console
    since (the cookie the sign-in's redirect set: no ``console_seen``) is over, not good for
    the whole SSO session; one signed in just now opens the console."""
    sign_in_console(app, client, scim, "org_admin")
    idle = app.config["CONSOLE_IDLE_SECONDS"]
    with client.session_transaction() as sess:
        assert "console_seen" not in sess
        sso = dict(sess["sso"])
        sso["auth_time"] -= idle + 60  # signed in 31 minutes ago, untouched since
        sess["sso"] = sso
    resp = client.get("/admin/")
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith("/sso/login")
    assert client.get("/admin/").status_code == 303  # the session itself is gone
    sign_in_console(app, client, scim, "org_admin", "fresh@example.com")
    assert client.get("/admin/").status_code == 200


def test_session_cookie_flags(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """The console's cookie is HttpOnly and SameSite=Lax (Secure follows https: config)."""
    sign_in_console(app, client, scim, "org_admin")
    resp = client.get("/admin/")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_post_without_csrf_token_is_refused(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """Sign-out without the token: 400, the session stays; with the token it ends."""
    sign_in_console(app, client, scim, "org_admin")
    resp = client.post("/admin/sign-out")
    assert resp.status_code == 400
    assert "Form expired" in resp.get_data(as_text=True)
    assert client.get("/admin/").status_code == 200
    token = csrf_token(client)
    resp = client.post("/admin/sign-out", data={"csrf_token": token})
    assert resp.status_code == 303
    assert client.get("/admin/").status_code == 303


def test_htmx_header_token_is_accepted(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """htmx sends the token as X-CSRFToken (hx-headers on <body>)."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client)
    resp = client.post("/admin/sign-out", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert resp.status_code == 303


HTTPS = "https://localhost"


@pytest.fixture
def behind_https(app: Flask) -> None:
    """Production: SCIM_BASE_URL is https (so the session cookie is Secure) and requests
    arrive as https (TLS at gunicorn, or a local proxy's X-Forwarded-Proto)."""
    app.config["BASE_URL"] = HTTPS
    app.config["SESSION_COOKIE_SECURE"] = True


def _https_token(app: Flask, client: FlaskClient, scim: Scim) -> str:
    sign_in_console(app, client, scim, "org_admin")
    page = client.get("/admin/", base_url=HTTPS)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"  # a browser sends no Referer
    return csrf_token(client, HTTPS + "/admin/")


def _status(app: Flask, scim: Scim, user_id: str) -> str:
    with db.reader(app)() as s:
        return s.get(User, (scim.org_id, user_id)).status


@pytest.mark.usefixtures("behind_https")
@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Origin, no Sec-Fetch-Site: a script, an old browser: the token alone
        {"Origin": HTTPS, "Sec-Fetch-Site": "same-origin"},
        # Referrer-Policy: no-referrer: a browser's form POST says ``Origin: null``
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_form_post_over_https_without_referer_is_accepted(
    app: Flask, client: FlaskClient, scim: Scim, headers: dict[str, str]
) -> None:
    """Over https a console form with its token works although the browser sends no Referer
    (the pages say ``no-referrer``): deactivating a leaver takes effect."""
    token = _https_token(app, client, scim)
    leaver = console_user(app, scim, "leaver@example.com")
    resp = client.post(
        f"/admin/users/{leaver}/status",
        data={"op": "deactivate", "csrf_token": token},
        headers=headers,
        base_url=HTTPS,
    )
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert _status(app, scim, leaver) == "DEACTIVATED"


@pytest.mark.usefixtures("behind_https")
def test_htmx_post_over_https_without_referer_is_accepted(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """htmx's X-CSRFToken over https, with the Origin a browser's script request carries:
    sign-out works and the session is over."""
    token = _https_token(app, client, scim)
    resp = client.post(
        "/admin/sign-out",
        headers={"X-CSRFToken": token, "HX-Request": "true", "Origin": HTTPS},
        base_url=HTTPS,
    )
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert client.get("/admin/", base_url=HTTPS).status_code == 303


@pytest.mark.usefixtures("behind_https")
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost"},  # same host, not the https origin
        {"Origin": "https://localhost:8443"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},  # a sandboxed frame's form
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain's page
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_post_from_another_site_is_refused_despite_the_token(
    app: Flask, client: FlaskClient, scim: Scim, headers: dict[str, str]
) -> None:
    """A form or htmx request another site's page made (its Origin, or Sec-Fetch-Site) is
    refused with the same "Form expired" page even carrying a valid token; nothing changes."""
    token = _https_token(app, client, scim)
    leaver = console_user(app, scim, "leaver@example.com")
    before = _status(app, scim, leaver)
    resp = client.post(
        f"/admin/users/{leaver}/status",
        data={"op": "deactivate", "csrf_token": token},
        headers=headers,
        base_url=HTTPS,
    )
    assert resp.status_code == 400
    assert "Form expired" in resp.get_data(as_text=True)
    assert _status(app, scim, leaver) == before != "DEACTIVATED"
    resp = client.post(
        "/admin/sign-out",
        headers={"X-CSRFToken": token, "HX-Request": "true", **headers},
        base_url=HTTPS,
    )
    assert resp.status_code == 400 and "Form expired" in resp.get_data(as_text=True)
    assert client.get("/admin/", base_url=HTTPS).status_code == 200  # still signed in


def test_apis_need_no_csrf_token(client: FlaskClient, scim: Scim, admin: Scim) -> None:
    """CSRF is the console's: SCIM and admin API writes with bearer tokens still work."""
    assert scim.create_user("bob@example.com")["userName"] == "bob@example.com"
    resp = admin.post("/api/v1/licenses", {"name": "Engineer", "seat_limit": 2})
    assert resp.status_code == 201, resp.get_json()


def test_grant_is_audited(app: Flask, scim: Scim) -> None:
    """Granting a console role writes console.grant; a second grant changes nothing."""
    user_id = console_user(app, scim, "carol@example.com")
    with db.reader(app)() as s:
        assert console_access.grant(s, scim.org_id, user_id, "auditor") is True
    with db.reader(app)() as s:
        assert console_access.grant(s, scim.org_id, user_id, "auditor") is False
        assert console_access.roles_of(s, scim.org_id, user_id) == {"auditor"}
        actions = [e.action for e in s.query(AuditEvent).filter_by(org_id=scim.org_id)]
    assert actions.count("console.grant") == 1


def test_unknown_console_address_is_an_html_404(client: FlaskClient) -> None:
    """No route under /admin: a page in the console's look, not the APIs' JSON."""
    resp = client.get("/admin/nowhere/at/all")
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    assert "There is nothing at this address" in resp.get_data(as_text=True)
    assert client.get("/api/v1/nowhere").mimetype == "application/json"


@pytest.mark.parametrize(
    ("method", "url"), [("GET", "/admin/users/x/delete"), ("DELETE", "/admin/users/")]
)
def test_a_405_page_names_the_allowed_methods(
    app: Flask, client: FlaskClient, scim: Scim, method: str, url: str
) -> None:
    """RFC 9110 §15.5.6: a 405 carries ``Allow``; the console's page dropped it."""
    sign_in_console(app, client, scim, "org_admin", "boss@acme.example")
    resp = client.open(url, method=method)
    assert resp.status_code == 405
    assert "POST" in resp.headers.get("Allow", "") or "GET" in resp.headers.get("Allow", "")
