"""The security page's changes are told to the account's owner by mail (NIST SP 800-63B §6.1.2.1)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import MfaFactor
from tests.sso.local.conftest import LOGIN
from tests.support import Clock, Scim
from tests.support.authenticator import SoftAuthenticator
from tests.support.local import code_now, codes_of, csrf_of, form_post, mails, secret_of, sign_in
from tests.support.sso import read


def _add_totp(client: FlaskClient, clock: Clock) -> None:
    body = client.get("/sso/security/totp").get_data(as_text=True)
    secret = secret_of(body)
    resp = client.post(
        "/sso/security/totp", data={"code": code_now(secret, clock.now), "csrf": csrf_of(body)}
    )
    assert resp.status_code == 200 and len(codes_of(resp.get_data(as_text=True))) == 10


def test_a_new_authenticator_app_is_told_to_the_owner(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """Whoever holds the session (a stolen one, a shared computer) adds an authenticator app:
    its owner gets a mail at the account's address saying what, when, and what to do."""
    assert sign_in(client, LOGIN).status_code == 303
    assert mails(app, scim.org_id, "mfa_changed") == []
    _add_totp(client, clock)
    (mail,) = mails(app, scim.org_id, "mfa_changed")
    assert mail.recipient == LOGIN and mail.user_id == person and mail.state == "queued"
    assert "acme" in mail.subject
    for body in (mail.body_text, mail.body_html):
        assert "authenticator app was added" in body
        assert clock.now.strftime("%H:%M UTC") in body
        assert "If it was not you" in body and "/sso/login" in body


def test_a_removed_factor_is_told_to_the_owner(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """Removing a factor (a second factor someone wants gone) mails the owner too."""
    assert sign_in(client, LOGIN).status_code == 303
    _add_totp(client, clock)
    with read(app) as s:
        factor = s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).one()
    resp = form_post(client, "/sso/security", f"/sso/security/factors/{factor.id}/remove", {})
    assert resp.status_code == 303
    added, removed = sorted(mails(app, scim.org_id, "mfa_changed"), key=lambda m: m.created_at)
    assert "was added" in added.body_text
    assert "authenticator app was removed" in removed.body_text
    assert "was removed" in removed.body_html


def test_new_recovery_codes_are_told_to_the_owner(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """New recovery codes are a way in too (look-up secrets): the owner is told."""
    assert sign_in(client, LOGIN).status_code == 303
    _add_totp(client, clock)
    resp = form_post(client, "/sso/security", "/sso/security/recovery-codes", {})
    assert len(codes_of(resp.get_data(as_text=True))) == 10
    found = sorted(mails(app, scim.org_id, "mfa_changed"), key=lambda m: m.created_at)
    assert len(found) == 2 and "New recovery codes were made" in found[1].body_text


def test_a_new_passkey_is_told_to_the_owner(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """A passkey added at /sso/security: the mail names it by the name it was given."""
    assert sign_in(client, LOGIN).status_code == 303
    csrf = csrf_of(client.get("/sso/security").get_data(as_text=True))
    headers = {"X-CSRF-Token": csrf}
    options = client.post("/sso/passkeys/register/options", json={}, headers=headers).get_json()
    credential = SoftAuthenticator().register(options)
    body = {"credential": credential, "label": "Laptop <b>"}
    resp = client.post("/sso/passkeys/register", json=body, headers=headers)
    assert resp.status_code == 200, resp.get_json()
    (mail,) = mails(app, scim.org_id, "mfa_changed")
    assert "A passkey (Laptop <b>) was added" in mail.body_text
    assert "Laptop &lt;b&gt;" in mail.body_html and "<b>" not in mail.body_html


def test_the_first_factor_of_a_required_enrolment_is_told_too(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """require_mfa: the enrolment a sign-in asks for binds a factor too (whoever holds a leaked
    password would enrol theirs there): the owner is told."""
    assert admin.put("/api/v1/settings", {"require_mfa": True}).status_code == 200
    assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa/enrol"
    body = client.get("/sso/mfa/enrol").get_data(as_text=True)
    resp = client.post(
        "/sso/mfa/enrol", data={"code": code_now(secret_of(body), clock.now), "csrf": csrf_of(body)}
    )
    assert resp.status_code == 303
    (mail,) = mails(app, scim.org_id, "mfa_changed")
    assert mail.recipient == LOGIN and "authenticator app was added" in mail.body_text


def test_a_refused_code_tells_nothing(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """A wrong code adds no factor, and so sends no mail."""
    assert sign_in(client, LOGIN).status_code == 303
    body = client.get("/sso/security/totp").get_data(as_text=True)
    right = code_now(secret_of(body), clock.now)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    resp = client.post("/sso/security/totp", data={"code": wrong, "csrf": csrf_of(body)})
    assert resp.status_code == 400
    assert mails(app, scim.org_id, "mfa_changed") == []
