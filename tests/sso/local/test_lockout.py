"""Lockout: distinct wrong passwords within the window lock the account, for a doubling time."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.models import AccountLockout, User
from scim_server.worker import Worker
from tests.sso.local.conftest import LOGIN
from tests.support import Clock, Scim
from tests.support.local import mails, sign_in, signed_in
from tests.support.sso import events, read, sign_ins

GENERIC = "The e-mail address or password is not correct."


@pytest.fixture(autouse=True)
def _no_address_limit(app: Flask) -> None:
    """These tests count per account; the per-address limit has its own test."""
    app.config["SIGNIN_ATTEMPTS_PER_MINUTE"] = 0


def _status(app: Flask, org_id: str, user_id: str) -> str:
    with read(app) as s:
        user = s.get(User, (org_id, user_id))
        assert user is not None
        return user.status


def _fail(client: FlaskClient, times: int, start: int = 0) -> None:
    for i in range(start, start + times):
        resp = sign_in(client, LOGIN, f"wrong password number {i}")
        assert resp.status_code == 401 and GENERIC in resp.get_data(as_text=True)


def _settings(admin: Scim, **values: object) -> None:
    resp = admin.put("/api/v1/settings", values)
    assert resp.status_code == 200, resp.get_json()


def test_lockout_after_threshold_then_auto_unlock(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """10 wrong passwords in 15 minutes: AUTO_LOCKED, mailed; 15 minutes later it ends itself."""
    _fail(client, 9)
    assert _status(app, scim.org_id, person) == "PROVISIONED"
    _fail(client, 1, start=9)
    assert _status(app, scim.org_id, person) == "AUTO_LOCKED"
    locked = mails(app, scim.org_id, "account_locked")
    assert [m.recipient for m in locked] == [LOGIN]
    lock_event = events(app, scim.org_id, "user.auto_lock")[-1]
    assert "10 failed sign-ins within 15 minutes" in lock_event.detail
    # Locked: even the right password gets the generic answer, and is not checked.
    resp = sign_in(client, LOGIN)
    assert resp.status_code == 401 and GENERIC in resp.get_data(as_text=True)
    assert sign_ins(app, scim.org_id)[-1].reason_code == "locked"
    assert admin.get(f"/api/v1/users/{person}").get_json()["status"] == "AUTO_LOCKED"
    clock.advance(15 * 60 - 1)
    assert sign_in(client, LOGIN).status_code == 401
    clock.advance(2)
    resp = sign_in(client, LOGIN)
    assert resp.status_code == 303 and signed_in(client)
    assert _status(app, scim.org_id, person) == "ACTIVE"
    unlock = events(app, scim.org_id, "user.unlock")[-1]
    assert unlock.detail == "the automatic lockout ended"


def test_failures_outside_the_window_do_not_add_up(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """Nine failures, 16 minutes, nine more: never ten within 15 minutes, never locked."""
    _fail(client, 9)
    clock.advance(16 * 60)
    _fail(client, 9, start=100)
    assert _status(app, scim.org_id, person) == "PROVISIONED"


def test_same_wrong_password_counts_once(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """The same wrong password 30 times is one failure; only a keyed hash of it is kept."""
    for _ in range(30):
        assert sign_in(client, LOGIN, "the same wrong guess").status_code == 401
    assert _status(app, scim.org_id, person) == "PROVISIONED"
    with read(app) as s:
        row = s.get(AccountLockout, (scim.org_id, person))
        assert row is not None and len(row.failures) == 1
        assert "the same wrong guess" not in str(row.failures)
        assert len(row.failures[0][0]) == 32


def test_lock_doubles_on_each_repeat_up_to_the_maximum(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """15 minutes, then 30, then 60... capped by lockout_max_minutes (here 40)."""
    _settings(admin, lockout_threshold=3, lockout_max_minutes=40)
    expected = [15, 30, 40]
    for n, minutes in enumerate(expected):
        _fail(client, 3, start=n * 10)
        assert _status(app, scim.org_id, person) == "AUTO_LOCKED"
        with read(app) as s:
            row = s.get(AccountLockout, (scim.org_id, person))
            assert row is not None
            assert (row.locked_until - clock.now).total_seconds() == minutes * 60
        clock.advance(minutes * 60)
    assert sign_in(client, LOGIN).status_code == 303  # success resets the streak
    with read(app) as s:
        assert s.get(AccountLockout, (scim.org_id, person)) is None


def test_admin_unlock_clears_the_counters(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """An admin unlock lifts the lock at once and forgets the failures and the streak."""
    _fail(client, 10)
    resp = admin.post(f"/api/v1/users/{person}/actions/unlock", {"reason": "called the desk"})
    assert resp.status_code == 200 and resp.get_json()["status"] == "PROVISIONED"
    with read(app) as s:
        assert s.get(AccountLockout, (scim.org_id, person)) is None
    _fail(client, 9, start=50)  # counting starts again from zero
    assert _status(app, scim.org_id, person) == "PROVISIONED"
    assert sign_in(client, LOGIN).status_code == 303


def test_locked_by_admin_is_never_lifted_by_time(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """LOCKED_BY_ADMIN: no password is checked, no clock ends it, the worker leaves it."""
    assert admin.post(f"/api/v1/users/{person}/actions/lock", {}).status_code == 200
    clock.advance(7 * 86400)
    assert sign_in(client, LOGIN).status_code == 401
    Worker(db.writer(app), clock=clock).run_once()
    assert _status(app, scim.org_id, person) == "LOCKED_BY_ADMIN"


def test_worker_sweep_ends_due_lockouts(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """The worker ends a lockout whose time is up, so the admin API is right without a sign-in."""
    _fail(client, 10)
    worker = Worker(db.writer(app), clock=clock)
    worker.run_once()
    assert admin.get(f"/api/v1/users/{person}").get_json()["status"] == "AUTO_LOCKED"
    clock.advance(15 * 60)
    assert worker.release_lockouts() == 1
    assert admin.get(f"/api/v1/users/{person}").get_json()["status"] == "PROVISIONED"
    assert worker.release_lockouts() == 0


def test_lockout_off(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """lockout_threshold 0: failures never lock (the per-address throttle still applies)."""
    _settings(admin, lockout_threshold=0)
    _fail(client, 12)
    assert _status(app, scim.org_id, person) == "PROVISIONED"


def test_an_automatic_lockout_does_not_lift_an_admins_require_new_password(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """require_new_password, then a stranger's ten wrong passwords: when the lockout ends (at
    the next attempt, or the worker's sweep) the account is AWAITING_NEW_PASSWORD again (SSO
    still refused) and the old password leads to "Choose a new password"."""
    resp = admin.post(f"/api/v1/users/{person}/actions/require_new_password", {})
    assert resp.status_code == 200, resp.get_json()
    _fail(client, 10)
    assert _status(app, scim.org_id, person) == "AUTO_LOCKED"
    clock.advance(15 * 60)
    assert Worker(db.writer(app), clock=clock).release_lockouts() == 1
    assert _status(app, scim.org_id, person) == "AWAITING_NEW_PASSWORD"
    # Again, ended by the next attempt this time.
    _fail(client, 10, start=20)
    assert _status(app, scim.org_id, person) == "AUTO_LOCKED"
    clock.advance(30 * 60)
    resp = sign_in(app.test_client(), LOGIN)
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith("/sso/password/change"), resp.headers["Location"]
    assert _status(app, scim.org_id, person) == "AWAITING_NEW_PASSWORD"


def test_case_and_width_variants_of_the_login_count_on_one_account(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """The login typed in other cases or in full-width letters names the same account: the
    wrong passwords behind each add up on it (no fresh count per spelling)."""
    _settings(admin, lockout_threshold=3)
    variants = (
        "ALICE@example.com",
        "\uff41\uff4c\uff49\uff43\uff45@example.com",
        "Alice@EXAMPLE.COM",
    )
    for i, login in enumerate(variants):
        assert sign_in(app.test_client(), login, f"wrong password {i}").status_code == 401
    assert _status(app, scim.org_id, person) == "AUTO_LOCKED"
    assert sign_in(client, LOGIN).status_code == 401
