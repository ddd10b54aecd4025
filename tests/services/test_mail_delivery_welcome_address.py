"""A welcome cancelled at send time because the IdP corrected the address goes to the new one.

Entra and Okta create a user, then PATCH its e-mails a moment later. When the worker had
already queued the welcome for the first address, ``mail_delivery`` cancels it (a secret
never goes to an address the account no longer has) and, the account being otherwise
still due its welcome, queues a new one with fresh credentials to the current address in
the same transaction. Everything through the real interfaces: SCIM, the admin API, the
worker's own passes, a real SMTP server, the sign-in pages.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import CredentialSend, MailOutbox
from scim_server.services import mail, mail_delivery
from tests.support import Clock
from tests.support.admin_api import events, ok
from tests.support.credentials import (
    employee,
    link_token,
    mail_worker,
    set_settings,
    temporary_password,
    text_of,
)
from tests.support.holds import Hold, client_like, main_thread_only, postgresql_only
from tests.support.local import sign_in
from tests.support.sso import set_default_license

OLD = "erin@example.com"
NEW = "erin.new@example.com"
CHANGED = "the account's e-mail address changed since it was queued"
CHOSEN = "lantern orchard quietly"
WORKER = "scim-server worker"


def _readdress(scim, user_id: str, address: str, *more: dict[str, Any]) -> None:
    """The IdP's PATCH of the primary e-mail (Entra, Okta: right after the create)."""
    emails = [{"type": "work", "value": address, "primary": True}]
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}", {"op": "replace", "path": "emails", "value": emails}, *more
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)


def _mails(app, org_id: str) -> list[MailOutbox]:
    """The organization's mail, oldest first."""
    with db.reader(app)() as session:
        return list(
            session.scalars(
                select(MailOutbox)
                .where(MailOutbox.org_id == org_id)
                .order_by(MailOutbox.created_at, MailOutbox.id)
            )
        )


def _sends(app, org_id: str, user_id: str) -> list[tuple[str, str | None]]:
    """The account's credentials sends (reason, mail id), oldest first."""
    with db.reader(app)() as session:
        rows = session.execute(
            select(CredentialSend.reason, CredentialSend.mail_id)
            .where(CredentialSend.org_id == org_id, CredentialSend.user_id == user_id)
            .order_by(CredentialSend.created_at)
        )
        return [(row.reason, row.mail_id) for row in rows]


def _queued_body(app, org_id: str) -> str:
    """The text of the one welcome waiting in the outbox (what the old address would get)."""
    (mail,) = [m for m in _mails(app, org_id) if m.state == "queued"]
    assert mail.body_text
    return mail.body_text


def _username(message: Any) -> str:
    found = re.search(r"Username: (\S+)", text_of(message))
    assert found, text_of(message)
    return found.group(1)


def _old_password(body: str) -> str:
    found = re.search(r"Temporary password: (\S+)", body)
    assert found, body
    return found.group(1)


def _by_worker(event: dict[str, Any]) -> bool:
    return event["actor_type"] == "system" and event["actor_name"] == WORKER


def test_a_welcome_cancelled_for_a_corrected_address_goes_to_the_new_one(
    app, scim, admin, smtp, tmp_path
):
    """Welcome queued for erin@, the IdP corrects it to erin.new@ before it went: nothing
    to the old address, a new welcome (new temporary password) to the new one that signs
    in, the old password dead; the log says what the worker did and why."""
    recorder, port = smtp
    set_default_license(app, scim.org_id)
    user_id = employee(scim, OLD)["id"]
    worker = mail_worker(app, port, tmp_path)
    assert worker.send_credentials() == 1  # the welcome is made for erin@ ...
    old_secret = _old_password(_queued_body(app, scim.org_id))
    _readdress(scim, user_id, NEW)  # ... and the IdP's PATCH lands before the mail pass
    worker.send_mail()

    (message,) = recorder.messages
    assert str(message["To"]) == NEW
    first, second = _mails(app, scim.org_id)
    assert (first.recipient, first.state, first.last_error) == (OLD, "cancelled", CHANGED)
    assert first.body_text is None and first.body_html is None
    assert (second.kind, second.recipient, second.state) == ("welcome", NEW, "sent")
    assert _sends(app, scim.org_id, user_id) == [("welcome", first.id), ("welcome", second.id)]

    # The new password works (its first use leads to choosing one), the old one never will.
    secret = temporary_password(message)
    assert secret != old_secret
    login = _username(message)
    resp = sign_in(app.test_client(), login, secret)
    assert (resp.status_code, resp.headers.get("Location")) == (303, "/sso/password/change")
    assert sign_in(app.test_client(), login, old_secret).status_code == 401

    # The log: the cancellation, then the new welcome, both by the worker, with the reason.
    (cancelled,) = events(admin, resource_id=first.id, action="mail.cancelled")
    assert _by_worker(cancelled) and cancelled["detail"] == f"welcome to {OLD}: {CHANGED}"
    made, again = events(admin, resource_id=user_id, action="user.credentials.welcome")
    assert made["changes"]["recipient"] == {"after": OLD}
    assert _by_worker(again) and again["outcome"] == "success"
    assert again["changes"]["recipient"] == {"before": OLD, "after": NEW}
    assert NEW in again["detail"] and OLD in again["detail"] and "changed" in again["detail"]
    (queued,) = events(admin, resource_id=second.id, action="mail.queued")
    assert _by_worker(queued) and queued["detail"] == f"welcome to {NEW}"
    everything = str(events(admin))
    assert secret not in everything and old_secret not in everything


def test_an_activation_link_welcome_goes_to_the_new_address_with_a_new_link(
    app, scim, admin, smtp, tmp_path
):
    """Link mode: the welcome is an activation link. Its address corrected before it went,
    the link made for erin@ dies and erin.new@ gets one of its own that sets a password."""
    recorder, port = smtp
    set_default_license(app, scim.org_id)
    # PUT replaces the whole document: the default license stays in it.
    set_settings(admin, credentials_delivery="activation_link", default_license="Engineer")
    user_id = employee(scim, OLD)["id"]
    worker = mail_worker(app, port, tmp_path)
    assert worker.send_credentials() == 1
    old_token = re.search(r"/sso/activate/([A-Za-z0-9_\-]+)", _queued_body(app, scim.org_id))
    assert old_token
    _readdress(scim, user_id, NEW)
    worker.send_mail()

    (message,) = recorder.messages
    assert str(message["To"]) == NEW
    first, second = _mails(app, scim.org_id)
    assert (first.kind, first.state, first.last_error) == ("activation_link", "cancelled", CHANGED)
    assert (second.kind, second.recipient, second.state) == ("activation_link", NEW, "sent")
    client = app.test_client()
    assert client.get(f"/sso/activate/{old_token.group(1)}").status_code == 410
    token = link_token(message, "activate")
    resp = client.post(f"/sso/activate/{token}", data={"password": CHOSEN, "confirm": CHOSEN})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert f"with the username {OLD}." in text_of(message)  # the userName did not change
    assert sign_in(app.test_client(), OLD, CHOSEN).status_code == 303
    again = events(admin, resource_id=user_id, action="user.credentials.welcome")[-1]
    assert _by_worker(again) and again["changes"]["recipient"] == {"before": OLD, "after": NEW}


def test_the_idps_correction_before_the_credentials_pass_needs_no_second_welcome(
    app, scim, smtp, tmp_path
):
    """The PATCH lands before the worker made the credentials: the one welcome is made for
    the new address; nothing is cancelled."""
    recorder, port = smtp
    user_id = employee(scim, OLD)["id"]
    _readdress(scim, user_id, NEW)
    mail_worker(app, port, tmp_path).run_once()
    assert [str(m["To"]) for m in recorder.messages] == [NEW]
    assert [(m.recipient, m.state) for m in _mails(app, scim.org_id)] == [(NEW, "sent")]


def test_no_address_any_more_cancels_the_welcome_and_says_why_no_other_went(
    app, scim, admin, smtp, tmp_path
):
    """The IdP removes the e-mails (the contact keeps none): the welcome is cancelled, no
    other is made (there is nowhere to send it), and the log says why."""
    recorder, port = smtp
    user_id = employee(scim, OLD)["id"]
    worker = mail_worker(app, port, tmp_path)
    assert worker.send_credentials() == 1
    resp = scim.patch_ops(f"/scim/v2/Users/{user_id}", {"op": "remove", "path": "emails"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    worker.send_mail()
    assert recorder.messages == []
    (mail,) = _mails(app, scim.org_id)
    assert (mail.state, mail.last_error) == ("cancelled", CHANGED)
    assert _sends(app, scim.org_id, user_id) == [("welcome", mail.id)]
    made, refused = events(admin, resource_id=user_id, action="user.credentials.welcome")
    assert made["outcome"] == "success" and made["changes"]["recipient"] == {"after": OLD}
    assert _by_worker(refused) and refused["outcome"] == "failure"
    assert "no e-mail address" in refused["detail"] and OLD in refused["detail"]


def test_an_organization_gone_sso_only_gets_no_new_welcome(app, scim, admin, smtp, tmp_path):
    """The address corrected, and meanwhile the organization signs in through SSO only: the
    welcome is cancelled for that (its password would sign no one in, whatever the
    address) and no new password is made; the log says why."""
    recorder, port = smtp
    user_id = employee(scim, OLD)["id"]
    worker = mail_worker(app, port, tmp_path)
    assert worker.send_credentials() == 1
    _readdress(scim, user_id, NEW)
    set_settings(admin, sign_in_methods="sso_only")
    worker.send_mail()
    assert recorder.messages == []
    (mail,) = _mails(app, scim.org_id)
    sso_only = "the organization signs in through single sign-on only"
    assert (mail.state, mail.last_error) == ("cancelled", sso_only)
    assert events(admin, resource_id=user_id, action="user.credentials.welcome") == [
        e
        for e in events(admin, resource_id=user_id, action="user.credentials.welcome")
        if not _by_worker(e)
    ]
    (cancelled,) = events(admin, action="mail.cancelled")
    assert sso_only in cancelled["detail"]


def _deactivate(app, scim, admin, user_id: str, clock: Clock) -> str:
    _readdress(scim, user_id, NEW, {"op": "replace", "value": {"active": False}})
    return "the account is DEACTIVATED"


def _resend(app, scim, admin, user_id: str, clock: Clock) -> str:
    _readdress(scim, user_id, NEW)
    ok(admin.post(f"/api/v1/users/{user_id}/credentials/resend", None), 202)
    return "replaced by newer credentials"


def _idp_password(app, scim, admin, user_id: str, clock: Clock) -> str:
    # Okta's password sync alongside the address: the person knows their password.
    _readdress(scim, user_id, NEW, {"op": "replace", "path": "password", "value": CHOSEN})
    return "the account has a password of its own since"


def _expire(app, scim, admin, user_id: str, clock: Clock) -> str:
    _readdress(scim, user_id, NEW)
    clock.advance(timedelta(days=1, minutes=1).total_seconds())
    return "the temporary password expired"


@pytest.mark.parametrize(
    "change",
    [_deactivate, _resend, _idp_password, _expire],
    ids=["deactivated", "replaced", "idp-password", "expired"],
)
def test_a_welcome_no_longer_due_is_not_sent_again_whatever_the_address(
    app, scim, admin, smtp, tmp_path, change
):
    """The welcome was being sent (its worker died) when the address changed and, besides,
    the account stopped being due it: cancelled for that reason, and no welcome is queued
    again (the resend's own mail, to the new address, is the only one to go)."""
    recorder, port = smtp
    set_settings(admin, temporary_password_days=1)
    user_id = employee(scim, OLD)["id"]
    clock = Clock()
    worker = mail_worker(app, port, tmp_path, clock)
    assert worker.send_credentials() == 1
    # Another worker claimed the welcome, then died: the mail is taken again at its lease's end.
    # A minute on: the mail is due from its queueing's real time, which a loaded machine may
    # put past the clock's start (the credentials pass hashes a password first).
    clock.advance(60)
    gone = mail_delivery.claim_mail(
        db.writer(app), "gone:1:dead", now=clock(), domain="acme.example", lease=timedelta(0)
    )
    assert gone is not None and gone.recipient == OLD
    why = change(app, scim, admin, user_id, clock)
    clock.advance(1)
    worker.send_mail()

    first, *rest = _mails(app, scim.org_id)
    assert (first.id, first.state, first.last_error) == (gone.id, "cancelled", why)
    (made,) = events(admin, resource_id=user_id, action="user.credentials.welcome")
    assert made["changes"]["recipient"] == {"after": OLD}  # the first welcome's, no other
    assert [reason for reason, _mail in _sends(app, scim.org_id, user_id)].count("welcome") == 1
    if change is _resend:
        (resent,) = rest
        assert (resent.kind, resent.recipient, resent.state) == ("resend", NEW, "sent")
        assert [str(m["To"]) for m in recorder.messages] == [NEW]
    else:
        assert rest == [] and recorder.messages == []


def test_a_new_welcome_whose_address_changes_again_is_itself_sent_again_once(
    app, scim, admin, smtp, tmp_path
):
    """erin@ → erin.new@ → erin.third@ while the worker works: each welcome is checked at its
    own send time, the same rule applies; one new welcome per cancelled one, the last to
    the address the account has, and nothing more once it went (no loop)."""
    third = "erin.third@example.com"
    recorder, port = smtp
    user_id = employee(scim, OLD)["id"]
    worker = mail_worker(app, port, tmp_path)
    assert worker.send_credentials() == 1
    _readdress(scim, user_id, NEW)
    assert worker.send_mail(limit=1) == 1  # erin@'s cancelled, one queued for erin.new@
    assert recorder.messages == []
    _readdress(scim, user_id, third)
    assert worker.send_mail() == 2  # erin.new@'s cancelled, then erin.third@'s sent
    assert worker.send_mail() == 0
    assert [str(m["To"]) for m in recorder.messages] == [third]
    mails = [(m.recipient, m.state) for m in _mails(app, scim.org_id)]
    assert mails == [(OLD, "cancelled"), (NEW, "cancelled"), (third, "sent")]
    welcomes = events(admin, resource_id=user_id, action="user.credentials.welcome")
    recipients = [e["changes"]["recipient"] for e in welcomes]
    assert recipients == [
        {"after": OLD},
        {"before": OLD, "after": NEW},
        {"before": NEW, "after": third},
    ]


@pytest.mark.parametrize(
    ("action", "kind"),
    [("credentials/send", "welcome"), ("password/reset", "password_reset")],
    ids=["admin-send", "admin-reset"],
)
def test_an_admins_credentials_cancelled_for_their_address_are_not_sent_again(
    app, scim, admin, smtp, tmp_path, action, kind
):
    """Only the automatic welcome of a SCIM create is sent again: an admin's send or reset
    was that admin's act, at that moment; cancelled (the outbox says why), and the admin
    decides whether to send again."""
    recorder, port = smtp
    user_id = employee(scim, OLD)["id"]
    # The create's automatic welcome withdrawn: the admin's mail is the account's only one.
    assert admin.delete(f"/api/v1/users/{user_id}/credentials/schedule").status_code == 204
    ok(admin.post(f"/api/v1/users/{user_id}/{action}", None), 202)
    _readdress(scim, user_id, NEW)
    mail_worker(app, port, tmp_path).run_once()
    assert recorder.messages == []
    (mail,) = _mails(app, scim.org_id)
    assert (mail.kind, mail.state, mail.last_error) == (kind, "cancelled", CHANGED)


def test_a_leaver_deactivated_while_the_welcome_is_sent_again_stays_deactivated(
    live, monkeypatch, smtp, tmp_path
):
    """PostgreSQL: the IdP deactivates the account while the worker cancels its welcome and
    makes a new one. The worker holds the account's row from its check to its commit, so
    the deactivation waits, then lands on top: the account stays DEACTIVATED and the new
    welcome is cancelled when its turn comes, never sent."""
    app, scim = live
    postgresql_only(app)
    recorder, port = smtp
    user_id = employee(scim, OLD)["id"]
    worker = mail_worker(app, port, tmp_path)
    assert worker.send_credentials() == 1
    _readdress(scim, user_id, NEW)
    idp = client_like(app, scim)

    def leaver() -> int:
        op = {"op": "replace", "value": {"active": False}}
        return int(idp.patch_ops(f"/scim/v2/Users/{user_id}", op).status_code)

    hold = Hold(monkeypatch, app, mail, "cancel", leaver, when=main_thread_only())
    assert worker.send_mail(limit=1) == 1
    hold.join()
    assert (hold.waited, hold.results) == ([True], [200])
    worker.send_mail()
    assert recorder.messages == []
    assert scim.get(f"/scim/v2/Users/{user_id}").get_json()["active"] is False
    states = [(m.recipient, m.state, m.last_error) for m in _mails(app, scim.org_id)]
    assert states == [
        (OLD, "cancelled", CHANGED),
        (NEW, "cancelled", "the account is DEACTIVATED"),
    ]
