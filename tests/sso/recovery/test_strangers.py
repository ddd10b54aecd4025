"""What a stranger who knows only a person's address can do with the forgot form: nothing.

Anyone may ask for a reset link. The link must go to the person's own server (never to a
host the request names), and asking must not sign the person out or refuse their sign-in.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import MailOutbox
from tests.sso.saml_idp import FakeIdp, valid_response
from tests.support import Scim
from tests.support.console import sign_in_console
from tests.support.credentials import set_settings
from tests.support.dns_server import add_verified_domain
from tests.support.local import give_password
from tests.support.sso import SamlConnection, make_person

LOGIN = "alice@example.com"


def _person(app: Flask, scim: Scim) -> str:
    """alice@example.com: licensed, with the password ``PASSWORD``."""
    user_id = make_person(app, scim, LOGIN)
    give_password(app, scim.org_id, user_id)
    return user_id


def _mail_bodies(app: Flask, org_id: str, kind: str) -> list[str]:
    with db.reader(app)() as s:
        return [
            m.body_text or ""
            for m in s.scalars(
                select(MailOutbox).where(MailOutbox.org_id == org_id, MailOutbox.kind == kind)
            )
        ]


@pytest.fixture
def idp() -> FakeIdp:
    return FakeIdp()


@pytest.fixture
def saml_conn(admin: Scim, client: FlaskClient, idp: FakeIdp) -> SamlConnection:
    """A SAML connection with example.com as its domain (as tests/sso/conftest.py makes it)."""
    resp = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Entra ID", "metadata_xml": idp.metadata_xml()},
    )
    assert resp.status_code == 201, resp.get_json()
    conn = resp.get_json()
    add_verified_domain(admin, "example.com", conn["id"])
    return SamlConnection(conn, client)


def _forgot(client: FlaskClient, identifier: str, **kw: object) -> object:
    return client.post(
        "/sso/forgot",
        data={"identifier": identifier},
        environ_base={"REMOTE_ADDR": "10.0.0.7"},
        **kw,
    )


def test_forgot_password_link_is_not_built_from_an_attackers_host_header(
    app: Flask, scim: Scim, client: FlaskClient
) -> None:
    """A stranger posts the forgot form with ``Host: attacker.example``: a link built from
    it would hand the single-use token, and the account, to the attacker at one click.
    Without ``SCIM_BASE_URL`` (development) the link goes to localhost."""
    _person(app, scim)
    resp = _forgot(client, LOGIN, headers={"Host": "attacker.example"})
    assert resp.status_code == 200  # type: ignore[attr-defined]
    bodies = _mail_bodies(app, scim.org_id, "reset_link")
    assert not any("attacker.example" in body for body in bodies), bodies


def test_a_strangers_forgot_request_does_not_sign_an_admin_out_of_the_console(
    app: Flask, scim: Scim, client: FlaskClient
) -> None:
    """README: anyone can ask for a reset link and the account's "current password still
    works": ``RECOVERY`` may sign in, so the org admin's open console session goes on."""
    admin_id = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    assert client.get("/admin/").status_code == 200
    stranger = app.test_client()
    assert _forgot(stranger, "boss@example.com").status_code == 200  # type: ignore[attr-defined]
    assert _mail_bodies(app, scim.org_id, "reset_link"), "the link went out"
    page = client.get("/admin/")
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"), admin_id)


def test_a_strangers_forgot_request_does_not_refuse_the_persons_sso_sign_in(
    app: Flask,
    admin: Scim,
    scim: Scim,
    client: FlaskClient,
    saml_conn: SamlConnection,
    idp: FakeIdp,
) -> None:
    """An organization with SSO that also allows passwords (``password_allowed``): a
    stranger's forgot request for alice does not refuse her next sign-in at her own IdP."""
    set_settings(admin, sign_in_methods="password_allowed")
    user_id = make_person(app, scim, LOGIN)
    stranger = app.test_client()
    _forgot(stranger, LOGIN)
    assert _mail_bodies(app, scim.org_id, "reset_link"), "the link went out"
    request_id = saml_conn.start("/after")
    resp = saml_conn.post(valid_response(saml_conn.assertion(request_id), idp))
    assert resp.status_code == 303, resp.get_data(as_text=True)[:400]
    with client.session_transaction() as sess:
        assert sess["sso"]["user_id"] == user_id


def test_the_link_starts_with_the_configured_address_whatever_the_host(
    app: Flask, scim: Scim, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "BASE_URL", "https://id.example.com")
    _person(app, scim)
    _forgot(client, LOGIN, headers={"Host": "attacker.example"})
    (body,) = _mail_bodies(app, scim.org_id, "reset_link")
    assert "https://id.example.com/sso/reset/" in body and "attacker.example" not in body
