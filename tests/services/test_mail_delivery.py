"""The worker's side of the outbox: what counts as sent, and mail no longer wanted at send time."""

from __future__ import annotations

from datetime import timedelta
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


def _cancelled(app, org_id: str, kind: str) -> MailOutbox:
    (mail,) = [m for m in _mails(app, org_id) if m.kind == kind]
    assert (mail.state, mail.body_text, mail.body_html) == ("cancelled", None, None)
    return mail


# A welcome cancelled because the IdP corrected its address, then sent to the new one:
# tests/services/test_mail_delivery_welcome_address.py.


def test_credentials_an_admin_sent_to_themselves_go_whatever_the_accounts_address(
    app, scim, admin, smtp, tmp_path
):
    """ "To me": the admin chose where the credentials go; the account's address changing
    meanwhile does not cancel them (only mail queued for the account's own address is held
    to it)."""
    recorder, port = smtp
    user_id = _person(app, scim, "gus@example.com")
    body = {"to": "me", "me": "helpdesk@example.com"}
    ok(admin.post(f"/api/v1/users/{user_id}/credentials/send", body), 202)
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}",
        {
            "op": "replace",
            "path": "emails",
            "value": [{"type": "work", "value": "gus.new@example.com", "primary": True}],
        },
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    mail_worker(app, port, tmp_path).run_once()
    assert [str(m["To"]) for m in recorder.messages] == ["helpdesk@example.com"]
    (mail,) = [m for m in _mails(app, scim.org_id) if m.kind == "welcome"]
    assert (mail.state, mail.for_admin) == ("sent", True)


def test_reset_link_is_not_mailed_after_it_expired(app, scim, admin, smtp, tmp_path):
    """A forgot-password link (60 minutes) queued, the worker down for 3 hours: the mail
    would carry a dead link; it is cancelled ("the link expired"), not sent."""
    recorder, port = smtp
    _person(app, scim, "frank@example.com")
    resp = scim.client.post("/sso/forgot", data={"identifier": "frank@example.com"})
    assert resp.status_code in (200, 302, 303), resp.status_code
    clock = Clock()
    clock.advance(3 * 3600)
    mail_worker(app, port, tmp_path, clock).run_once()
    assert recorder.messages == []
    mail = _cancelled(app, scim.org_id, "reset_link")
    assert mail.last_error == "the link expired"
    (event,) = [e for e in events(admin, resource_id=mail.id) if e["action"] == "mail.cancelled"]
    assert "the link expired" in event["detail"]


def test_a_reset_link_withdrawn_since_is_not_mailed(app, scim, smtp, tmp_path):
    """A reset link ended before its mail went (used, or withdrawn by a change that ends
    the account's links without new credentials of its own): the mail is cancelled ("the
    link was used or withdrawn"), not sent with a link that opens nothing."""
    from scim_server.models import User
    from scim_server.services.passwords import expire_links

    recorder, port = smtp
    user_id = _person(app, scim, "hana@example.com")
    resp = scim.client.post("/sso/forgot", data={"identifier": "hana@example.com"})
    assert resp.status_code in (200, 302, 303), resp.status_code
    with db.writer(app)() as session, session.begin():
        assert expire_links(session, session.get(User, (scim.org_id, user_id)), "reset") == 1
    mail_worker(app, port, tmp_path).send_mail()
    assert recorder.messages == []
    mail = _cancelled(app, scim.org_id, "reset_link")
    assert mail.last_error == "the link was used or withdrawn"


def test_a_temporary_password_is_not_mailed_after_it_expired(app, scim, admin, smtp, tmp_path):
    """The welcome's temporary password lasts ``temporary_password_days``; a mail still
    waiting past that (a relay down for days, then an admin's retry) would hold a password
    that no longer signs in: cancelled ("the temporary password expired")."""
    from datetime import timedelta

    recorder, port = smtp
    set_settings(admin, temporary_password_days=1)
    employee(scim, "ida@example.com")
    clock = Clock()
    worker = mail_worker(app, port, tmp_path, clock)
    assert worker.send_credentials() == 1
    clock.advance(timedelta(days=1, minutes=1).total_seconds())
    worker.send_mail()
    assert recorder.messages == []
    assert _cancelled(app, scim.org_id, "welcome").last_error == "the temporary password expired"


def test_one_orgs_mail_backlog_does_not_starve_another_orgs_reset(
    app, scim, other_scim, client, tmp_path
):
    """Organization A has a backlog (an initial sync's welcomes after a relay outage);
    B's password reset, queued after it, goes in the same round: organizations take turns
    (one mail each, the one waiting longest first), not first in first out."""
    from pathlib import Path

    from scim_server.mailer import Mailer
    from scim_server.services.mail import queue_mail
    from scim_server.services.passwords import Hashing
    from scim_server.services.tokens import create_token
    from scim_server.worker import Worker
    from tests.support import Scim

    with db.writer(app)() as s, s.begin():
        for i in range(3 * Worker.ROUND):
            queue_mail(
                s,
                scim.org_id,
                "password_changed",
                f"u{i}@acme.example",
                {"login_url": "https://id.example.com/sso/login", "username": f"u{i}"},
            )
    with db.reader(app)() as s:
        _token, secret = create_token(s, other_scim.org_id, "b-admin", kind="admin")
    admin_b = Scim(client, secret, other_scim.org_id)
    user_b = _person(app, other_scim, "bea@globex.example")
    ok(admin_b.post(f"/api/v1/users/{user_b}/password/reset", None), 202)
    clock = Clock()
    clock.advance(5)
    worker = Worker(
        db.writer(app),
        clock=clock,
        mailer=Mailer(sender="it@acme.example", smtp=None, mail_dir=Path(tmp_path)),
        hashing=Hashing.from_config(app.config),
    )
    assert worker.send_mail(limit=2) == 2  # one of A's (waiting longest), then B's
    (mail,) = [m for m in _mails(app, other_scim.org_id) if m.kind == "password_reset"]
    assert mail.state == "sent"
    sent_a = [m for m in _mails(app, scim.org_id) if m.state == "sent"]
    assert len(sent_a) == 1
    assert worker.send_mail() == 3 * Worker.ROUND - 1  # the rest of A's, in order
    assert {m.state for m in _mails(app, scim.org_id)} == {"sent"}


class DropsInData(SmtpRecorder):
    """Closes the connection in DATA while ``drop`` (a relay restarting mid-mail)."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = True

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.drop:
            server.transport.close()
            return "421 closing"
        return await super().handle_DATA(server, session, envelope)


def test_a_connection_closed_mid_data_is_failed_then_retried(app, scim, tmp_path):
    """The relay drops the connection in DATA: the mail is failed (its body kept), the
    relay left alone for 10 s, then the mail goes once."""
    from aiosmtpd.controller import Controller

    handler = DropsInData()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        (mail_id,) = _queue_notices(app, scim.org_id, 1)
        clock = Clock()
        worker = mail_worker(app, controller.port, tmp_path, clock)
        assert worker.send_mail() == 1
        (mail,) = _mails(app, scim.org_id)
        assert mail.state == "failed" and mail.body_text is not None
        handler.drop = False
        clock.advance(11)
        assert worker.send_mail() == 1
    finally:
        controller.stop()
    (mail,) = _mails(app, scim.org_id)
    assert (mail.id, mail.state, len(handler.messages)) == (mail_id, "sent", 1)


def test_a_reset_link_for_an_account_locked_after_queueing_is_cancelled(
    app, scim, admin, smtp, tmp_path
):
    """An admin's reset link queued, then the account locked: the link is never mailed."""
    recorder, port = smtp
    set_settings(admin, credentials_delivery="activation_link")
    user_id = _person(app, scim, "jo@example.com")
    ok(admin.post(f"/api/v1/users/{user_id}/password/reset", None), 202)
    resp = admin.post(f"/api/v1/users/{user_id}/actions/lock", {})
    assert resp.status_code in (200, 204), resp.get_data(as_text=True)
    mail_worker(app, port, tmp_path).send_mail()
    assert [m["Subject"] for m in recorder.messages if "Reset" in m["Subject"]] == []
    assert "LOCKED" in (_cancelled(app, scim.org_id, "reset_link").last_error or "")


def _relay_that_never_answers():
    """A listening socket whose connections complete in the backlog and hear nothing."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener, listener.getsockname()[1]


def _queue_notices(app, org_id: str, count: int) -> list[str]:
    from scim_server.services.mail import queue_mail

    with db.writer(app)() as s, s.begin():
        return [
            queue_mail(
                s,
                org_id,
                "password_changed",
                f"u{i}@acme.example",
                {"login_url": "https://id.example.com/sso/login", "username": f"u{i}"},
            ).id
            for i in range(count)
        ]


def test_a_blackholed_relay_does_not_stall_the_worker_for_a_whole_round(app, scim, tmp_path):
    """The relay accepts TCP and never answers (a firewall drop, a hung relay). One mail
    waits out the deadline, then the round's mail ends: the others are not tried (nor
    spend attempts), and the next rounds leave the relay alone until its retry time."""
    from scim_server.config import SmtpSettings
    from scim_server.mailer import Mailer
    from scim_server.services.passwords import Hashing
    from scim_server.worker import Worker

    listener, port = _relay_that_never_answers()
    clock = Clock()
    try:
        _queue_notices(app, scim.org_id, 8)
        smtp = SmtpSettings(host="127.0.0.1", port=port, security="plain")
        worker = Worker(
            db.writer(app),
            clock=clock,
            mailer=Mailer(sender="it@acme.example", smtp=smtp, mail_dir=tmp_path, timeout=0.3),
            hashing=Hashing.from_config(app.config),
        )
        assert worker.send_mail(limit=Worker.ROUND) == 1
        clock.advance(9)
        assert worker.send_mail(limit=Worker.ROUND) == 0  # the relay is left alone
        clock.advance(1)
        assert worker.send_mail(limit=Worker.ROUND) == 1  # tried again, one mail
    finally:
        listener.close()
    tried = [m for m in _mails(app, scim.org_id) if m.attempts > 0]
    assert len(tried) == 2 and {(m.state, m.attempts) for m in tried} == {("failed", 1)}
    assert all("no complete answer" in (m.last_error or "") for m in tried)
    assert {m.state for m in _mails(app, scim.org_id) if m.attempts == 0} == {"queued"}


def test_a_relay_down_for_five_minutes_does_not_abandon_the_queue(app, scim, smtp, tmp_path):
    """The relay restarts (connection refused for five minutes, a look every 10 s):
    transient failures keep the mail queued for retry (RFC 5321 §4.5.4.1 gives up after
    days), and it goes once the relay is back, without an admin's retry."""
    recorder, port = smtp
    (mail_id,) = _queue_notices(app, scim.org_id, 1)
    clock = Clock()
    down = mail_worker(app, free_port(), tmp_path, clock)  # nothing listens: refused
    for _ in range(30):
        down.send_mail()
        clock.advance(10)
    (row,) = [m for m in _mails(app, scim.org_id) if m.id == mail_id]
    assert row.state == "failed" and "ConnectionRefusedError" in (row.last_error or "")
    assert 1 < row.attempts < 10
    clock.advance(600)  # the longest wait between two attempts
    assert mail_worker(app, port, tmp_path, clock).send_mail() == 1
    (row,) = [m for m in _mails(app, scim.org_id) if m.id == mail_id]
    assert row.state == "sent" and len(recorder.messages) == 1


def test_a_relay_down_for_a_day_abandons_the_mail(app, scim, admin, tmp_path):
    """Still failing a day after its first attempt, a mail is abandoned (an admin may
    retry it), each attempt audited; the waits between attempts never pass 10 minutes."""
    (mail_id,) = _queue_notices(app, scim.org_id, 1)
    clock = Clock()
    worker = mail_worker(app, free_port(), tmp_path, clock)
    waits = []
    while True:
        worker.send_mail()
        (row,) = [m for m in _mails(app, scim.org_id) if m.id == mail_id]
        if row.state == "abandoned":
            break
        waits.append((row.next_attempt_at - clock()).total_seconds())
        clock.now = row.next_attempt_at
    assert waits[:7] == [10, 20, 40, 80, 160, 320, 600] and max(waits) == 600
    assert row.first_attempt_at is not None
    assert clock() - row.first_attempt_at >= timedelta(days=1)
    actions = [e["action"] for e in events(admin, resource_id=mail_id)]
    assert actions.count("mail.failed") == row.attempts and actions[-1] == "mail.abandoned"


def test_the_newer_credentials_check_searches_by_account() -> None:
    """The check before each credentials mail finds the account's newer ones by an index
    that names the account: with only (org_id, created_at) it read every later mail of the
    organization, each of a 20,000-person welcome reading the ones queued after it."""
    from datetime import UTC, datetime

    from sqlalchemy import create_engine, event
    from sqlalchemy.orm import Session

    from scim_server.db import Base
    from scim_server.models import User, UserPassword
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
        later = datetime.now(UTC) + timedelta(days=1)
        s.add(UserPassword(org_id="o", user_id="u", hash="x", temporary=True, expires_at=later))
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


def test_the_turns_read_each_organizations_waiting_mail_by_index() -> None:
    """Taking organizations in turn stays cheap with one organization's hundred thousand
    mails waiting: the organizations are found by seeks on the partial index of waiting
    mail (a loose index scan), each one's oldest by another, its claim by a third; no
    statement reads the waiting mail whole or sorts it (SQLite plans of an empty schema:
    no statistics; PostgreSQL took the same index in a check with 300,000 rows)."""
    from datetime import UTC, datetime

    from sqlalchemy import create_engine, event
    from sqlalchemy.orm import sessionmaker

    from scim_server.db import Base
    from scim_server.services import mail_delivery

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM mail_outbox" in statement and statement.lstrip().startswith(("SELECT", "WITH")):
            seen.append((statement, params))

    factory = sessionmaker(engine)
    now = datetime.now(UTC)
    event.listen(engine, "before_cursor_execute", capture)
    assert mail_delivery.due_orgs(factory, now) == []
    assert mail_delivery.claim_mail(factory, "w", now=now, domain="x", org_id="o") is None
    event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        plans = [
            [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
            for sql, params in seen
        ]
    engine.dispose()
    assert len(plans) == 2, seen
    for plan in plans:
        reads = [step for step in plan if "mail_outbox" in step]
        assert reads and all(
            "ix_mail_outbox_waiting_org_id_next_attempt_at" in step for step in reads
        ), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan
    orgs, claim = plans
    assert any("(org_id>?)" in step for step in orgs), orgs
    assert any("(org_id=? AND next_attempt_at<?)" in step for step in claim), claim
