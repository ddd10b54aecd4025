"""/sso/forgot, /sso/reset/<token>: one answer for everyone, single-use links, throttles."""

from __future__ import annotations

import re
import time
from collections import deque
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update

from scim_server.db import db, utcnow
from scim_server.models import AuditEvent, CredentialToken, MailOutbox, User, UserPassword
from sso.extension import sso_extension
from sso.local import web
from tests.support import Clock
from tests.support.admin_api import account, events
from tests.support.credentials import (
    employee,
    link_token,
    mail_worker,
    password_verifies,
    set_settings,
    text_of,
)
from tests.support.local import busy_node, sign_in
from tests.support.plans import assert_indexed_by_key
from tests.support.sso import set_default_license

NEW = "Saffron-glacier-window-64"


def _with_password(app, scim, name: str = "bob@example.com") -> str:
    """A user who chose a password through the IdP (so it is theirs, not temporary)."""
    user = employee(scim, name, password="Original-pass-phrase-31")
    return str(user["id"])


def _status(app, org_id: str, user_id: str) -> str:
    with db.reader(app)() as session:
        return session.get(User, (org_id, user_id)).status


def _forgot(client, identifier: str, ip: str = "10.0.0.1"):
    return client.post(
        "/sso/forgot", data={"identifier": identifier}, environ_base={"REMOTE_ADDR": ip}
    )


def test_the_forgot_page_renders_a_form(client):
    """GET /sso/forgot: a labelled field and a button, under the strict CSP."""
    resp = client.get("/sso/forgot")
    assert resp.status_code == 200
    assert b'<label for="identifier">' in resp.data and b'method="post"' in resp.data
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert b"<script" not in resp.data and b"style=" not in resp.data


def test_forgot_answers_the_same_for_unknown_and_known_addresses(app, scim, admin, client, session):
    """Known or not, the page is identical; only the known account gets a link and RECOVERY."""
    user_id = _with_password(app, scim)
    unknown = _forgot(client, "nobody@example.com")
    known = _forgot(client, "bob@example.com")
    assert unknown.status_code == known.status_code == 200
    assert unknown.data == known.data
    (mail,) = session.scalars(select(MailOutbox)).all()
    assert mail.kind == "reset_link" and mail.recipient == "bob@example.com"
    assert _status(app, scim.org_id, user_id) == "RECOVERY"
    # Anyone can ask: the current password still works.
    assert password_verifies(app, scim.org_id, user_id, "Original-pass-phrase-31")
    actions = [e["action"] for e in events(admin, resource_id=user_id)]
    assert "user.credentials.forgot" in actions and "user.start_recovery" in actions


def test_forgot_pads_an_unknown_address_to_what_a_known_one_takes(app, scim, client, monkeypatch):
    """A known address issues a link, moves the status, queues mail and writes events: some
    milliseconds more than an unknown one, enough to tell who has an account. As the password
    form (``web.even_out``), an answer that sent nothing sleeps up to the median of those that
    sent a link (kept per process); one that sent a link never sleeps."""
    slept: list[float] = []
    monkeypatch.setattr(web.time, "sleep", slept.append)
    monkeypatch.setattr(sso_extension(app), "forgot_seconds", deque(maxlen=31))
    _with_password(app, scim)
    assert _forgot(client, "bob@example.com").status_code == 200
    kept = sso_extension(app).forgot_seconds
    assert slept == [] and len(kept) == 1 and kept[0] > 0
    kept.extend([0.5, 0.5, 0.5])  # as if sending a link took half a second lately
    assert _forgot(client, "nobody@example.com").status_code == 200
    assert len(slept) == 1 and 0.2 < slept[0] <= 0.5
    assert len(kept) == 4  # an unknown address's answer is not what a known one takes


def test_the_reset_link_sets_a_new_password_once(app, scim, client, smtp, tmp_path):
    """GET shows a form (nothing used); POST sets the password; the link then is dead."""
    recorder, port = smtp
    user_id = _with_password(app, scim)
    _forgot(client, "BOB@example.com")
    worker = mail_worker(app, port, tmp_path)
    worker.run_once()
    token = link_token(recorder.messages[-1], "reset")
    assert re.search(
        r"expires on \d{1,2} \w+ \d{4} at \d\d:\d\d UTC", text_of(recorder.messages[-1])
    )
    assert client.get(f"/sso/reset/{token}").status_code == 200
    done = client.post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert done.status_code == 200 and b"Your password was changed" in done.data
    assert password_verifies(app, scim.org_id, user_id, NEW)
    assert not password_verifies(app, scim.org_id, user_id, "Original-pass-phrase-31")
    assert _status(app, scim.org_id, user_id) == "PROVISIONED"
    reuse = client.post(f"/sso/reset/{token}", data={"password": NEW + "x", "confirm": NEW + "x"})
    assert reuse.status_code == 410
    assert password_verifies(app, scim.org_id, user_id, NEW)
    worker.run_once()
    assert "was changed" in text_of(recorder.messages[-1])


@pytest.mark.parametrize(
    ("password", "confirm", "message"),
    [
        ("short", "short", b"too short"),
        ("password12345", "password12345", b"too common"),
        ("bob@example.com-x9", "bob@example.com-x9", b"username or e-mail"),
        ("Original-pass-phrase-31", "Original-pass-phrase-31", b"not used recently"),
        (NEW, NEW + "!", b"not the same"),
        ("y" * 5000, "y" * 5000, b"too long"),
    ],
    ids=["length", "common", "personal", "history", "mismatch", "absurd"],
)
def test_a_refused_password_says_the_rule_and_keeps_the_link(
    app, scim, client, session, password, confirm, message
):
    """Each refusal shows its rule's message; the link still works afterwards."""
    user_id = _with_password(app, scim)
    _forgot(client, "bob@example.com")
    body = session.scalars(select(MailOutbox)).one().body_text
    token = body.split("/sso/reset/")[1].split()[0]
    refused = client.post(f"/sso/reset/{token}", data={"password": password, "confirm": confirm})
    assert refused.status_code == 400 and message in refused.data
    assert password_verifies(app, scim.org_id, user_id, "Original-pass-phrase-31")
    assert (
        client.post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW}).status_code
        == 200
    )


@pytest.mark.parametrize(
    "token",
    ["short", "x" * 43, "%00" * 30, "a" * 5000, "../../etc/passwd"],
    ids=["short", "unknown", "nul", "huge", "path"],
)
def test_broken_tokens_get_a_clear_page_and_change_nothing(client, token):
    """Unknown, malformed or huge tokens: 410 (or 404 for a path, 400 for NUL as on the
    sign-in pages), a plain page, nothing changed."""
    for resp in (
        client.get(f"/sso/reset/{token}"),
        client.post(f"/sso/activate/{token}", data={"password": NEW, "confirm": NEW}),
    ):
        assert resp.status_code in ((400,) if "%00" in token else (404, 410))
        if resp.status_code == 410:
            assert b"Nothing was changed" in resp.data
        if resp.status_code == 400:
            assert b"The request holds a character that is not allowed." in resp.data


def test_wrong_content_type_is_refused(app, scim, client, session):
    """A JSON POST to the forgot form or to a live link: 415, nothing sent or used."""
    user_id = _with_password(app, scim)
    assert client.post("/sso/forgot", json={"identifier": "bob@example.com"}).status_code == 415
    assert session.scalar(select(MailOutbox)) is None
    _forgot(client, "bob@example.com")
    token = session.scalars(select(MailOutbox)).one().body_text.split("/sso/reset/")[1].split()[0]
    resp = client.post(f"/sso/reset/{token}", json={"password": NEW, "confirm": NEW})
    assert resp.status_code == 415 and b"Send the form from this page" in resp.data
    assert not password_verifies(app, scim.org_id, user_id, NEW)
    assert client.get(f"/sso/reset/{token}").status_code == 200


def test_an_expired_link_is_refused_and_the_worker_ends_recovery(app, scim, client, session):
    """Past its 60 minutes the link is dead; the worker puts the user back where they were."""
    user_id = _with_password(app, scim)
    _forgot(client, "bob@example.com")
    token = session.scalars(select(MailOutbox)).one().body_text.split("/sso/reset/")[1].split()[0]
    clock = Clock()
    clock.advance(3601)
    worker = mail_worker(app, 1, app.instance_path, clock)
    with db.writer(app)() as s, s.begin():
        s.execute(update(CredentialToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get(f"/sso/reset/{token}").status_code == 410
    assert worker.send_credentials() == 1
    assert _status(app, scim.org_id, user_id) == "PROVISIONED"
    assert password_verifies(app, scim.org_id, user_id, "Original-pass-phrase-31")


def test_recovery_from_awaiting_goes_back_to_awaiting(app, scim, admin, client, session):
    """A user still to change a temporary password asks for a reset, then lets it expire."""
    user_id = employee(scim, "cy@example.com")["id"]
    assert admin.post(f"/api/v1/users/{user_id}/credentials/send", None).status_code == 202
    _forgot(client, "cy@example.com")
    assert _status(app, scim.org_id, user_id) == "AWAITING_NEW_PASSWORD"  # the demand holds
    with db.writer(app)() as s, s.begin():
        s.execute(
            update(CredentialToken)
            .where(CredentialToken.purpose == "reset")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    clock = Clock()
    mail_worker(app, 1, app.instance_path, clock).send_credentials()
    assert _status(app, scim.org_id, user_id) == "AWAITING_NEW_PASSWORD"


def test_one_account_gets_at_most_three_links_an_hour(app, scim, admin, client, session):
    """The fourth request within the hour sends nothing (the answer is the same) and is logged."""
    user_id = _with_password(app, scim)
    answers = {_forgot(client, "bob@example.com", ip=f"10.0.0.{i}").data for i in range(5)}
    assert len(answers) == 1
    assert len(session.scalars(select(MailOutbox)).all()) == 3
    throttled = [
        e
        for e in events(admin, resource_id=user_id)
        if e["action"] == "user.credentials.forgot" and e["outcome"] == "failure"
    ]
    assert len(throttled) == 2


def test_one_address_is_limited_per_minute(app, scim, client, session):
    """More than five requests a minute from one address: 429 with Retry-After."""
    # The count is kept per minute of the clock (ratelimit.count_request): eight requests
    # straddling a minute's end would start a new count. Begin well inside a minute.
    left = 60 - time.time() % 60
    if left < 15:
        time.sleep(left + 0.1)
    statuses = [_forgot(client, f"n{i}@example.com", ip="10.9.9.9").status_code for i in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
    resp = _forgot(client, "n@example.com", ip="10.9.9.9")
    assert resp.headers["Retry-After"] == "60"


def test_sso_only_accounts_get_no_reset_link(app, scim, admin, client, session):
    """An SSO-only organization's people reset at their IdP: the same answer, no mail."""
    employee(scim, "dan@example.com")
    set_settings(admin, sign_in_methods="sso_only")
    assert _forgot(client, "dan@example.com").status_code == 200
    assert session.scalar(select(MailOutbox)) is None


def test_a_locked_account_cannot_use_its_link(app, scim, admin, client, session):
    """Locked by an admin after the link went out: the lock ended the link (410), the
    password stays; locked by a stranger's wrong guesses (the link is kept for its owner),
    the POST refuses while the lock lasts (409)."""
    user_id = _with_password(app, scim)
    _forgot(client, "bob@example.com")
    token = session.scalars(select(MailOutbox)).one().body_text.split("/sso/reset/")[1].split()[0]
    assert admin.post(f"/api/v1/users/{user_id}/actions/lock", None).status_code == 200
    resp = client.post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert resp.status_code == 410
    assert admin.post(f"/api/v1/users/{user_id}/actions/unlock", None).status_code == 200
    set_settings(admin, lockout_threshold=1)
    _forgot(client, "bob@example.com", ip="10.0.0.2")
    body = session.scalars(select(MailOutbox.body_text).order_by(MailOutbox.created_at)).all()[-1]
    token = body.split("/sso/reset/")[1].split()[0]
    assert sign_in(app.test_client(), "bob@example.com", "a wrong guess").status_code == 401
    assert _status(app, scim.org_id, user_id) == "AUTO_LOCKED"
    resp = client.post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert resp.status_code == 409
    with db.reader(app)() as s:
        assert not password_verifies(app, scim.org_id, user_id, NEW)
        assert s.get(UserPassword, (scim.org_id, user_id)) is not None


def test_a_busy_node_refuses_the_reset_with_503_and_keeps_the_link(
    app, scim, client, session, tmp_path
):
    """Every argon2 slot held: 503 + Retry-After, the form again; the link still works after."""
    user_id = _with_password(app, scim)
    _forgot(client, "bob@example.com")
    body = session.scalars(select(MailOutbox)).one().body_text
    token = body.split("/sso/reset/")[1].split()[0]
    with busy_node(app, tmp_path / "slots"):
        busy = client.post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert b"Many people are signing in right now; try again in a moment." in busy.data
    assert password_verifies(app, scim.org_id, user_id, "Original-pass-phrase-31")
    done = client.post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert done.status_code == 200 and password_verifies(app, scim.org_id, user_id, NEW)


def test_forgot_lookup_searches_indexes_and_never_scans_users(app, scim, client, connection):
    """The account lookup probes (org_id, key) indexes: no scan of users or contacts."""
    if connection.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL plans tiny tables as scans")
    _with_password(app, scim)
    seen = []

    def capture(_conn, _cursor, statement, params, *_):
        seen.append((statement, params))

    event.listen(connection, "before_cursor_execute", capture)
    try:
        for identifier in ("bob@example.com", "BOB@example.com", "nobody@example.org"):
            assert _forgot(client, identifier).status_code == 200
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    lookups = [(sql, params) for sql, params in seen if "UNION" in sql and "contacts" in sql]
    assert len(lookups) == 3, [sql for sql, _ in lookups]
    assert_indexed_by_key(lookups)


def test_forgot_and_reset_events_name_the_browser(app, scim, client, session):
    """A stranger's forgot request and the reset link's use are what an investigation of a
    takeover reads first: each event they write names the browser (address, user agent) and
    an anonymous actor (nobody signed in), not "system"."""
    user_id = _with_password(app, scim)
    before = session.scalar(
        select(func.max(AuditEvent.seq)).where(AuditEvent.org_id == scim.org_id)
    )
    client.environ_base.update({"REMOTE_ADDR": "203.0.113.9", "HTTP_USER_AGENT": "probe/1.0"})
    assert client.post("/sso/forgot", data={"identifier": "bob@example.com"}).status_code == 200
    token = session.scalars(select(MailOutbox)).one().body_text.split("/sso/reset/")[1].split()[0]
    resp = client.post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert resp.status_code == 200
    with db.reader(app)() as s:
        written = s.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.org_id == scim.org_id,
                AuditEvent.seq > before,
                AuditEvent.resource_id == user_id,
                AuditEvent.action.startswith("user."),
            )
            .order_by(AuditEvent.seq)
        ).all()
    mine = list(written)
    assert {e.action for e in mine} >= {
        "user.credentials.forgot",
        "user.start_recovery",
        "user.password.set",
        "user.credentials.reset_completed",
    }
    assert {(e.actor_type, e.actor_id, e.source_ip, e.user_agent) for e in mine} == {
        ("anonymous", None, "203.0.113.9", "probe/1.0")
    }


@pytest.mark.parametrize("typed", ["bsmith-upn", "BSmith-UPN", "bob.smith", "bob@corp.example"])
def test_forgot_reaches_every_login_the_password_form_accepts(app, scim, admin, client, typed):
    """With a username format an account has three logins the password form takes: its
    login name, its SCIM userName and its e-mail. The forgot form asks for "the e-mail
    address or username of your account": each of them (under the same fold) gets the
    account a reset link, with the one answer everybody gets."""
    set_default_license(app, scim.org_id)
    set_settings(admin, username_format="{given}.{family}", default_license="Engineer")
    user = scim.create_user(
        "bsmith-upn",
        name={"givenName": "Bob", "familyName": "Smith"},
        emails=[{"type": "work", "value": "bob@corp.example", "primary": True}],
        password="Original-pass-phrase-31",
    )
    assert account(admin, user["id"])["username"] == "Bob.Smith"
    assert sign_in(app.test_client(), typed, "Original-pass-phrase-31").status_code == 303
    resp = _forgot(client, typed)
    assert resp.status_code == 200 and resp.data == _forgot(client, "nobody@corp.example").data
    with db.reader(app)() as s:
        (mail,) = s.scalars(select(MailOutbox)).all()
    assert (mail.kind, mail.recipient, mail.user_id) == (
        "reset_link",
        "bob@corp.example",
        user["id"],
    )


@pytest.mark.parametrize(
    ("page", "padding"),
    [("reset", 0), ("activate", 0), ("reset", 70_000)],
    ids=["reset", "activate", "reset-large-form"],
)
def test_a_link_page_refuses_a_password_holding_nul_and_keeps_the_link(
    app, scim, admin, client, session, page, padding
):
    """The sign-in pages refuse a request holding NUL (``web.refuse_nul``), so such a
    password could never sign in: the link pages refuse it the same way (400, the same
    page), set nothing, and the link still works; also in a form too large for the
    request-wide check to read."""
    if page == "activate":
        set_settings(admin, credentials_delivery="activation_link")
        user_id = employee(scim, "dora@example.com")["id"]
        assert admin.post(f"/api/v1/users/{user_id}/credentials/send", None).status_code == 202
    else:
        user_id = _with_password(app, scim, "dora@example.com")
        _forgot(client, "dora@example.com")
    body = session.scalars(select(MailOutbox.body_text)).one()
    token = body.split(f"/sso/{page}/")[1].split()[0]
    chosen = "Saffron-glacier\x00window-64"
    form = {"password": chosen, "confirm": chosen, "padding": "p" * padding}
    resp = client.post(f"/sso/{page}/{token}", data=form)
    assert resp.status_code == 400
    assert b"The request holds a character that is not allowed." in resp.data
    with db.reader(app)() as s:
        row = s.get(UserPassword, (scim.org_id, user_id))
        hash_before = None if row is None else row.hash
        assert s.scalars(select(CredentialToken.used_at)).all() == [None]
    if page == "reset":
        assert password_verifies(app, scim.org_id, user_id, "Original-pass-phrase-31")
    else:
        assert hash_before is None
    done = client.post(f"/sso/{page}/{token}", data={"password": NEW, "confirm": NEW})
    assert done.status_code == 200
    assert password_verifies(app, scim.org_id, user_id, NEW)


def test_a_reset_forgets_the_wrong_guesses_made_before_it(app, scim, admin, client, smtp, tmp_path):
    """A stranger's wrong passwords before the owner's reset were guesses at a password that
    is gone: they no longer count toward the next lock (they did, so two guesses after the
    reset locked the owner out again), as a whole sign-in forgets them."""
    recorder, port = smtp
    set_settings(admin, lockout_threshold=3)
    set_default_license(app, scim.org_id)
    user_id = _with_password(app, scim)
    stranger = app.test_client()
    for guess in ("guess-one-1234", "guess-two-1234"):
        assert sign_in(stranger, "bob@example.com", guess).status_code == 401
    _forgot(client, "bob@example.com")
    mail_worker(app, port, tmp_path).run_once()
    token = link_token(recorder.messages[-1], "reset")
    done = client.post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert done.status_code == 200
    for guess in ("guess-three-1234", "guess-four-1234"):
        assert sign_in(stranger, "bob@example.com", guess).status_code == 401
    assert _status(app, scim.org_id, user_id) != "AUTO_LOCKED"
    assert sign_in(app.test_client(), "bob@example.com", NEW).status_code == 303
