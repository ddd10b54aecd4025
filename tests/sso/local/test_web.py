"""sso.local.web: an unknown account's refusal is padded to what a known one's takes; the
audit context of the sign-in pages (who acts, from which browser)."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scim_server.models import AuditEvent
from sso.extension import sso_extension
from sso.local import web
from tests.sso.local.conftest import LOGIN
from tests.support import Clock, Scim
from tests.support.local import form_post, person_with_password, sign_in, signed_in
from tests.support.sso import read


def test_unknown_refusal_sleeps_up_to_the_known_median(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Known refusals are remembered; an unknown one sleeps the difference (capped), never more."""
    slept: list[float] = []
    monkeypatch.setattr(web.time, "sleep", slept.append)
    monkeypatch.setattr(
        sso_extension(app), "refusal_seconds", type(sso_extension(app).refusal_seconds)(maxlen=31)
    )
    with app.app_context():
        web.even_out(time.perf_counter(), account_found=False)
        assert slept == []  # nothing known yet: nothing to match
        recent = sso_extension(app).refusal_seconds
        recent.extend([0.2, 0.3, 0.25])
        web.even_out(time.perf_counter(), account_found=False)
        assert len(slept) == 1 and 0.2 < slept[0] <= 0.25
        web.even_out(time.perf_counter() - 1.0, account_found=False)  # already slower
        assert len(slept) == 1
        recent.extend([5.0] * 10)
        web.even_out(time.perf_counter(), account_found=False)
        assert slept[-1] == web.MAX_PAD_SECONDS
        web.even_out(time.perf_counter() - 0.01, account_found=True)
        assert len(recent) == 14 and recent[-1] >= 0.01


def _since(app: Flask, org_id: str, user_id: str, after: int) -> list[AuditEvent]:
    """The account's ``user.*`` events after ``after`` (its chain's position), but an admin's."""
    with read(app) as s:
        return list(
            s.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.org_id == org_id,
                    AuditEvent.seq > after,
                    AuditEvent.resource_id == user_id,
                    AuditEvent.action.startswith("user."),
                    AuditEvent.actor_type != "admin",
                )
                .order_by(AuditEvent.seq)
            )
        )


def _head(app: Flask, org_id: str) -> int:
    with read(app) as s:
        return int(s.scalar(select(func.max(AuditEvent.seq)).where(AuditEvent.org_id == org_id)))


def test_the_person_s_own_events_name_them_and_their_browser(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """What a person does on the sign-in pages (enrol a factor, the first sign-in, a recovery
    code, the demanded new password, new codes on /sso/security) is recorded with them as
    the actor (pending or signed in) and their browser's address and user agent."""
    from tests.sso.local.test_mfa import _enrol, _require_mfa, _sign_out

    _require_mfa(admin)
    start = _head(app, scim.org_id)
    client.environ_base.update({"REMOTE_ADDR": "203.0.113.9", "HTTP_USER_AGENT": "probe/1.0"})
    _secret, codes = _enrol(client, clock)
    _sign_out(client)
    assert admin.post(f"/api/v1/users/{person}/actions/require_new_password", {}).status_code == 200
    assert sign_in(client, LOGIN, next_path="/app").headers["Location"] == "/sso/mfa"
    resp = form_post(client, "/sso/mfa", "/sso/mfa", {"code": codes[0]})
    assert resp.headers["Location"] == "/sso/password/change"
    chosen = "Saffron-glacier-window-64"
    resp = form_post(
        client,
        "/sso/password/change",
        "/sso/password/change",
        {"password": chosen, "confirm": chosen},
    )
    assert resp.headers["Location"] == "/app"
    assert form_post(client, "/sso/security", "/sso/security/recovery-codes", {}).status_code == 200
    written = _since(app, scim.org_id, person, start)
    assert {e.action for e in written} >= {
        "user.mfa.enrolled",
        "user.first_sign_in",
        "user.mfa.recovery_code_used",
        "user.password.set",
        "user.complete_recovery",
        "user.mfa.recovery_codes",
    }
    assert {(e.actor_type, e.actor_id, e.actor_name) for e in written} == {("user", person, LOGIN)}
    assert {(e.source_ip, e.user_agent) for e in written} == {("203.0.113.9", "probe/1.0")}


def test_a_stranger_s_events_name_their_browser(
    app: Flask, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """Wrong passwords for bob from a browser signed in as alice lock bob's account: the
    automatic lock is recorded with an anonymous actor (the password form proves nobody
    yet; alice's session is no word on who typed bob's) and the browser's address and
    user agent."""
    bob = person_with_password(app, scim, "bob@example.com")
    assert admin.put("/api/v1/settings", {"lockout_threshold": 2}).status_code == 200
    stranger = app.test_client()
    stranger.environ_base.update({"REMOTE_ADDR": "198.51.100.4", "HTTP_USER_AGENT": "curl/8"})
    assert sign_in(stranger, LOGIN).status_code == 303 and signed_in(stranger)
    start = _head(app, scim.org_id)
    for wrong in ("wrong password one", "wrong password two"):
        assert sign_in(stranger, "bob@example.com", wrong).status_code == 401
    (locked,) = [e for e in _since(app, scim.org_id, bob, start) if e.action == "user.auto_lock"]
    assert (locked.actor_type, locked.actor_id, locked.source_ip, locked.user_agent) == (
        "anonymous",
        None,
        "198.51.100.4",
        "curl/8",
    )
