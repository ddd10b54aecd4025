"""Admin API for the mail outbox: the list (newest first, by state, paged, never a body), retry."""

from __future__ import annotations

from datetime import timedelta

from scim_server.config import SmtpSettings
from scim_server.db import db
from scim_server.mailer import Mailer
from scim_server.services.mail import queue_mail
from scim_server.worker import Worker
from tests.support import Clock
from tests.support.admin_api import events, ok

CONTEXT = {
    "login_url": "https://id.example.com/sso/login",
    "username": "bob",
    "temporary_password": "Tmp-secret-123",
    "expires": "in 7 days",
}


def _queue(admin, recipients: list[str], kind: str = "welcome") -> list[str]:
    """Mails queued one transaction each, so that their created_at order is theirs."""
    ids = []
    for recipient in recipients:
        with db.writer(admin.client.application)() as session, session.begin():
            ids.append(queue_mail(session, admin.org_id, kind, recipient, CONTEXT).id)
    return ids


def _worker(admin, port: int, clock: Clock, tmp_path) -> Worker:
    smtp = SmtpSettings(host="127.0.0.1", port=port, security="plain")
    mailer = Mailer(sender="it@acme.example", smtp=smtp, mail_dir=tmp_path, timeout=5)
    return Worker(db.writer(admin.client.application), clock=clock, mailer=mailer)


def _abandon(admin, smtp, tmp_path) -> tuple[str, Clock]:
    """A mail the SMTP server refused with a permanent answer (5yz: abandoned at once)."""
    recorder, port = smtp
    recorder.refuse = True
    (mail_id,) = _queue(admin, ["bob@example.com"])
    clock = Clock()
    assert _worker(admin, port, clock, tmp_path).run_once() == 1
    clock.advance(3600)
    recorder.refuse = False
    return mail_id, clock


def test_list_is_newest_first_paged_and_never_shows_a_body(admin):
    """GET /api/v1/mail: total, offset, limit; newest first; kind, recipient, state, no body."""
    ids = _queue(admin, ["a@example.com", "b@example.com", "c@example.com"])
    body = ok(admin.get("/api/v1/mail", query_string={"limit": 2}))
    assert (body["total"], body["offset"], body["limit"]) == (3, 0, 2)
    assert [m["id"] for m in body["mail"]] == [ids[2], ids[1]]
    first = body["mail"][0]
    assert first["recipient"] == "c@example.com" and first["kind"] == "welcome"
    assert first["state"] == "queued" and first["attempts"] == 0 and first["sent_at"] is None
    assert not {"body", "body_text", "body_html"} & set(first)
    assert "Tmp-secret-123" not in admin.get("/api/v1/mail").get_data(as_text=True)
    rest = ok(admin.get("/api/v1/mail", query_string={"limit": 2, "offset": 2}))
    assert [m["id"] for m in rest["mail"]] == [ids[0]]


def test_list_filters_by_state(admin, smtp, tmp_path):
    """?state=sent and ?state=queued split the outbox; an unknown state is a 400."""
    recorder, port = smtp
    (sent_id,) = _queue(admin, ["a@example.com"])
    assert _worker(admin, port, Clock(), tmp_path).run_once() == 1
    assert len(recorder.messages) == 1
    (queued_id,) = _queue(admin, ["b@example.com"])
    sent = ok(admin.get("/api/v1/mail", query_string={"state": "sent"}))
    assert [m["id"] for m in sent["mail"]] == [sent_id] and sent["total"] == 1
    assert sent["mail"][0]["sent_at"] is not None and sent["mail"][0]["message_id"]
    queued = ok(admin.get("/api/v1/mail", query_string={"state": "queued"}))
    assert [m["id"] for m in queued["mail"]] == [queued_id]
    resp = admin.get("/api/v1/mail", query_string={"state": "lost"})
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"


def test_another_organizations_mail_is_not_listed_or_retried(admin, other_scim, client):
    """Tenants never see each other's outbox: not listed, and 404 on retry."""
    from scim_server.services.tokens import create_token

    app = admin.client.application
    with db.writer(app)() as session, session.begin():
        theirs = queue_mail(session, other_scim.org_id, "welcome", "x@globex.example", CONTEXT).id
    assert ok(admin.get("/api/v1/mail"))["total"] == 0
    resp = admin.post(f"/api/v1/mail/{theirs}/retry", None)
    assert resp.status_code == 404
    with db.reader(app)() as session:
        _token, secret = create_token(session, other_scim.org_id, "ops", kind="admin")
    listed = client.get("/api/v1/mail", headers={"Authorization": f"Bearer {secret}"})
    assert [m["id"] for m in listed.get_json()["mail"]] == [theirs]


def test_retry_queues_an_abandoned_mail_and_the_worker_sends_it(admin, smtp, tmp_path):
    """POST retry: abandoned -> queued with fresh attempts, audited; the next pass delivers it."""
    recorder, port = smtp
    mail_id, clock = _abandon(admin, smtp, tmp_path)
    listed = ok(admin.get("/api/v1/mail", query_string={"state": "abandoned"}))["mail"]
    assert [(m["id"], m["attempts"]) for m in listed] == [(mail_id, 1)]
    assert "550" in listed[0]["last_error"]
    retried = ok(admin.post(f"/api/v1/mail/{mail_id}/retry", None))
    assert (retried["state"], retried["attempts"]) == ("queued", 0)
    (event,) = events(admin, action="mail.retry")
    assert event["outcome"] == "success" and event["resource_id"] == mail_id
    assert event["actor_type"] == "admin"
    assert _worker(admin, port, clock, tmp_path).run_once() == 1
    (message,) = recorder.messages
    assert "Tmp-secret-123" in message.get_body(("plain",)).get_content()
    sent = ok(admin.get("/api/v1/mail"))["mail"][0]
    assert (sent["state"], sent["attempts"], sent["last_error"]) == ("sent", 1, None)
    assert [e["action"] for e in events(admin) if e["action"].startswith("mail.")][-3:] == [
        "mail.abandoned",
        "mail.retry",
        "mail.sent",
    ]


def test_retry_of_a_mail_that_is_not_abandoned_is_refused(admin):
    """A queued (or sent) mail cannot be retried: 409, nothing changes, the refusal is logged."""
    (mail_id,) = _queue(admin, ["a@example.com"])
    resp = admin.post(f"/api/v1/mail/{mail_id}/retry", None)
    assert resp.status_code == 409
    assert "Only an abandoned mail can be retried; this one is queued." in resp.get_json()["detail"]
    (refused,) = events(admin, action="mail.retry")
    assert refused["outcome"] == "failure" and refused["resource_id"] == mail_id
    assert ok(admin.get("/api/v1/mail"))["mail"][0]["state"] == "queued"
    assert admin.post("/api/v1/mail/no-such-mail/retry", None).status_code == 404


def test_a_scheduled_mail_shows_when_it_will_go(admin):
    """send_at and next_attempt_at are shown for a scheduled mail."""
    when = Clock().now + timedelta(days=1)
    with db.writer(admin.client.application)() as session, session.begin():
        queue_mail(session, admin.org_id, "welcome", "a@example.com", CONTEXT, send_at=when)
    (mail,) = ok(admin.get("/api/v1/mail"))["mail"]
    stamp = when.isoformat(timespec="seconds").replace("+00:00", "Z")
    assert mail["send_at"] == stamp and mail["next_attempt_at"] == stamp


def test_the_mail_api_needs_an_admin_token(client, scim):
    """A SCIM token is not an admin token: 401."""
    assert client.get("/api/v1/mail").status_code == 401
    assert scim.get("/api/v1/mail").status_code == 401
