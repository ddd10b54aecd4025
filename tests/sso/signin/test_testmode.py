"""Test mode: an admin runs a real login against a connection and sees the result; nothing changes."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import User
from tests.sso.oidc_op.provider import LocalOP
from tests.sso.saml_idp import WS, FakeIdp, valid_response
from tests.sso.signin.test_binding import (
    EMPLOYEE_NUMBER,
    PERSISTENT,
    links,
    partner_oidc_jit,
)
from tests.support import Scim
from tests.support.sso import (
    SamlConnection,
    make_person,
    oidc_login,
    read,
    set_default_license,
    sign_ins,
    start_test_login,
)


def test_test_mode_shows_attributes_and_creates_nobody(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """A test login for an unknown person with JIT on: attributes, mapping, decision; no user."""
    set_default_license(app, scim.org_id, "Engineer")
    admin.patch(f"/api/v1/sso/connections/{saml_connection.id}", {"jit_enabled": True})
    request_id = start_test_login(admin, client, saml_connection.id)
    attrs = {WS + "emailaddress": ["dave@example.com"], "department": ["Sales"]}
    assertion = saml_connection.assertion(request_id, name_id="dave@example.com", attributes=attrs)
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "SSO connection test" in body
    assert "department" in body and "Sales" in body and "would create the account" in body
    with read(app) as s:
        assert s.scalar(select(User).where(User.org_id == scim.org_id)) is None
    with client.session_transaction() as sess:
        assert "sso" not in sess
    record = sign_ins(app, scim.org_id)[-1]
    assert record.outcome == "test" and record.data["attributes"]["department"] == ["Sales"]
    assert record.data["profile"]["email"] == ["dave@example.com"]
    assert record.data["mapping"]["license"] == "Engineer"
    listed = admin.get("/api/v1/sso/sign-ins?outcome=test").get_json()["sign_ins"]
    assert listed[0]["data"]["decision"]["outcome"].startswith("would create")


def test_test_mode_reports_refusal_reason(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """A known user without a license: the test page names missing_license; nothing changes."""
    user_id = make_person(app, scim, licensed=False)
    request_id = start_test_login(admin, client, saml_connection.id)
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert "missing_license" in resp.get_data(as_text=True)
    with read(app) as s:
        assert s.get(User, (scim.org_id, user_id)).last_login_at is None


def test_test_link_is_per_organization(
    admin: Scim, other_scim: Scim, saml_connection: SamlConnection, app: Flask, client: FlaskClient
) -> None:
    """Another organization's admin cannot make a test link for the connection."""
    from scim_server.services.tokens import create_token

    with read(app) as s:
        _t, secret = create_token(s, other_scim.org_id, "admin", kind="admin")
    other = Scim(client, secret, other_scim.org_id)
    assert other.post(f"/api/v1/sso/connections/{saml_connection.id}/test", {}).status_code == 404
    assert client.get("/sso/test/made-up-token").status_code == 400


def test_test_mode_refuses_an_account_another_connection_created_just_in_time(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    saml_idp: FakeIdp,
) -> None:
    """A test login on Entra whose NameID is the externalId of the partner's just-in-time
    account: the page names subject_mismatch, as a real sign-in would; nothing is linked."""
    entra = partner_oidc_jit(app, admin, scim, oidc_conn, saml_idp)
    local_op.user.update(
        sub="partner-7",
        email="mallory@example.com",
        email_verified=True,
        external_id=EMPLOYEE_NUMBER,
    )
    assert oidc_login(app.test_client(), oidc_conn).status_code == 303
    before = links(app, scim.org_id)

    request_id = start_test_login(admin, client, entra.id)
    browser = SamlConnection(entra.data, client)
    assertion = browser.assertion(
        request_id,
        name_id=EMPLOYEE_NUMBER,
        name_id_format=PERSISTENT,
        attributes={WS + "emailaddress": ["e.smith@example.org"]},
    )
    resp = browser.post(valid_response(assertion, saml_idp))
    assert resp.status_code == 200 and "subject_mismatch" in resp.get_data(as_text=True)
    record = sign_ins(app, scim.org_id)[-1]
    assert (record.outcome, record.reason_code) == ("test", "subject_mismatch")
    assert "created just in time by another connection" in (record.detail or "")
    assert links(app, scim.org_id) == before
