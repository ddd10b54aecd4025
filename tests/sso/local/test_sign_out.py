"""Signing out, for everyone signed in: the welcome and security pages offer it, and the
session ends on the server (a copy of the cookie too). The only sign-out was the console's,
which a person without a console role could not reach: an employee signed in to an
application on a shared computer stayed signed in for the session's whole life."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tests.support import Scim
from tests.support.local import csrf_of, person_with_password, sign_in, signed_in
from tests.support.sso import events


def _copy(app: Flask, client: FlaskClient) -> FlaskClient:
    name = app.config["SESSION_COOKIE_NAME"]
    other = app.test_client()
    cookie = client.get_cookie(name)
    assert cookie is not None
    other.set_cookie(name, cookie.value)
    return other


def test_a_person_without_a_console_role_signs_out_from_the_welcome_page(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    person_with_password(app, scim, "bob@example.com")
    assert sign_in(client, "bob@example.com", next_path="/sso/welcome").status_code == 303
    copy = _copy(app, client)
    page = client.get("/sso/welcome").get_data(as_text=True)
    assert 'action="/sso/sign-out"' in page
    resp = client.post("/sso/sign-out", data={"csrf": csrf_of(page)})
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/signed-out"
    assert "You are signed out" in client.get("/sso/signed-out").get_data(as_text=True)
    assert not signed_in(client)
    assert not signed_in(copy)  # ended on the server, not only in this browser


def test_the_security_page_offers_the_sign_out_and_it_needs_its_token(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    person_with_password(app, scim, "bob@example.com")
    sign_in(client, "bob@example.com")
    page = client.get("/sso/security").get_data(as_text=True)
    assert 'action="/sso/sign-out"' in page
    assert client.post("/sso/sign-out", data={"csrf": "forged"}).status_code == 400
    assert signed_in(client)
    assert client.post("/sso/sign-out", data={"csrf": csrf_of(page)}).status_code == 303
    assert not signed_in(client)


def test_the_consoles_sign_out_is_open_to_a_person_without_a_console_role(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The console's other pages answer "No console access" (with a way to the sign-out);
    its sign-out itself is reached."""
    person_with_password(app, scim, "bob@example.com")
    sign_in(client, "bob@example.com")
    refused = client.get("/admin/")
    assert refused.status_code == 403
    assert 'href="/sso/security"' in refused.get_data(as_text=True)
    resp = client.post("/admin/sign-out", data={"csrf_token": _console_token(client)})
    assert resp.status_code == 303
    assert not signed_in(client)


def _console_token(client: FlaskClient) -> str:
    """The console's CSRF token, as its 403 page carries it."""
    body = client.get("/admin/").get_data(as_text=True)
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', body) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', body
    )
    assert found, body
    return found.group(1)


def test_password_sessions_end_when_the_organization_goes_sso_only(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """Once the organization is SSO-only its IdP's policy (MFA, conditional access) is the
    only way in: a session opened with a password stops speaking for its person (it went
    on for SCIM_SSO_SESSION_SECONDS), a copy of its cookie too."""
    person_with_password(app, scim, "bob@example.com")
    assert sign_in(client, "bob@example.com").status_code == 303
    copy = _copy(app, client)
    assert signed_in(client)
    assert admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}).status_code == 200
    assert not signed_in(client)
    assert not signed_in(copy)
    assert client.get("/admin/").status_code in (302, 303)  # to the sign-in, not the console


def test_a_sign_out_is_in_the_log_once(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """Compliance reads when a session ended as when it began: ``signin.sign_out`` about
    the account, once (a copy of the cookie signed out again records nothing more)."""
    user_id = person_with_password(app, scim, "bob@example.com")
    assert sign_in(client, "bob@example.com", next_path="/sso/welcome").status_code == 303
    copy = _copy(app, client)
    page = client.get("/sso/welcome").get_data(as_text=True)
    assert client.post("/sso/sign-out", data={"csrf": csrf_of(page)}).status_code == 303
    logged = events(app, scim.org_id, "signin.sign_out")
    assert [(e.resource_id, e.user_name) for e in logged] == [(user_id, "bob@example.com")]
    with copy.session_transaction() as sess:
        sess["csrf"] = "t"
    assert copy.post("/sso/sign-out", data={"csrf": "t"}).status_code == 303
    assert len(events(app, scim.org_id, "signin.sign_out")) == 1
