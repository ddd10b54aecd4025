"""The moments the sign-in's mails state, as the person reads them (real SMTP, the worker
sending): a reset link's expiry, an automatic lock's end."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from scim_server.db import db
from scim_server.models import CredentialToken
from tests.sso.local.conftest import LOGIN
from tests.support import Clock
from tests.support.credentials import mail_worker, text_of
from tests.support.local import forgot, person_with_password, sign_in

BASE = "https://id.acme.example"


def _stated(text: str, before: str) -> datetime:
    """The moment a mail states after ``before`` ("... on 7 December 2026 at 11:46 UTC")."""
    found = re.search(before + r" on (\d{1,2} \w+ \d{4}) at (\d\d:\d\d) UTC", text)
    assert found, text
    return datetime.strptime(" ".join(found.groups()), "%d %B %Y %H:%M").replace(tzinfo=UTC)


def test_a_reset_link_mail_sent_late_states_when_the_link_really_expires(
    app, scim, client, smtp, tmp_path
):
    """/sso/forgot queued "the link expires in 60 minutes"; sent later (the worker down, a
    relay outage, an admin's retry), the mail said the link was good for another hour when
    it had less. The mail now states the moment it expires, true whenever it is sent (to the
    minute below: it errs early). (Sent after the link expired, it is not sent at all:
    tests/services/test_mail_delivery.py.)"""
    recorder, port = smtp
    app.config["BASE_URL"] = BASE
    person_with_password(app, scim, "bob@example.com")
    assert forgot(client, "bob@example.com").status_code == 200
    late = Clock()
    late.advance(30 * 60)
    mail_worker(app, port, tmp_path, late, base_url=BASE).send_mail()
    (message,) = recorder.messages
    with db.reader(app)() as s:
        real_expiry = s.scalars(
            select(CredentialToken.expires_at).where(CredentialToken.purpose == "reset")
        ).one()
    promised = _stated(text_of(message), "expires")
    real = real_expiry if real_expiry.tzinfo else real_expiry.replace(tzinfo=UTC)
    assert real - timedelta(minutes=1) < promised <= real, (promised, real)


def test_the_account_locked_mail_states_a_time_the_lock_has_ended_by(
    app, scim, client, smtp, tmp_path, person, clock
):
    """The lock's end was cut to the minute ("unlocks by itself 2026-12-07 11:46 UTC" for a
    lock ending 11:46:30): the person who came back at the stated time was still locked out.
    It is now the next minute, stated as the other mails state moments."""
    recorder, port = smtp
    app.config["SIGNIN_ATTEMPTS_PER_MINUTE"] = 0
    clock.now = clock.now.replace(second=30, microsecond=0)
    for i in range(10):
        sign_in(client, LOGIN, f"wrong password number {i}")
    mail_worker(app, port, tmp_path, base_url=BASE).send_mail()
    (message,) = recorder.messages
    clock.now = _stated(text_of(message), "unlocks by itself")
    client.delete_cookie("session", domain="localhost")
    resp = sign_in(client, LOGIN)
    assert resp.status_code == 303, (
        f"at {clock.now} (the time the mail gave) the right password is refused: {resp.status_code}"
    )
