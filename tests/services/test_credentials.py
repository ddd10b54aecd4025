"""Credential delivery: the welcome of a SCIM-created user, activation links, SSO-only silence."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import CredentialSchedule, CredentialSend, MailOutbox, User, UserPassword
from tests.support import SCIM_JSON, USER_SCHEMA
from tests.support.admin_api import events, ok
from tests.support.credentials import (
    employee,
    html_of,
    link_token,
    mail_worker,
    password_verifies,
    set_settings,
    temporary_password,
    text_of,
)


def _user(app, org_id: str, user_id: str) -> User:
    with db.reader(app)() as session:
        user = session.get(User, (org_id, user_id))
        assert user is not None
        session.expunge(user)
        return user


def test_scim_create_gets_the_welcome_mail_with_a_working_temporary_password(
    app, scim, admin, smtp, tmp_path
):
    """POST /Users → the worker's next pass → a welcome mail over SMTP: username, a password that verifies."""
    recorder, port = smtp
    created = employee(scim, "bob@example.com", displayName="Bob Jones")
    assert _user(app, scim.org_id, created["id"]).status == "PROVISIONED"
    schedule = ok(admin.get(f"/api/v1/users/{created['id']}"))["credentialsSchedule"]
    assert schedule["reason"] == "welcome" and schedule["state"] == "scheduled"

    assert mail_worker(app, port, tmp_path).run_once() == 2  # the credentials, then the mail
    (message,) = recorder.messages
    assert message["To"] == "bob@example.com" and "acme" in message["Subject"]
    body = text_of(message)
    assert "Username: bob@example.com" in body and "/sso/login" in body
    secret = temporary_password(message)
    assert secret in html_of(message)
    assert password_verifies(app, scim.org_id, created["id"], secret)
    user = _user(app, scim.org_id, created["id"])
    assert user.status == "AWAITING_NEW_PASSWORD"
    with db.reader(app)() as session:
        stored = session.get(UserPassword, (scim.org_id, created["id"]))
        assert stored.temporary and stored.must_change and stored.expires_at is not None
        outbox = session.scalars(select(MailOutbox).where(MailOutbox.org_id == scim.org_id)).one()
        assert outbox.state == "sent" and outbox.body_text is None and outbox.body_html is None
        assert session.scalar(select(CredentialSchedule)) is None
    assert ok(admin.get(f"/api/v1/users/{created['id']}"))["credentialsSchedule"] is None
    logged = events(admin, resource_id=created["id"])
    names = [e["action"] for e in logged]
    assert "user.credentials.welcome" in names and "user.require_new_password" in names
    assert all(secret not in str(e) for e in events(admin))


def test_the_secret_is_made_by_the_worker_not_in_the_scim_request(app, scim, session):
    """The create transaction writes a due send and no password: argon2id is the worker's cost."""
    created = employee(scim, "carol@example.com")
    assert session.get(UserPassword, (scim.org_id, created["id"])) is None
    assert session.scalar(select(MailOutbox)) is None
    row = session.get(CredentialSchedule, (scim.org_id, created["id"]))
    assert row.reason == "welcome" and row.recipient is None


def test_bulk_creates_get_their_welcome_too(app, scim, smtp, tmp_path):
    """Users created through /Bulk are welcomed like single creates."""
    recorder, port = smtp
    ops = [
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": f"u{i}",
            "data": {
                "schemas": [USER_SCHEMA],
                "userName": f"u{i}@example.com",
                "emails": [{"value": f"u{i}@example.com", "primary": True}],
            },
        }
        for i in range(2)
    ]
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}
    resp = scim.post("/scim/v2/Bulk", body)
    assert resp.status_code == 200, resp.get_json()
    mail_worker(app, port, tmp_path).run_once()
    assert sorted(m["To"] for m in recorder.messages) == ["u0@example.com", "u1@example.com"]


def test_no_address_no_mail_and_the_log_says_why(app, scim, admin, session):
    """A user with no e-mail at all is created; no send waits; the create's event explains."""
    created = scim.create_user("no-mail-user")
    assert session.get(CredentialSchedule, (scim.org_id, created["id"])) is None
    (create,) = [
        e for e in events(admin, resource_id=created["id"]) if e["action"] == "user.create"
    ]
    assert "no welcome mail" in create["explanation"]["credentials"]


def test_inactive_users_get_no_welcome(scim, session):
    """A user created with active=false receives nothing."""
    created = employee(scim, "gone@example.com", active=False)
    assert session.get(CredentialSchedule, (scim.org_id, created["id"])) is None


def test_sso_only_organizations_get_nothing(app, scim, admin, session):
    """sign_in_methods sso_only: no send queued, and an admin send is a clear 409."""
    set_settings(admin, sign_in_methods="sso_only")
    created = employee(scim, "dave@example.com")
    assert session.get(CredentialSchedule, (scim.org_id, created["id"])) is None
    resp = admin.post(f"/api/v1/users/{created['id']}/credentials/send", None)
    assert resp.status_code == 409
    assert "single sign-on" in resp.get_json()["detail"]
    assert session.scalar(select(CredentialSend)) is None


def test_activation_link_mode_mails_a_link_that_only_the_post_consumes(
    app, scim, admin, client, smtp, tmp_path
):
    """credentials_delivery=activation_link: GET shows a form (nothing used), POST sets the password once."""
    recorder, port = smtp
    set_settings(admin, credentials_delivery="activation_link")
    created = employee(scim, "erin@example.com")
    worker = mail_worker(app, port, tmp_path)
    worker.run_once()
    (message,) = recorder.messages
    assert "Temporary password" not in text_of(message)
    token = link_token(message, "activate")
    assert _user(app, scim.org_id, created["id"]).status == "AWAITING_NEW_PASSWORD"

    for _ in range(2):  # a mail scanner opening the link burns nothing
        page = client.get(f"/sso/activate/{token}")
        assert page.status_code == 200 and b"erin@example.com" in page.data
        assert b'method="post"' in page.data
    form = {"password": "Marble-otter-canyon-73", "confirm": "Marble-otter-canyon-73"}
    done = client.post(f"/sso/activate/{token}", data=form)
    assert done.status_code == 200 and b"/sso/login" in done.data
    assert password_verifies(app, scim.org_id, created["id"], "Marble-otter-canyon-73")
    assert _user(app, scim.org_id, created["id"]).status == "PROVISIONED"
    again = client.post(f"/sso/activate/{token}", data=form)
    assert again.status_code == 410 and b"Nothing was changed" in again.data
    worker.run_once()
    assert [m["Subject"] for m in recorder.messages][-1].startswith("Your acme password")


def test_welcome_without_forced_change_says_so(app, scim, admin, smtp, tmp_path):
    """must_change_on_first_login off: the mail does not promise a forced change; status stays."""
    recorder, port = smtp
    set_settings(admin, must_change_on_first_login=False)
    created = employee(scim, "fay@example.com")
    mail_worker(app, port, tmp_path).run_once()
    (message,) = recorder.messages
    assert "choose a new password" not in text_of(message)
    assert _user(app, scim.org_id, created["id"]).status == "PROVISIONED"


def _without_welcome(app, scim, user_name: str) -> str:
    """A SCIM user whose automatic welcome is dropped: the test sends what it wants."""
    user_id = employee(scim, user_name)["id"]
    with db.writer(app)() as session, session.begin():
        session.execute(
            CredentialSchedule.__table__.delete().where(CredentialSchedule.org_id == scim.org_id)
        )
    return user_id


def test_resend_without_forced_change_does_not_promise_one(app, scim, admin, smtp, tmp_path):
    """must_change_on_first_login off: the resend, as the welcome, says nothing of a forced
    change (nobody will ask for one); on, it says so."""
    recorder, port = smtp
    set_settings(admin, must_change_on_first_login=False)
    user_id = _without_welcome(app, scim, "hal@example.com")
    ok(admin.post(f"/api/v1/users/{user_id}/credentials/resend", None), 202)
    mail_worker(app, port, tmp_path).run_once()
    (message,) = recorder.messages
    assert temporary_password(message) in html_of(message)
    assert ok(admin.get(f"/api/v1/users/{user_id}"))["status"] != "AWAITING_NEW_PASSWORD"
    assert "choose a new password" not in text_of(message)
    assert "choose a new password" not in html_of(message)
    set_settings(admin, must_change_on_first_login=True)
    ok(admin.post(f"/api/v1/users/{user_id}/credentials/resend", None), 202)
    mail_worker(app, port, tmp_path).run_once()
    assert "choose a new password" in text_of(recorder.messages[-1])
    assert "choose a new password" in html_of(recorder.messages[-1])


def test_a_superseded_credentials_mail_is_not_sent_after_the_resend(
    app, scim, admin, smtp, tmp_path
):
    """The first welcome fails (a 550 once); the admin resends, which kills its password: the
    first mail is cancelled then and there, not retried, and only working credentials arrive."""
    from datetime import timedelta

    from tests.support import Clock

    recorder, port = smtp
    user_id = _without_welcome(app, scim, "ivy@example.com")
    clock = Clock()
    worker = mail_worker(app, port, tmp_path, clock)
    first = ok(admin.post(f"/api/v1/users/{user_id}/credentials/send", None), 202)["mail"]["id"]
    recorder.refuse = True
    worker.run_once()
    assert recorder.messages == [] and recorder.refused == 1
    recorder.refuse = False
    ok(admin.post(f"/api/v1/users/{user_id}/credentials/resend", None), 202)
    with db.reader(app)() as session:
        cancelled = session.get(MailOutbox, (scim.org_id, first))
        assert cancelled.state == "cancelled" and cancelled.body_text is None
        assert cancelled.last_error == "replaced by newer credentials (resend)"
    cancel = [e for e in events(admin, resource_id=first) if e["action"] == "mail.cancelled"]
    assert len(cancel) == 1 and cancel[0]["actor_type"] != "system"
    clock.advance(timedelta(minutes=5).total_seconds())
    worker.run_once()
    received = [temporary_password(m) for m in recorder.messages]
    assert len(received) == 1
    assert password_verifies(app, scim.org_id, user_id, received[0])


def test_a_scim_create_rolled_back_leaves_no_send(app, scim, session):
    """A refused create (userName taken) queues nothing."""
    employee(scim, "gil@example.com")
    resp = scim.post(
        "/scim/v2/Users",
        {
            "schemas": [USER_SCHEMA],
            "userName": "gil@example.com",
            "emails": [{"value": "x@example.com"}],
        },
        headers={"Content-Type": SCIM_JSON},
    )
    assert resp.status_code == 409
    assert len(session.scalars(select(CredentialSchedule)).all()) == 1


@pytest.mark.parametrize(
    ("settings", "demand"),
    [
        ({"must_change_on_first_login": False}, False),
        ({"must_change_on_first_login": True}, True),
        ({"credentials_delivery": "activation_link"}, True),
    ],
    ids=["temporary-settles", "temporary-while-awaiting", "activation-link-while-awaiting"],
)
def test_new_credentials_end_a_reset_link_asked_for_before(
    app, scim, admin, client, session, settings, demand
):
    """'The previous credentials stop working': a reset link asked for before an admin sends
    new credentials is refused after (410), whichever status the account was in (RECOVERY,
    or AWAITING_NEW_PASSWORD under an admin's demand) and however the credentials go out."""
    set_settings(admin, **settings)
    user_id = employee(scim, "bob@example.com", password="Original-pass-phrase-31")["id"]
    if demand:
        resp = admin.post(f"/api/v1/users/{user_id}/actions/require_new_password", {})
        assert resp.status_code == 200, resp.get_json()
    assert client.post("/sso/forgot", data={"identifier": "bob@example.com"}).status_code == 200
    (body,) = session.scalars(
        select(MailOutbox.body_text).where(MailOutbox.kind == "reset_link")
    ).all()
    token = body.split("/sso/reset/")[1].split()[0]
    resp = admin.post(f"/api/v1/users/{user_id}/credentials/send", None)
    assert resp.status_code == 202, resp.get_json()
    assert _user(app, scim.org_id, user_id).status != "RECOVERY"
    new = "Quartz-meadow-lantern-97"
    used = client.post(f"/sso/reset/{token}", data={"password": new, "confirm": new})
    assert used.status_code == 410
    assert not password_verifies(app, scim.org_id, user_id, new)
