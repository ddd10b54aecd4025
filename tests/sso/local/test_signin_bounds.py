"""A sign-in half done, a lock, a deactivated account: what ends sessions ends a pending sign-
in, which completes once; a lock whose time passed refuses nothing; a deactivated account's
right password is no oracle past the lockout threshold. Each failed before its fix (found by
a probe of the password sign-in)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import MfaFactor
from tests.sso.local.conftest import LOGIN
from tests.sso.local.conftest import clock as clock  # fixtures
from tests.sso.local.conftest import person as person
from tests.support import Clock, Scim
from tests.support.local import (
    code_now,
    codes_of,
    csrf_of,
    secret_of,
    sign_in,
    signed_in,
)
from tests.support.sso import read


def _require_mfa(admin: Scim) -> None:
    assert admin.put("/api/v1/settings", {"require_mfa": True}).status_code == 200


def _copy(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s session cookie, taken now."""
    name = app.config["SESSION_COOKIE_NAME"]
    other = app.test_client()
    other.set_cookie(name, client.get_cookie(name).value)  # type: ignore[union-attr]
    return other


def _enrol_to_codes(client: FlaskClient, clock: Clock) -> tuple[str, str]:
    """The forced enrolment up to the recovery-codes page (shown, not yet confirmed):
    (the TOTP secret, the codes page's CSRF token)."""
    resp = sign_in(client, LOGIN, next_path="/sso/welcome")
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/mfa/enrol"
    body = client.get("/sso/mfa/enrol").get_data(as_text=True)
    secret = secret_of(body)
    resp = client.post(
        "/sso/mfa/enrol", data={"code": code_now(secret, clock.now), "csrf": csrf_of(body)}
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/mfa/codes"
    shown = client.get("/sso/mfa/codes").get_data(as_text=True)
    assert len(codes_of(shown)) == 10
    return secret, csrf_of(shown)


# -- a half-finished sign-in outliving what ends sessions ----------------------------------


def _full_sign_in(client: FlaskClient, clock: Clock) -> str:
    """Forced enrolment through to the end; the TOTP secret."""
    secret, token = _enrol_to_codes(client, clock)
    assert client.post("/sso/mfa/codes", data={"csrf": token}).status_code == 303
    assert signed_in(client)
    return secret


def _code_step(client: FlaskClient, code: str) -> Any:
    token = csrf_of(client.get("/sso/mfa").get_data(as_text=True))
    return client.post("/sso/mfa", data={"code": code, "csrf": token})


def test_a_pending_sign_in_ends_with_an_admin_mfa_reset(
    app: Flask, client: FlaskClient, admin: Scim, person: str, clock: Clock
) -> None:
    """require_mfa: someone holding the password enrols their own authenticator and stops on
    the recovery-codes page. The owner is mailed; the admin resets the account's MFA ("every
    session ends, the person signs in again and enrols anew"). The half-finished sign-in
    should be over too: its factor no longer exists. Before the fix: confirming the codes page
    still signs in (a new session, amr claiming MFA) with no factor on the account."""
    _require_mfa(admin)
    _secret, token = _enrol_to_codes(client, clock)
    reset = admin.post(f"/api/v1/users/{person}/mfa/reset", {"reason": "not me"})
    assert reset.status_code == 200
    with read(app) as s:
        assert s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).all() == []
    resp = client.post("/sso/mfa/codes", data={"csrf": token})
    assert not signed_in(client), (resp.status_code, resp.headers.get("Location"))


def test_a_copied_pending_sign_in_signs_in_only_once(
    app: Flask, client: FlaskClient, admin: Scim, person: str, clock: Clock
) -> None:
    """A copy of the cookie taken on the recovery-codes page (a half-finished sign-in) must
    not give a second sign-in after the first one completed (passkey challenges and TOTP
    steps are single-use for that very reason). Before the fix: every post of the copy within
    SCIM_SIGNIN_PENDING_SECONDS makes a new session."""
    _require_mfa(admin)
    _secret, token = _enrol_to_codes(client, clock)
    copy = _copy(app, client)
    resp = client.post("/sso/mfa/codes", data={"csrf": token})
    assert resp.status_code == 303 and signed_in(client)
    again = copy.post("/sso/mfa/codes", data={"csrf": token})
    assert not signed_in(copy), (again.status_code, again.headers.get("Location"))


def test_a_pending_sign_in_ends_with_a_lock_and_unlock(
    app: Flask, client: FlaskClient, admin: Scim, person: str, clock: Clock
) -> None:
    """README: a lock ends every session "for good ... The reactivation or unlock gives none
    of those sessions, codes or tokens back: the person signs in again". A sign-in left on
    the recovery-codes page when the admin locks the account (a suspected takeover) should
    not complete after the unlock. Before the fix: it completes (the pending state is not bound
    to the account's session_epoch)."""
    _require_mfa(admin)
    _secret, token = _enrol_to_codes(client, clock)
    assert admin.post(f"/api/v1/users/{person}/actions/lock", {}).status_code == 200
    assert admin.post(f"/api/v1/users/{person}/actions/unlock", {}).status_code == 200
    resp = client.post("/sso/mfa/codes", data={"csrf": token})
    assert not signed_in(client), (resp.status_code, resp.headers.get("Location"))


def test_an_ended_automatic_lock_does_not_refuse_the_second_factor(
    app: Flask, client: FlaskClient, admin: Scim, person: str, clock: Clock
) -> None:
    """README: the automatic lock "ends by itself (at the next attempt, and in the worker's
    sweep)". A stranger's wrong passwords lock the account while its owner is on the code
    page; the lock's time passes; the owner types the right code. Expected: the lock is
    over and the code signs in. Before the fix: the second-factor step never releases a due lock
    (only the password step calls lockout.release_if_due): the owner's sign-in is refused
    as locked and dropped."""
    assert (
        admin.put(
            "/api/v1/settings",
            {"require_mfa": True, "lockout_threshold": 2, "lockout_minutes": 1},
        ).status_code
        == 200
    )
    secret = _full_sign_in(client, clock)
    client.delete_cookie("session", domain="localhost")
    clock.advance(60)
    assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa"
    stranger = app.test_client()
    sign_in(stranger, LOGIN, "wrong guess one")
    sign_in(stranger, LOGIN, "wrong guess two")
    assert admin.get(f"/api/v1/users/{person}").get_json()["status"] == "AUTO_LOCKED"
    clock.advance(61)  # the one-minute lock is over; the pending sign-in (600 s) is not
    resp = _code_step(client, code_now(secret, clock.now))
    assert signed_in(client), (resp.status_code, resp.get_data(as_text=True)[:300])


def test_a_deactivated_account_is_no_password_oracle_past_the_threshold(
    app: Flask, admin: Scim, person: str, clock: Clock
) -> None:
    """A deactivated account (a leaver, someone on leave, an IdP's soft delete) keeps its
    password and gets it back with the reactivation. Its wrong passwords are counted but
    never lock it (DEACTIVATED is no source of auto_lock), while its right password gets a
    page of its own ("inactive_account") instead of the generic one: anyone may guess its
    password without limit (30 a minute per address) and learns when they found it, then
    signs in once the account is reactivated. Expected: once the lockout threshold is
    reached, the right password answers as a wrong one does (or the guesses lock)."""
    assert admin.put("/api/v1/settings", {"lockout_threshold": 3}).status_code == 200
    assert admin.post(f"/api/v1/users/{person}/actions/deactivate", {}).status_code == 200
    for n in range(6):
        wrong = sign_in(app.test_client(), LOGIN, f"wrong guess number {n}")
        assert wrong.status_code == 401
    right = sign_in(app.test_client(), LOGIN)
    wrong = sign_in(app.test_client(), LOGIN, "yet another wrong guess")
    assert right.status_code == wrong.status_code, (right.status_code, wrong.status_code)
