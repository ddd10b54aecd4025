"""Credentials mail that must not go, or not as it was queued: an organization gone single
sign-on only, a stranger's reset request, a base URL changed, a relay without SMTPUTF8, a
name with line breaks. Each failed before its fix (found by a probe of mail and links)."""

from __future__ import annotations

import re

from scim_server.db import db
from scim_server.models import MailOutbox, User
from tests.services.test_mail_delivery_welcome_address import _mails
from tests.support import SmtpRecorder, free_port
from tests.support.admin_api import ok
from tests.support.credentials import (
    employee,
    mail_worker,
    set_settings,
    text_of,
)

BASE = "https://id.example.com"
OWN = "Original-pass-phrase-31"
NEW = "Saffron-glacier-window-64"
# A display name as a hostile IdP or admin may store it.
EVIL_NAME = "<b>Eve</b>\r\nBcc: mallory@evil.example\r\n\r\nYour password expired: https://evil.example/login"


def _forgot(client, identifier: str, ip: str = "10.0.0.1", **kw):
    return client.post(
        "/sso/forgot", data={"identifier": identifier}, environ_base={"REMOTE_ADDR": ip}, **kw
    )


def _token_of(mail: MailOutbox, page: str) -> str:
    found = re.search(rf"/sso/{page}/([A-Za-z0-9_\-]+)", mail.body_text or "")
    assert found, mail.body_text
    return found.group(1)


def _status(app, org_id: str, user_id: str) -> str:
    with db.reader(app)() as session:
        return session.get(User, (org_id, user_id)).status


# -- where a mailed link's root comes from -----------------------------------------------------


def test_a_welcome_waiting_when_the_organization_goes_sso_only_is_not_mailed(
    app, scim, admin, smtp, tmp_path
):
    """README: an SSO-only organization gets "no password, no mail". A welcome queued before
    the switch still carries a temporary password the person cannot use."""
    recorder, port = smtp
    user_id = employee(scim, "erin@example.com")["id"]
    worker = mail_worker(app, port, tmp_path)
    assert worker.send_credentials() == 1  # the welcome is made and queued
    set_settings(admin, sign_in_methods="sso_only")
    worker.send_mail()
    (mail,) = [m for m in _mails(app, scim.org_id) if m.kind == "welcome"]
    assert recorder.messages == [], text_of(recorder.messages[0])
    assert mail.state == "cancelled"
    assert user_id


def test_a_reset_link_waiting_when_the_organization_goes_sso_only_is_not_mailed(
    app, scim, admin, client, smtp, tmp_path
):
    recorder, port = smtp
    employee(scim, "bob@example.com", password=OWN)
    _forgot(client, "bob@example.com")
    set_settings(admin, sign_in_methods="sso_only")
    mail_worker(app, port, tmp_path).send_mail()
    assert recorder.messages == [], text_of(recorder.messages[0])


def test_a_reset_link_page_is_gone_once_the_organization_is_sso_only(app, scim, admin, client):
    """The link can no longer set a password: its page should say so (410), not show a form
    whose POST then answers 409."""
    employee(scim, "bob@example.com", password=OWN)
    _forgot(client, "bob@example.com")
    token = _token_of(_mails(app, scim.org_id)[-1], "reset")
    set_settings(admin, sign_in_methods="sso_only")
    assert client.get(f"/sso/reset/{token}").status_code == 410


def test_an_address_the_relay_cannot_take_without_smtputf8_fails_alone(app, scim, admin, tmp_path):
    """The relay does not offer SMTPUTF8 (RFC 6531; Amazon SES): a mail to josé@example.com can
    never go through it. That is this mail's permanent failure, not the relay being down:
    the mail should be abandoned at once and the other mail of the round still sent."""
    from aiosmtpd.controller import Controller

    recorder = SmtpRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=False)
    controller.start()
    try:
        bad = employee(scim, "josé@example.com")["id"]
        good = employee(scim, "ann@example.com")["id"]
        worker = mail_worker(app, controller.port, tmp_path)
        worker.send_credentials()
        worker.send_mail()
    finally:
        controller.stop()
    mails = {m.user_id: m for m in _mails(app, scim.org_id)}
    assert mails[good].state == "sent", (mails[good].state, mails[bad].state, mails[bad].last_error)
    assert mails[bad].state == "abandoned", (mails[bad].state, mails[bad].last_error)
    assert worker.relay.retry_at is None


def test_a_name_with_line_breaks_adds_no_lines_to_the_text_part(app, scim, admin, smtp, tmp_path):
    """The greeting is one line: a name holding CR/LF must not add lines (a fake
    instruction) to the plain-text part of a credentials mail."""
    recorder, port = smtp
    employee(
        scim,
        "eve@example.com",
        name={"givenName": EVIL_NAME, "familyName": "X"},
        displayName=EVIL_NAME,
    )
    worker = mail_worker(app, port, tmp_path)
    worker.send_credentials()
    worker.send_mail()
    (message,) = recorder.messages
    text = text_of(message)
    assert not any(line.startswith("Your password expired") for line in text.splitlines()), text


def test_a_scheduled_send_links_to_the_base_url_configured_now(app, scim, admin, smtp, tmp_path):
    """README: "Mailed links always start with SCIM_BASE_URL". A credentials send waiting in
    credential_schedules (an admin's schedule months ahead, or a welcome while the worker was
    down) is made by the worker, which has its own SCIM_BASE_URL; the row's copy of the URL
    from when it was written should not win after the operator changed the address."""
    recorder, port = smtp
    app.config["BASE_URL"] = "https://old.example.com"
    set_settings(admin, credentials_delivery="activation_link")
    employee(scim, "fay@example.com")
    app.config["BASE_URL"] = BASE
    mail_worker(app, port, tmp_path, base_url=BASE).run_once()
    (message,) = recorder.messages
    assert f"{BASE}/sso/activate/" in text_of(message), text_of(message)


def test_a_strangers_forgot_does_not_cancel_a_welcome_that_still_works(
    app, scim, admin, client, smtp, tmp_path
):
    """A forgot request (anyone may make one) keeps the account's current password: a
    reset link replaces nothing. Yet it cancels the queued welcome, whose temporary password
    still works: the new hire never receives it, and if the 60-minute link is not used in
    time they are left with neither."""
    _recorder, port = smtp
    user_id = employee(scim, "nia@example.com")["id"]
    worker = mail_worker(app, port, tmp_path)
    assert worker.send_credentials() == 1  # the welcome (temporary password) is queued
    (welcome,) = _mails(app, scim.org_id)
    _forgot(client, "nia@example.com")
    worker.send_mail()
    states = {m.kind: (m.state, m.last_error) for m in _mails(app, scim.org_id)}
    assert states["welcome"][0] == "sent", states
    assert user_id and welcome


def test_a_strangers_forgot_does_not_cancel_an_admins_mail_to_themselves(
    app, scim, admin, client, smtp, tmp_path
):
    recorder, port = smtp
    user_id = employee(scim, "oli@example.com")["id"]
    with db.writer(app)() as s, s.begin():
        from scim_server.models import CredentialSchedule

        s.execute(CredentialSchedule.__table__.delete())
    ok(
        admin.post(
            f"/api/v1/users/{user_id}/credentials/send", {"to": "me", "me": "help@example.com"}
        ),
        202,
    )
    _forgot(client, "oli@example.com")
    mail_worker(app, port, tmp_path).send_mail()
    assert "help@example.com" in [str(m["To"]) for m in recorder.messages], [
        (m.kind, m.recipient, m.state, m.last_error) for m in _mails(app, scim.org_id)
    ]
