"""Admin API for credentials: send (to the user or to myself), resend, reset, schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select, update

from scim_server.db import db
from scim_server.models import CredentialSchedule, CredentialSend, CredentialToken, MailOutbox, User
from tests.support import Clock
from tests.support.admin_api import events, ok
from tests.support.credentials import (
    employee,
    link_token,
    mail_worker,
    password_verifies,
    set_settings,
    temporary_password,
    text_of,
)


def _status(app, org_id: str, user_id: str) -> str:
    with db.reader(app)() as session:
        return session.get(User, (org_id, user_id)).status


def _drop_welcome(app, org_id: str) -> None:
    """Arrange: the SCIM welcomes are not part of what the test looks at."""
    with db.writer(app)() as session, session.begin():
        session.execute(
            CredentialSchedule.__table__.delete().where(CredentialSchedule.org_id == org_id)
        )


def _person(app, scim, name: str = "bob@example.com") -> str:
    user_id = employee(scim, name)["id"]
    _drop_welcome(app, scim.org_id)
    return user_id


def test_send_now_mails_a_temporary_password_that_verifies(app, scim, admin, smtp, tmp_path):
    """POST .../credentials/send: 202, the mail named (never its secret), the password works."""
    recorder, port = smtp
    user_id = _person(app, scim)
    resp = admin.post(f"/api/v1/users/{user_id}/credentials/send", None)
    body = ok(resp, 202)
    assert body["mail"]["recipient"] == "bob@example.com" and body["mail"]["kind"] == "welcome"
    assert body["mail"]["method"] == "temporary_password"
    assert body["status"] == "AWAITING_NEW_PASSWORD"
    mail_worker(app, port, tmp_path).run_once()
    secret = temporary_password(recorder.messages[0])
    assert secret not in resp.get_data(as_text=True)
    assert password_verifies(app, scim.org_id, user_id, secret)
    assert all(secret not in str(e) for e in events(admin))


def test_send_to_myself_goes_to_the_admin_and_says_whom_it_is_for(app, scim, admin, smtp, tmp_path):
    """{"to": "me", "me": address}: the admin receives it; the mail names the user."""
    recorder, port = smtp
    user_id = _person(app, scim)
    body = ok(
        admin.post(
            f"/api/v1/users/{user_id}/credentials/send", {"to": "me", "me": "admin@acme.example"}
        ),
        202,
    )
    assert body["mail"]["recipient"] == "admin@acme.example"
    mail_worker(app, port, tmp_path).run_once()
    (message,) = recorder.messages
    assert message["To"] == "admin@acme.example"
    assert "This mail is for bob@example.com" in text_of(message)
    (event,) = [
        e for e in events(admin, resource_id=user_id) if e["action"] == "user.credentials.send"
    ]
    assert "the acting admin" in event["detail"]


def test_to_myself_needs_an_address_when_the_token_name_is_not_one(app, scim, admin, session):
    """The admin token is named "compliance": without "me" the request is a clear 400."""
    user_id = _person(app, scim)
    resp = admin.post(f"/api/v1/users/{user_id}/credentials/send", {"to": "me"})
    assert resp.status_code == 400 and '"me"' in resp.get_json()["detail"]
    assert session.scalar(select(MailOutbox)) is None


def test_resend_invalidates_the_previous_password_and_the_fourth_in_an_hour_is_refused(
    app, scim, admin, smtp, tmp_path, session
):
    """Each resend replaces the password; after three in an hour: 429 with Retry-After, nothing sent."""
    recorder, port = smtp
    user_id = _person(app, scim)
    worker = mail_worker(app, port, tmp_path)
    secrets = []
    for _ in range(3):
        ok(admin.post(f"/api/v1/users/{user_id}/credentials/resend", None), 202)
        worker.run_once()
        secrets.append(temporary_password(recorder.messages[-1]))
    assert recorder.messages[-1]["Subject"].endswith("(sent again)")
    assert not password_verifies(app, scim.org_id, user_id, secrets[0])
    assert password_verifies(app, scim.org_id, user_id, secrets[-1])
    refused = admin.post(f"/api/v1/users/{user_id}/credentials/resend", None)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert "at most 3" in refused.get_json()["detail"]
    assert len(session.scalars(select(MailOutbox)).all()) == 3
    assert password_verifies(app, scim.org_id, user_id, secrets[-1])
    # An hour later the count starts again.
    with db.writer(app)() as s, s.begin():
        s.execute(update(CredentialSend).values(created_at=datetime.now(UTC) - timedelta(hours=1)))
    ok(admin.post(f"/api/v1/users/{user_id}/credentials/resend", None), 202)


def test_resend_in_activation_mode_kills_the_earlier_link(app, scim, admin, client, smtp, tmp_path):
    """activation_link: a resend mails a new link; the first one no longer opens."""
    recorder, port = smtp
    set_settings(admin, credentials_delivery="activation_link")
    user_id = _person(app, scim)
    worker = mail_worker(app, port, tmp_path)
    ok(admin.post(f"/api/v1/users/{user_id}/credentials/send", None), 202)
    worker.run_once()
    first = link_token(recorder.messages[-1], "activate")
    ok(admin.post(f"/api/v1/users/{user_id}/credentials/resend", None), 202)
    worker.run_once()
    second = link_token(recorder.messages[-1], "activate")
    assert client.get(f"/sso/activate/{first}").status_code == 410
    assert client.get(f"/sso/activate/{second}").status_code == 200


def test_admin_reset_removes_the_password_and_mails_a_new_temporary_one(
    app, scim, admin, smtp, tmp_path
):
    """POST .../password/reset (temporary_password mode): old password gone, new one mailed."""
    recorder, port = smtp
    user_id = _person(app, scim)
    worker = mail_worker(app, port, tmp_path)
    ok(admin.post(f"/api/v1/users/{user_id}/credentials/send", None), 202)
    worker.run_once()
    old = temporary_password(recorder.messages[-1])
    body = ok(admin.post(f"/api/v1/users/{user_id}/password/reset", None), 202)
    assert body["mail"]["kind"] == "password_reset"
    worker.run_once()
    new = temporary_password(recorder.messages[-1])
    assert "An administrator reset the password" in text_of(recorder.messages[-1])
    assert not password_verifies(app, scim.org_id, user_id, old)
    assert password_verifies(app, scim.org_id, user_id, new)
    actions = [e["action"] for e in events(admin, resource_id=user_id)]
    assert "user.password.removed" in actions and "user.credentials.reset" in actions


def test_admin_reset_in_link_mode_puts_the_user_in_recovery(app, scim, admin, smtp, tmp_path):
    """activation_link mode: the reset mails a reset link, the password is gone, status RECOVERY."""
    recorder, port = smtp
    set_settings(admin, credentials_delivery="activation_link")
    user_id = _person(app, scim)
    body = ok(admin.post(f"/api/v1/users/{user_id}/password/reset", None), 202)
    assert body["mail"]["kind"] == "reset_link" and body["status"] == "RECOVERY"
    mail_worker(app, port, tmp_path).run_once()
    message = recorder.messages[-1]
    assert "An administrator reset the password" in text_of(message)
    assert link_token(message, "reset")


def test_the_account_shows_which_sign_in_applies(app, scim, admin):
    """GET /users/<id> says signInMethods: automatic without SSO is password_allowed."""
    user_id = _person(app, scim)
    assert ok(admin.get(f"/api/v1/users/{user_id}"))["signInMethods"] == "password_allowed"
    set_settings(admin, sign_in_methods="sso_only")
    assert ok(admin.get(f"/api/v1/users/{user_id}"))["signInMethods"] == "sso_only"


def test_a_deactivated_user_gets_no_credentials(app, scim, admin, session):
    """A deactivated account: 409 saying to activate it first; nothing queued."""
    user_id = _person(app, scim)
    ok(admin.post(f"/api/v1/users/{user_id}/actions/deactivate", None))
    resp = admin.post(f"/api/v1/users/{user_id}/credentials/send", None)
    assert resp.status_code == 409 and "DEACTIVATED" in resp.get_json()["detail"]
    assert session.scalar(select(MailOutbox)) is None


def test_bad_requests_are_clear_and_change_nothing(app, scim, admin, session):
    """Wrong content type, unknown fields, absurd lengths, unknown users: 4xx, nothing queued."""
    user_id = _person(app, scim)
    url = f"/api/v1/users/{user_id}/credentials/send"
    wrong_type = admin.client.post(
        url, data="to=me", headers={**admin.headers(), "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert admin.post(url, {"to": "everyone"}).status_code == 400
    assert admin.post(url, {"to": "me", "me": "x" * 10_000}).status_code == 400
    assert admin.post(url, {"to": "user", "me": "a@b.example"}).status_code == 400
    assert admin.post(url, {"surprise": 1}).status_code == 400
    assert admin.post(url, {"to": "me", "me": "a@b.example\r\nBcc: x@y"}).status_code == 400
    missing = admin.post("/api/v1/users/nope/credentials/send", None)
    assert missing.status_code == 404
    assert session.scalar(select(MailOutbox)) is None
    refusals = [e for e in events(admin) if e["outcome"] == "failure"]
    assert refusals and all(e["action"] == "user.credentials.send" for e in refusals)


# -- scheduling ---------------------------------------------------------------------------


def _at(clock: Clock, hours: float) -> str:
    return (clock.now + timedelta(hours=hours)).astimezone(UTC).isoformat()


def test_a_scheduled_send_goes_out_at_its_time_and_not_before(app, scim, admin, smtp, tmp_path):
    """PUT .../credentials/schedule: shown on the user; the worker sends it at send_at, once."""
    recorder, port = smtp
    user_id = _person(app, scim)
    clock = Clock()
    send_at = (clock.now + timedelta(days=2)).replace(microsecond=0)
    body = ok(
        admin.put(
            f"/api/v1/users/{user_id}/credentials/schedule",
            {"send_at": send_at.astimezone(timezone_plus(2)).isoformat()},
        )
    )
    expected = send_at.isoformat().replace("+00:00", "Z")
    assert body["schedule"]["sendAt"] == expected and body["schedule"]["to"] == "user"
    listed = ok(admin.get("/api/v1/users"))["users"]
    assert [u["credentialsSchedule"]["sendAt"] for u in listed] == [expected]
    worker = mail_worker(app, port, tmp_path, clock)
    clock.advance(2 * 86400 - 60)
    assert worker.run_once() == 0 and recorder.messages == []
    assert _status(app, scim.org_id, user_id) == "PROVISIONED"  # no secret made yet
    clock.advance(61)
    worker.run_once()
    (message,) = recorder.messages
    assert password_verifies(app, scim.org_id, user_id, temporary_password(message))
    assert ok(admin.get(f"/api/v1/users/{user_id}"))["credentialsSchedule"] is None
    clock.advance(86400)
    assert worker.run_once() == 0 and len(recorder.messages) == 1


def timezone_plus(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def test_cancel_and_reschedule(app, scim, admin, smtp, tmp_path):
    """DELETE cancels (then 404); a second PUT moves the date; the audit log has each."""
    recorder, port = smtp
    user_id = _person(app, scim)
    clock = Clock()
    url = f"/api/v1/users/{user_id}/credentials/schedule"
    ok(admin.put(url, {"send_at": _at(clock, 1)}))
    moved = ok(admin.put(url, {"send_at": _at(clock, 5)}))["schedule"]["sendAt"]
    worker = mail_worker(app, port, tmp_path, clock)
    clock.advance(2 * 3600)
    worker.run_once()
    assert recorder.messages == []
    assert ok(admin.get(f"/api/v1/users/{user_id}"))["credentialsSchedule"]["sendAt"] == moved
    assert admin.delete(url).status_code == 204
    assert admin.delete(url).status_code == 404
    clock.advance(10 * 3600)
    worker.run_once()
    assert recorder.messages == []
    actions = [e["action"] for e in events(admin, resource_id=user_id)]
    assert actions.count("user.credentials.schedule") == 2
    assert "user.credentials.schedule.cancel" in actions


def test_schedule_a_list_with_a_result_per_user(app, scim, admin):
    """POST /credentials/schedule: each id scheduled or refused on its own row; GET lists them."""
    ids = [_person(app, scim, f"p{i}@example.com") for i in range(3)]
    ok(admin.post(f"/api/v1/users/{ids[2]}/actions/lock", None))
    clock = Clock()
    body = ok(
        admin.post(
            "/api/v1/credentials/schedule",
            {"user_ids": [ids[0], ids[1], ids[2], "missing"], "send_at": _at(clock, 24)},
        )
    )
    assert (body["scheduled"], body["refused"]) == (2, 2)
    assert [r["status"] for r in body["results"]] == [200, 200, 409, 404]
    assert "LOCKED_BY_ADMIN" in body["results"][2]["error"]
    listed = ok(admin.get("/api/v1/credentials/schedule"))
    assert listed["total"] == 2 and {s["user_id"] for s in listed["schedules"]} == set(ids[:2])


def test_schedule_refuses_past_naive_and_absurd_input(app, scim, admin, session):
    """A past date, a date without a zone, a duplicate or empty list: 400, nothing scheduled."""
    user_id = _person(app, scim)
    url = f"/api/v1/users/{user_id}/credentials/schedule"
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    resp = admin.put(url, {"send_at": past})
    assert resp.status_code == 400 and "past" in resp.get_json()["detail"]
    assert admin.put(url, {"send_at": "2030-01-01T08:00:00"}).status_code == 400
    assert admin.put(url, {"send_at": "next tuesday"}).status_code == 400
    assert admin.put(url, {}).status_code == 400
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    bulk = "/api/v1/credentials/schedule"
    assert admin.post(bulk, {"user_ids": [], "send_at": future}).status_code == 400
    assert admin.post(bulk, {"user_ids": [user_id, user_id], "send_at": future}).status_code == 400
    assert admin.post(bulk, {"user_ids": ["x" * 5000], "send_at": future}).status_code == 400
    assert session.scalar(select(CredentialSchedule)) is None


def test_a_scheduled_send_for_a_user_deactivated_meanwhile_fails_visibly(
    app, scim, admin, smtp, tmp_path
):
    """The account was deactivated before the date: nothing sent, the failure shows on the user."""
    recorder, port = smtp
    user_id = _person(app, scim)
    clock = Clock()
    ok(admin.put(f"/api/v1/users/{user_id}/credentials/schedule", {"send_at": _at(clock, 1)}))
    ok(admin.post(f"/api/v1/users/{user_id}/actions/deactivate", None))
    clock.advance(3601)
    mail_worker(app, port, tmp_path, clock).run_once()
    assert recorder.messages == []
    shown = ok(admin.get(f"/api/v1/users/{user_id}"))["credentialsSchedule"]
    assert shown["state"] == "failed" and "DEACTIVATED" in shown["lastError"]


def test_schedule_to_myself_goes_to_the_admin_at_the_time(app, scim, admin, smtp, tmp_path):
    """A scheduled send "to me" reaches the admin's address at send_at, naming the user."""
    recorder, port = smtp
    user_id = _person(app, scim)
    clock = Clock()
    body = {"send_at": _at(clock, 1), "to": "me", "me": "it@acme.example"}
    ok(admin.put(f"/api/v1/users/{user_id}/credentials/schedule", body))
    clock.advance(3601)
    mail_worker(app, port, tmp_path, clock).run_once()
    (message,) = recorder.messages
    assert message["To"] == "it@acme.example" and "This mail is for" in text_of(message)


def test_the_link_of_a_reset_expires_and_recovery_ends(app, scim, admin, client, smtp, tmp_path):
    """An admin's reset link unused past its time: the page refuses it; the worker ends RECOVERY."""
    recorder, port = smtp
    set_settings(admin, credentials_delivery="activation_link")
    user_id = _person(app, scim)
    ok(admin.post(f"/api/v1/users/{user_id}/password/reset", None), 202)
    clock = Clock()
    worker = mail_worker(app, port, tmp_path, clock)
    worker.run_once()
    token = link_token(recorder.messages[-1], "reset")
    with db.writer(app)() as s, s.begin():
        s.execute(update(CredentialToken).values(expires_at=clock.now - timedelta(seconds=1)))
    assert client.get(f"/sso/reset/{token}").status_code == 410
    assert _status(app, scim.org_id, user_id) == "RECOVERY"
    worker.run_once()
    assert _status(app, scim.org_id, user_id) == "PROVISIONED"
    actions = [e["action"] for e in events(admin, resource_id=user_id)]
    assert actions[-1] == "user.complete_recovery"


def test_deleting_a_user_drops_its_waiting_send(app, scim, admin, session):
    """DELETE /users/<id>: the scheduled send goes with the account (nothing left for the worker)."""
    user_id = _person(app, scim)
    clock = Clock()
    ok(admin.put(f"/api/v1/users/{user_id}/credentials/schedule", {"send_at": _at(clock, 1)}))
    assert admin.delete(f"/api/v1/users/{user_id}").status_code == 204
    assert session.scalar(select(CredentialSchedule)) is None
