"""The mail outbox: queued in the caller's transaction, delivered by the worker over real SMTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from scim_server.config import SmtpSettings, parse_smtp_url
from scim_server.db import db
from scim_server.errors import InvalidValueError
from scim_server.mailer import Mailer
from scim_server.models import AuditEvent, MailOutbox
from scim_server.services import mail_delivery
from scim_server.services.mail import KINDS, login_url, queue_mail
from scim_server.worker import Worker
from tests.support import Clock, SmtpRecorder, free_port, smtp_server

SECRET = "Tmp-7f3Kq9-secret"
CONTEXT = {
    "login_url": login_url("https://id.example.com/"),
    "username": "bob@example.com",
    "name": "Bob",
    "temporary_password": SECRET,
    "expires": "in 7 days",
    "link": "https://id.example.com/sso/activate/abc?x=1&y=2",
    "until": "in 15 minutes",
    "webhook_url": "https://hooks.example.com/in",
    "reason": "every delivery failed for 3 days",
    "change": "added",
    "factor": "totp",
    "label": "Authenticator app",
    "when": "on 5 December 2026 at 09:00 UTC",
}


def _mailer(port: int, tmp_path: Path) -> Mailer:
    smtp = SmtpSettings(host="127.0.0.1", port=port, security="plain")
    return Mailer(sender="Acme IT <it@acme.example>", smtp=smtp, mail_dir=tmp_path, timeout=5)


def _queue(app, org_id: str, kind: str = "welcome", **kw) -> str:
    with db.writer(app)() as session, session.begin():
        return queue_mail(session, org_id, kind, "bob@example.com", CONTEXT, **kw).id


def _mail(app, org_id: str, mail_id: str) -> MailOutbox:
    with db.reader(app)() as session:
        mail = session.get(MailOutbox, (org_id, mail_id))
        assert mail is not None
        return mail


def _events(app, org_id: str) -> list[AuditEvent]:
    with db.reader(app)() as session:
        stmt = select(AuditEvent).where(
            AuditEvent.org_id == org_id, AuditEvent.action.like("mail.%")
        )
        return list(session.scalars(stmt.order_by(AuditEvent.seq)))


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_a_queued_mail_is_delivered_with_text_and_html(app, scim, smtp, tmp_path):
    """The worker sends it over SMTP: both parts, org name, login URL; the body is then cleared."""
    recorder, port = smtp
    mail_id = _queue(app, scim.org_id)
    clock = Clock()
    assert recorder.messages == []  # nothing is sent at queue time
    assert Worker(db.writer(app), clock=clock, mailer=_mailer(port, tmp_path)).run_once() == 1
    (message,) = recorder.messages
    text, html = _parts(message)
    assert message["To"] == "bob@example.com" and message["From"] == "Acme IT <it@acme.example>"
    assert message["Subject"] == "Your acme account"
    assert message["Date"] and message["Message-ID"].endswith("@acme.example>")
    for part in (text, html):
        assert "acme" in part and "https://id.example.com/sso/login" in part and SECRET in part
    assert "Username: bob@example.com" in text and "<strong>bob@example.com</strong>" in html
    mail = _mail(app, scim.org_id, mail_id)
    assert (mail.state, mail.attempts, mail.message_id) == ("sent", 1, message["Message-ID"])
    assert mail.sent_at == clock.now and mail.body_text is None and mail.body_html is None
    events = _events(app, scim.org_id)
    assert [(e.action, e.outcome, e.resource_id) for e in events] == [
        ("mail.queued", "success", mail_id),
        ("mail.sent", "success", mail_id),
    ]
    assert all(SECRET not in str((e.detail, e.changes)) for e in events)
    assert events[0].changes == {
        "kind": {"after": "welcome"},
        "recipient": {"after": "bob@example.com"},
    }


def test_html_escapes_what_it_is_given(app, scim):
    """A value with markup is escaped in the HTML body, left as typed in the text body."""
    with db.writer(app)() as session, session.begin():
        context = {**CONTEXT, "name": "<script>x</script>"}
        mail = queue_mail(session, scim.org_id, "password_changed", "bob@example.com", context)
        assert "&lt;script&gt;x&lt;/script&gt;" in mail.body_html
        assert "<script>" not in mail.body_html and "Hello <script>x</script>," in mail.body_text


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_templates_with_org_name_and_login_url(app, scim, kind):
    """Each kind renders a subject, a text and an HTML body naming the org and the login URL."""
    with db.writer(app)() as session, session.begin():
        mail = queue_mail(session, scim.org_id, kind, "bob@example.com", CONTEXT)
    assert "acme" in mail.subject
    for body in (mail.body_text, mail.body_html):
        assert "acme" in body and "https://id.example.com/sso/login" in body


def test_a_scheduled_mail_waits_for_send_at(app, scim, smtp, tmp_path):
    """send_at in an hour: not sent before, sent on the first pass after."""
    recorder, port = smtp
    clock = Clock()
    mail_id = _queue(app, scim.org_id, send_at=clock.now + timedelta(hours=1))
    worker = Worker(db.writer(app), clock=clock, mailer=_mailer(port, tmp_path))
    clock.advance(3599)
    assert worker.run_once() == 0 and recorder.messages == []
    assert _mail(app, scim.org_id, mail_id).state == "queued"
    clock.advance(2)
    assert worker.run_once() == 1 and len(recorder.messages) == 1
    mail = _mail(app, scim.org_id, mail_id)
    assert mail.state == "sent" and mail.send_at == mail.next_attempt_at


class Busy(SmtpRecorder):
    """Answers DATA with 451 (a greylisting or overloaded relay: try again later)."""

    async def handle_DATA(self, server, session, envelope) -> str:
        self.refused += 1
        return "451 4.3.0 Try again later"


class RefusesRecipients(SmtpRecorder):
    """Answers RCPT TO with 550 (no such mailbox)."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        self.refused += 1
        return "550 5.1.1 No such user here"


@contextmanager
def _server(handler: SmtpRecorder) -> Iterator[int]:
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def test_a_refusing_server_means_retries_with_backoff_then_abandoned(app, scim, tmp_path):
    """451 (RFC 5321 §4.2.1: transient) on every attempt: retried after 10, 20, 40, 80 s,
    ... at most every 10 minutes, for a day from the first attempt; then abandoned, every
    attempt audited, the body kept for an admin's retry."""
    handler = Busy()
    mail_id = _queue(app, scim.org_id)
    clock = Clock()
    with _server(handler) as port:
        worker = Worker(db.writer(app), clock=clock, mailer=_mailer(port, tmp_path))
        for attempt, delay in enumerate((10, 20, 40, 80, 160, 320, 600, 600), start=1):
            assert worker.run_once() == 1
            mail = _mail(app, scim.org_id, mail_id)
            assert (mail.state, mail.attempts) == ("failed", attempt)
            assert mail.next_attempt_at == clock.now + timedelta(seconds=delay)
            assert "451" in mail.last_error and "Try again later" in mail.last_error
            clock.advance(delay - 1)
            assert worker.run_once() == 0  # not before its time
            clock.advance(1)
        first = _mail(app, scim.org_id, mail_id).first_attempt_at
        clock.now = first + timedelta(days=1)
        assert worker.run_once() == 1
    mail = _mail(app, scim.org_id, mail_id)
    assert (mail.state, mail.attempts, handler.refused) == ("abandoned", 9, 9)
    assert mail.body_text is not None  # kept, so that an admin's retry can send it
    clock.advance(7200)
    assert worker.run_once() == 0 and handler.messages == []
    actions = [(e.action, e.outcome) for e in _events(app, scim.org_id)]
    assert actions == [("mail.queued", "success")] + [("mail.failed", "failure")] * 9 + [
        ("mail.abandoned", "failure")
    ]


class BusyRecipient(SmtpRecorder):
    """Answers RCPT TO with 451 while ``busy`` (a greylisting relay)."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if self.busy:
            self.refused += 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_a_recipient_refused_with_4xx_is_retried_and_then_sent_once(app, scim, tmp_path):
    """451 to RCPT (greylisting): retried after 10 s, not before; once the relay takes it,
    the mail is sent once, as one mail of two attempts."""
    handler = BusyRecipient()
    mail_id = _queue(app, scim.org_id)
    clock = Clock()
    with _server(handler) as port:
        worker = Worker(db.writer(app), clock=clock, mailer=_mailer(port, tmp_path))
        assert worker.send_mail() == 1
        mail = _mail(app, scim.org_id, mail_id)
        assert mail.state == "failed" and "451" in (mail.last_error or "")
        assert mail.next_attempt_at - clock() == timedelta(seconds=10)
        clock.advance(5)
        assert worker.send_mail() == 0  # not before its time
        handler.busy = False
        clock.advance(6)
        assert worker.send_mail() == 1
    mail = _mail(app, scim.org_id, mail_id)
    assert (mail.state, mail.attempts, len(handler.messages)) == ("sent", 2, 1)


def test_a_permanent_5xx_refusal_is_not_retried(app, scim, smtp, tmp_path):
    """RFC 5321 §4.2.1: a 5yz answer is permanent, the client SHOULD NOT repeat it. A 550
    abandons the mail at its first attempt, the relay's answer recorded and audited."""
    recorder, port = smtp
    recorder.refuse = True
    mail_id = _queue(app, scim.org_id)
    clock = Clock()
    worker = Worker(db.writer(app), clock=clock, mailer=_mailer(port, tmp_path))
    assert worker.send_mail() == 1
    for _ in range(6):
        clock.advance(3600)
        assert worker.send_mail() == 0
    assert recorder.refused == 1 and recorder.messages == []
    mail = _mail(app, scim.org_id, mail_id)
    assert (mail.state, mail.attempts) == ("abandoned", 1)
    assert "550" in mail.last_error and "Refused by the test server" in mail.last_error
    assert mail.body_text is not None  # kept, so that an admin's retry can send it
    events = _events(app, scim.org_id)
    assert [(e.action, e.outcome) for e in events] == [
        ("mail.queued", "success"),
        ("mail.failed", "failure"),
        ("mail.abandoned", "failure"),
    ]
    assert "Refused by the test server" in events[-1].detail


def test_every_recipient_refused_with_5xx_is_permanent_too(app, scim, tmp_path):
    """The relay refuses the only recipient with 550 (no such mailbox): no second try."""
    handler = RefusesRecipients()
    mail_id = _queue(app, scim.org_id)
    clock = Clock()
    with _server(handler) as port:
        worker = Worker(db.writer(app), clock=clock, mailer=_mailer(port, tmp_path))
        assert worker.send_mail() == 1
        clock.advance(3600)
        assert worker.send_mail() == 0
    mail = _mail(app, scim.org_id, mail_id)
    assert (mail.state, handler.refused) == ("abandoned", 1)
    assert "SMTPRecipientsRefused" in mail.last_error and "No such user" in mail.last_error


def test_an_unreachable_server_is_retried_too(app, scim, tmp_path):
    """Connection refused (no server on the port) is a failed attempt, not a crash of the worker."""
    port = free_port()
    mail_id = _queue(app, scim.org_id)
    assert Worker(db.writer(app), mailer=_mailer(port, tmp_path)).run_once() == 1
    mail = _mail(app, scim.org_id, mail_id)
    assert (mail.state, mail.attempts) == ("failed", 1)
    assert "ConnectionRefusedError" in mail.last_error


def test_without_smtp_the_mail_is_an_eml_file(app, scim, tmp_path, caplog):
    """No SCIM_SMTP_URL: the worker writes <id>.eml in the mail folder and logs its path."""
    mail_id = _queue(app, scim.org_id, "reset_link")
    mailer = Mailer(sender="it@acme.example", smtp=None, mail_dir=tmp_path / "mail")
    caplog.set_level("INFO", logger="scim_server.services.mail_delivery")
    assert Worker(db.writer(app), mailer=mailer).run_once() == 1
    path = tmp_path / "mail" / f"{mail_id}.eml"
    assert [p.name for p in (tmp_path / "mail").iterdir()] == [path.name]
    assert str(path) in caplog.text
    from email import message_from_bytes, policy

    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    text, html = _parts(message)
    assert message["Subject"] == "Reset your acme password"
    assert "https://id.example.com/sso/activate/abc?x=1&y=2" in text
    assert 'href="https://id.example.com/sso/activate/abc?x=1&amp;y=2"' in html
    assert _mail(app, scim.org_id, mail_id).state == "sent"


def test_a_rolled_back_transaction_sends_nothing(app, scim, smtp, tmp_path):
    """Mail queued in a transaction that rolls back leaves no row, no event, and no mail."""
    recorder, port = smtp
    with db.writer(app)() as session:
        session.begin()
        queue_mail(session, scim.org_id, "welcome", "bob@example.com", CONTEXT)
        session.rollback()
    assert Worker(db.writer(app), mailer=_mailer(port, tmp_path)).run_once() == 0
    assert recorder.messages == [] and _events(app, scim.org_id) == []
    with db.reader(app)() as session:
        assert session.scalars(select(MailOutbox)).all() == []


@pytest.mark.parametrize(
    ("kind", "recipient", "context", "message"),
    [
        ("postcard", "bob@example.com", CONTEXT, "Unknown mail kind 'postcard'"),
        ("welcome", "Bob <bob@example.com>", CONTEXT, "is not an e-mail address"),
        ("welcome", "bob@example.com\r\nBcc: eve@evil.example", CONTEXT, "not an e-mail"),
        ("welcome", "bob", CONTEXT, "is not an e-mail address"),
        ("welcome", "bob@example.com", {"login_url": "https://x"}, "'username' is undefined"),
        (
            "welcome",
            "bob@example.com",
            {k: v for k, v in CONTEXT.items() if k != "login_url"},
            "'login_url' is undefined",
        ),
    ],
)
def test_bad_mail_is_refused_and_changes_nothing(app, scim, kind, recipient, context, message):
    """Unknown kind, a header-injecting or odd recipient, a missing value: a clear error, no row."""
    with db.writer(app)() as session, session.begin():
        with pytest.raises(InvalidValueError, match=message):
            queue_mail(session, scim.org_id, kind, recipient, context)
        assert session.scalars(select(MailOutbox)).all() == []
    assert _events(app, scim.org_id) == []


def test_send_at_without_a_timezone_is_refused(app, scim):
    """A naive send_at would be read in some server's local time: refused."""
    naive = Clock().now.replace(tzinfo=None)
    with (
        db.writer(app)() as session,
        session.begin(),
        pytest.raises(InvalidValueError, match="timezone"),
    ):
        queue_mail(session, scim.org_id, "welcome", "bob@example.com", CONTEXT, send_at=naive)


def test_recorder_helper_refuses_when_told(smtp):
    """The test server itself: a message it refuses is not recorded (so the 550 test means it)."""
    import smtplib

    recorder, port = smtp
    recorder.refuse = True
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client, pytest.raises(smtplib.SMTPDataError):
        client.sendmail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\nbody")
    assert recorder.messages == [] and isinstance(recorder, SmtpRecorder)


def test_smtp_login_with_the_url_credentials(app, scim, tmp_path):
    """smtp://user:pass@...: the worker logs in with the decoded credentials; a wrong one fails."""
    with smtp_server(login=("it@acme.example", "p:ss/w")) as (recorder, port):
        good = parse_smtp_url(f"smtp://it%40acme.example:p%3Ass%2Fw@127.0.0.1:{port}")
        bad = parse_smtp_url(f"smtp://it%40acme.example:wrong@127.0.0.1:{port}")
        refused_id, sent_id = _queue(app, scim.org_id), _queue(app, scim.org_id, "mfa_reset")
        refused = Mailer(sender="it@acme.example", smtp=bad, mail_dir=tmp_path, timeout=5)
        assert Worker(db.writer(app), mailer=refused).send_mail(limit=1) == 1
        mail = _mail(app, scim.org_id, refused_id)
        assert mail.state == "failed" and "SMTPAuthenticationError" in mail.last_error
        assert "wrong" not in mail.last_error
        accepted = Mailer(sender="it@acme.example", smtp=good, mail_dir=tmp_path, timeout=5)
        assert Worker(db.writer(app), mailer=accepted).send_mail() == 1
        assert [m["Subject"] for m in recorder.messages] == [
            "Two-factor sign-in reset for your acme account"
        ]
        assert _mail(app, scim.org_id, sent_id).state == "sent"


def test_a_mail_whose_workers_keep_dying_is_abandoned_unsent(app, scim, smtp, tmp_path):
    """Claimed five times by workers that died: the sixth claim abandons it without sending."""
    recorder, port = smtp
    mail_id = _queue(app, scim.org_id)
    clock = Clock()
    writer = db.writer(app)
    for i in range(5):
        assert mail_delivery.claim_mail(writer, f"dead{i}", now=clock(), domain="x") is not None
        clock.advance(mail_delivery.LEASE.total_seconds() + 1)
    assert Worker(writer, clock=clock, mailer=_mailer(port, tmp_path)).run_once() == 1
    assert recorder.messages == []
    mail = _mail(app, scim.org_id, mail_id)
    assert (mail.state, mail.attempts, mail.last_error) == ("abandoned", 6, "its workers stopped")
    assert [e.action for e in _events(app, scim.org_id)][-2:] == ["mail.failed", "mail.abandoned"]
