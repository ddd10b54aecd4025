"""What SCIM writes mean for credentials: the IdP's password ends the welcome still to go."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import CredentialSchedule, MailOutbox
from tests.support.admin_api import events
from tests.support.credentials import (
    employee,
    mail_worker,
    password_verifies,
    set_settings,
)

PASSWORD = "Correct-Horse-Battery-9"
MODES = ("temporary_password", "activation_link")


def _set_password(scim, user_id: str) -> None:
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}", {"op": "replace", "path": "password", "value": PASSWORD}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)


def _schedules(app, org_id: str) -> list[CredentialSchedule]:
    with db.reader(app)() as session:
        stmt = select(CredentialSchedule).where(CredentialSchedule.org_id == org_id)
        return list(session.scalars(stmt))


def _credential_mails(app, org_id: str) -> list[MailOutbox]:
    with db.reader(app)() as session:
        stmt = select(MailOutbox).where(
            MailOutbox.org_id == org_id, MailOutbox.kind.in_(("welcome", "activation_link"))
        )
        return list(session.scalars(stmt))


@pytest.mark.parametrize("mode", MODES)
def test_idp_password_set_before_the_welcome_went_is_not_overwritten(
    app, scim, admin, smtp, tmp_path, mode
):
    """The IdP creates a user with no password, then pushes its password (Okta password
    sync, right after the create) before the worker's pass: the waiting welcome is dropped
    (``user.credentials.schedule.cancel``), so no temporary password replaces the IdP's
    and no activation link removes it."""
    recorder, port = smtp
    set_settings(admin, credentials_delivery=mode)
    user_id = employee(scim, "carol@example.com")["id"]
    assert [row.reason for row in _schedules(app, scim.org_id)] == ["welcome"]
    _set_password(scim, user_id)
    assert _schedules(app, scim.org_id) == []
    (dropped,) = events(admin, action="user.credentials.schedule.cancel", resource_id=user_id)
    assert "identity provider set the password" in dropped["detail"]
    mail_worker(app, port, tmp_path).run_once()
    assert password_verifies(app, scim.org_id, user_id, PASSWORD)
    assert recorder.messages == [] and _credential_mails(app, scim.org_id) == []


@pytest.mark.parametrize("mode", MODES)
def test_idp_password_set_after_the_welcome_was_queued_cancels_it(
    app, scim, admin, smtp, tmp_path, mode
):
    """The welcome is already a mail waiting for the relay when the IdP sets the password:
    its temporary password or link no longer works, so the mail is cancelled (reason and
    ``mail.cancelled`` event), as newer credentials cancel older ones."""
    recorder, port = smtp
    set_settings(admin, credentials_delivery=mode)
    user_id = employee(scim, "dave@example.com")["id"]
    worker = mail_worker(app, port, tmp_path)
    assert worker.send_credentials() == 1  # the welcome mail is queued, not yet sent
    (queued,) = _credential_mails(app, scim.org_id)
    assert queued.state == "queued"
    _set_password(scim, user_id)
    (mail,) = _credential_mails(app, scim.org_id)
    assert (mail.state, mail.body_text) == ("cancelled", None)
    assert "identity provider set the password" in (mail.last_error or "")
    (event,) = events(admin, action="mail.cancelled", resource_id=mail.id)
    assert "identity provider set the password" in event["detail"]
    worker.send_mail()
    assert recorder.messages == []
    assert password_verifies(app, scim.org_id, user_id, PASSWORD)


def test_an_admins_scheduled_send_stays_when_the_idp_sets_the_password(app, scim, admin):
    """Only the create's welcome goes with the IdP's password: a send an admin scheduled
    for a date (a decision about this account) is left as it is."""
    from datetime import UTC, datetime, timedelta

    from tests.support.admin_api import ok

    user_id = employee(scim, "erin@example.com")["id"]
    send_at = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    ok(admin.put(f"/api/v1/users/{user_id}/credentials/schedule", {"send_at": send_at}))
    _set_password(scim, user_id)
    assert [row.reason for row in _schedules(app, scim.org_id)] == ["scheduled"]
    assert events(admin, action="user.credentials.schedule.cancel", resource_id=user_id) == []


def test_an_abandoned_welcome_is_cancelled_too_when_the_idp_sets_the_password(
    app, scim, admin, smtp, tmp_path
):
    """The welcome was refused for good (a 550) and waits for an admin's retry; once the IdP
    set the password it holds dead credentials: cancelled, so no retry sends it."""
    recorder, port = smtp
    user_id = employee(scim, "hal@example.com")["id"]
    worker = mail_worker(app, port, tmp_path)
    assert worker.send_credentials() == 1
    recorder.refuse = True
    worker.send_mail()
    (mail,) = _credential_mails(app, scim.org_id)
    assert mail.state == "abandoned"
    _set_password(scim, user_id)
    (mail,) = _credential_mails(app, scim.org_id)
    assert mail.state == "cancelled" and "identity provider" in (mail.last_error or "")
    resp = admin.post(f"/api/v1/mail/{mail.id}/retry", None)
    assert resp.status_code == 409
