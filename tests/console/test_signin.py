"""The console behind the product's real sign-in: the SAML test IdP, not the test helper."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.services import console_access
from tests.sso.saml_idp import FakeIdp, valid_response
from tests.support import Scim
from tests.support.dns_server import add_verified_domain
from tests.support.sso import SamlConnection, make_person


def _saml_connection(admin: Scim, client: FlaskClient, idp: FakeIdp) -> SamlConnection:
    resp = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Entra ID", "metadata_xml": idp.metadata_xml()},
    )
    assert resp.status_code == 201, resp.get_json()
    conn = resp.get_json()
    add_verified_domain(admin, "example.com", conn["id"])
    return SamlConnection(conn, client)


def test_first_admin_signs_in_through_saml_and_lands_on_the_page_asked(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """/admin/users/ → sign-in → the IdP → back to /admin/users/, signed in; the sign-in is on
    the person's profile."""
    idp = FakeIdp()
    conn = _saml_connection(admin, client, idp)
    user_id = make_person(app, scim, "alice@example.com")
    with db.reader(app)() as s:
        console_access.grant(s, scim.org_id, user_id, "org_admin")
    resp = client.get("/admin/users/")
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/login?next=/admin/users/"
    request_id = conn.start("/admin/users/")
    resp = conn.post(valid_response(conn.assertion(request_id), idp))
    assert resp.status_code == 303 and resp.headers["Location"] == "/admin/users/"
    page = client.get("/admin/users/")
    assert page.status_code == 200 and "alice@example.com" in page.get_data(as_text=True)
    profile = client.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert "Never signed in." not in profile and "badge-ACTIVE" in profile


def test_signed_in_person_without_console_role_is_refused(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """Signing in through the IdP opens the product, not the console: no role, 403."""
    idp = FakeIdp()
    conn = _saml_connection(admin, client, idp)
    make_person(app, scim, "alice@example.com")
    request_id = conn.start("/admin/")
    conn.post(valid_response(conn.assertion(request_id), idp))
    resp = client.get("/admin/")
    assert resp.status_code == 403 and "No console access" in resp.get_data(as_text=True)
