"""The worker's side of the outbox: what counts as sent, and mail no longer wanted at send time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from scim_server.db import db
from scim_server.models import CredentialSchedule, MailOutbox
from tests.support import Clock, SmtpRecorder, free_port
from tests.support.admin_api import events, ok
from tests.support.credentials import employee, mail_worker, set_settings


def _drop_welcome(app, org_id: str) -> None:
    with db.writer(app)() as session, session.begin():
        session.execute(
            CredentialSchedule.__table__.delete().where(CredentialSchedule.org_id == org_id)
        )


def _person(app, scim, name: str = "bob@example.com") -> str:
    """A SCIM user whose automatic welcome is dropped: the test sends what it wants."""
    user_id = employee(scim, name)["id"]
    _drop_welcome(app, scim.org_id)
    return user_id


def _mails(app, org_id: str) -> list[MailOutbox]:
    with db.reader(app)() as session:
        return list(session.scalars(select(MailOutbox).where(MailOutbox.org_id == org_id)))


class QuitRefuser(SmtpRecorder):
    """Accepts every message (250 to DATA), then answers QUIT with a 421 (a busy relay)."""

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return "421 4.3.2 Service shutting down"


class EnvelopeRecorder(SmtpRecorder):
    """Keeps the envelope's recipients (RCPT TO) too."""

    def __init__(self) -> None:
        super().__init__()
        self.rcpts: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.rcpts.extend(envelope.rcpt_tos)
        return await super().handle_DATA(server, session, envelope)


def test_a_mail_accepted_by_the_relay_is_not_sent_again_when_quit_fails(app, scim, admin, tmp_path):
    """250 after DATA means delivered: an odd answer to QUIT leaves the mail ``sent``, sent once."""
    from aiosmtpd.controller import Controller

    recorder = QuitRefuser()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        user_id = _person(app, scim)
        ok(admin.post(f"/api/v1/users/{user_id}/credentials/send", None), 202)
        clock = Clock()
        worker = mail_worker(app, controller.port, tmp_path, clock)
        worker.run_once()
        assert len(recorder.messages) == 1  # the relay has the mail
        clock.advance(3600)
        worker.run_once()
        clock.advance(3600)
        worker.run_once()
    finally:
        controller.stop()
    (mail,) = [m for m in _mails(app, scim.org_id) if m.kind == "welcome"]
    assert (mail.state, mail.last_error, len(recorder.messages)) == ("sent", None, 1)


def test_credentials_queued_then_user_deactivated_by_idp_are_not_mailed(
    app, scim, admin, smtp, tmp_path
):
    """Credentials queued, then the IdP deactivates the leaver: the mail is cancelled, not sent."""
    recorder, port = smtp
    user_id = _person(app, scim)
    sent = ok(admin.post(f"/api/v1/users/{user_id}/credentials/send", None), 202)
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}", {"op": "replace", "value": {"active": False}}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    mail_worker(app, port, tmp_path).run_once()
    assert recorder.messages == []
    (mail,) = [m for m in _mails(app, scim.org_id) if m.kind == "welcome"]
    assert mail.id == sent["mail"]["id"]
    assert mail.state == "cancelled" and mail.body_text is None and mail.body_html is None
    assert "DEACTIVATED" in (mail.last_error or "")
    (event,) = [e for e in events(admin, resource_id=mail.id) if e["action"] == "mail.cancelled"]
    assert "DEACTIVATED" in event["detail"]
    listed = ok(admin.get("/api/v1/mail", query_string={"state": "cancelled"}))["mail"]
    assert [m["id"] for m in listed] == [mail.id]


def test_reset_link_queued_then_user_deleted_by_idp_is_not_mailed(app, scim, admin, smtp, tmp_path):
    """An admin's reset link, then the IdP deletes the leaver: the link is never mailed."""
    recorder, port = smtp
    set_settings(admin, credentials_delivery="activation_link")
    user_id = _person(app, scim)
    ok(admin.post(f"/api/v1/users/{user_id}/password/reset", None), 202)
    assert scim.delete(f"/scim/v2/Users/{user_id}").status_code == 204
    mail_worker(app, port, tmp_path).run_once()
    assert recorder.messages == []
    (mail,) = [m for m in _mails(app, scim.org_id) if m.kind == "reset_link"]
    assert mail.state == "cancelled" and "no longer exists" in (mail.last_error or "")


def test_a_notice_still_goes_to_a_deactivated_account(app, scim, admin, smtp, tmp_path):
    """A notice (here the admin's MFA reset) holds no secret: it is sent whatever the status."""
    recorder, port = smtp
    user_id = _person(app, scim)
    ok(admin.post(f"/api/v1/users/{user_id}/mfa/reset", {}))
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}", {"op": "replace", "value": {"active": False}}
    )
    assert resp.status_code == 200
    mail_worker(app, port, tmp_path).run_once()
    assert [m["To"] for m in recorder.messages] == ["bob@example.com"]
    (mail,) = [m for m in _mails(app, scim.org_id) if m.kind == "mfa_reset"]
    assert mail.state == "sent"


def test_a_failed_credentials_mail_superseded_while_it_was_sending_is_not_retried(
    app, scim, admin, smtp, tmp_path
):
    """A resend made while the first mail was in flight (it then failed): the retry is cancelled."""
    from datetime import timedelta

    from tests.support.credentials import password_verifies, temporary_password

    recorder, port = smtp
    user_id = _person(app, scim)
    clock = Clock()
    worker = mail_worker(app, port, tmp_path, clock)
    first = ok(admin.post(f"/api/v1/users/{user_id}/credentials/send", None), 202)["mail"]["id"]
    recorder.refuse = True
    worker.run_once()
    recorder.refuse = False
    # The resend happened while the worker held the first mail: it stayed for its retry.
    with db.writer(app)() as session, session.begin():
        session.get(MailOutbox, (scim.org_id, first)).state = "sending"
    ok(admin.post(f"/api/v1/users/{user_id}/credentials/resend", None), 202)
    with db.writer(app)() as session, session.begin():
        session.get(MailOutbox, (scim.org_id, first)).state = "failed"
    clock.advance(timedelta(minutes=5).total_seconds())
    worker.run_once()
    (message,) = recorder.messages
    assert password_verifies(app, scim.org_id, user_id, temporary_password(message))
    states = {m.id: (m.kind, m.state) for m in _mails(app, scim.org_id)}
    assert states[first] == ("welcome", "cancelled")


def test_an_idn_domain_is_delivered_through_a_relay_without_smtputf8(app, scim, admin, tmp_path):
    """bob@bücher.example (ASCII local part) goes as bob@xn--bcher-kva.example (RFC 5890):
    any relay takes it, SMTPUTF8 or not (Amazon SES does not offer it)."""
    from aiosmtpd.controller import Controller

    recorder = EnvelopeRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=False)
    controller.start()
    try:
        user_id = _person(app, scim, "bob@bücher.example")
        body = ok(admin.post(f"/api/v1/users/{user_id}/credentials/send", None), 202)
        assert body["mail"]["recipient"] == "bob@bücher.example"
        mail_worker(app, controller.port, tmp_path).run_once()
    finally:
        controller.stop()
    (mail,) = [m for m in _mails(app, scim.org_id) if m.kind == "welcome"]
    assert (mail.state, mail.last_error) == ("sent", None)
    assert recorder.rcpts == ["bob@xn--bcher-kva.example"]
    assert [m["To"] for m in recorder.messages] == ["bob@xn--bcher-kva.example"]


def test_the_newer_credentials_check_searches_by_account() -> None:
    """The check before each credentials mail finds the account's newer ones by an index
    that names the account: with only (org_id, created_at) it read every later mail of the
    organization, each of a 20,000-person welcome reading the ones queued after it."""
    from datetime import UTC, datetime

    from sqlalchemy import create_engine, event
    from sqlalchemy.orm import Session

    from scim_server.db import Base
    from scim_server.models import User
    from scim_server.services.mail_delivery import why_unwanted

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    seen: list[tuple[str, Any]] = []
    with Session(engine) as s:
        s.add(
            User(
                org_id="o", id="u", user_name="u", user_name_key="u", status="PROVISIONED", data={}
            )
        )
        s.flush()
        mail = MailOutbox(org_id="o", user_id="u", kind="welcome", created_at=datetime.now(UTC))

        def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if "FROM mail_outbox" in statement:
                seen.append((statement, params))

        event.listen(engine, "before_cursor_execute", capture)
        assert why_unwanted(s, mail) is None
        event.remove(engine, "before_cursor_execute", capture)
        [(sql, params)] = seen
        plan = [
            row[-1] for row in s.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        ]
    engine.dispose()
    assert any("ix_mail_outbox_org_id_user_id_created_at" in step for step in plan), plan
