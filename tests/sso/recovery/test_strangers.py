"""What a stranger who knows only a person's address can do with the forgot form: nothing.

Anyone may ask for a reset link. The link must go to the person's own server (never to a
host the request names), and asking must not sign the person out or refuse their sign-in.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.sso.saml_idp import FakeIdp, valid_response
from tests.support import Scim
from tests.support.console import sign_in_console
from tests.support.credentials import set_settings
from tests.support.local import forgot, mail_bodies, person_with_password
from tests.support.sso import SamlConnection, make_person

LOGIN = "alice@example.com"


def test_forgot_password_link_is_not_built_from_an_attackers_host_header(
    app: Flask, scim: Scim, client: FlaskClient
) -> None:
    """A stranger posts the forgot form with ``Host: attacker.example``: a link built from
    it would hand the single-use token, and the account, to the attacker at one click.
    Without ``SCIM_BASE_URL`` (development) the link goes to localhost."""
    person_with_password(app, scim, LOGIN)
    resp = forgot(client, LOGIN, headers={"Host": "attacker.example"})
    assert resp.status_code == 200  # type: ignore[attr-defined]
    bodies = mail_bodies(app, scim.org_id, "reset_link")
    assert not any("attacker.example" in body for body in bodies), bodies


def test_a_strangers_forgot_request_does_not_sign_an_admin_out_of_the_console(
    app: Flask, scim: Scim, client: FlaskClient
) -> None:
    """README: anyone can ask for a reset link and the account's "current password still
    works": ``RECOVERY`` may sign in, so the org admin's open console session goes on."""
    admin_id = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    assert client.get("/admin/").status_code == 200
    stranger = app.test_client()
    assert forgot(stranger, "boss@example.com").status_code == 200  # type: ignore[attr-defined]
    assert mail_bodies(app, scim.org_id, "reset_link"), "the link went out"
    page = client.get("/admin/")
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"), admin_id)


def test_a_strangers_forgot_request_does_not_refuse_the_persons_sso_sign_in(
    app: Flask,
    admin: Scim,
    scim: Scim,
    client: FlaskClient,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """An organization with SSO that also allows passwords (``password_allowed``): a
    stranger's forgot request for alice does not refuse her next sign-in at her own IdP."""
    set_settings(admin, sign_in_methods="password_allowed")
    user_id = make_person(app, scim, LOGIN)
    stranger = app.test_client()
    forgot(stranger, LOGIN)
    assert mail_bodies(app, scim.org_id, "reset_link"), "the link went out"
    request_id = saml_connection.start("/after")
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert resp.status_code == 303, resp.get_data(as_text=True)[:400]
    with client.session_transaction() as sess:
        assert sess["sso"]["user_id"] == user_id


def test_the_link_starts_with_the_configured_address_whatever_the_host(
    app: Flask, scim: Scim, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "BASE_URL", "https://id.example.com")
    person_with_password(app, scim, LOGIN)
    forgot(client, LOGIN, headers={"Host": "attacker.example"})
    (body,) = mail_bodies(app, scim.org_id, "reset_link")
    assert "https://id.example.com/sso/reset/" in body and "attacker.example" not in body
