"""An unfinished enrolment: its TOTP key and recovery codes travel sealed, expire, and are no
factor; a pending enrolment stores nothing once the account has a factor or may not sign in."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scim_server.models import MfaFactor, MfaRecoveryCode
from sso.local import pending
from tests.sso.local.conftest import LOGIN
from tests.sso.local.test_mfa import _enrol, _require_mfa, _sign_out
from tests.support import Clock, Scim
from tests.support.local import code_now, codes_of, csrf_of, secret_of, sign_in, signed_in
from tests.support.sso import read, sign_ins

KEY = "signin_pending_totp"
CODES = "signin_pending_codes"


def _factors(app: Flask) -> int:
    with read(app) as s:
        return s.scalar(select(func.count()).select_from(MfaFactor)) or 0


def test_the_key_and_codes_are_sealed_in_the_cookie(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """Enrolment at sign-in: the cookie holds enc:v1: values, never the key or a code in clear."""
    _require_mfa(admin)
    assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa/enrol"
    body = client.get("/sso/mfa/enrol").get_data(as_text=True)
    secret = secret_of(body)
    with client.session_transaction() as sess:
        stored = sess[KEY]
        assert stored.startswith("enc:v1:") and secret not in stored
        assert secret not in repr(dict(sess))
    # The same key is offered again while it is pending (the page can be reloaded).
    assert secret_of(client.get("/sso/mfa/enrol").get_data(as_text=True)) == secret
    resp = client.post(
        "/sso/mfa/enrol", data={"code": code_now(secret, clock.now), "csrf": csrf_of(body)}
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/mfa/codes"
    with client.session_transaction() as sess:
        assert KEY not in sess
        sealed_codes = sess[CODES]
        assert sealed_codes.startswith("enc:v1:")
    shown = client.get("/sso/mfa/codes").get_data(as_text=True)
    codes = codes_of(shown)
    assert len(codes) == 10 and not any(c in sealed_codes for c in codes)
    with client.session_transaction() as sess:
        assert CODES not in sess  # shown once
    assert client.post("/sso/mfa/codes", data={"csrf": csrf_of(shown)}).status_code == 303
    assert signed_in(client) and _factors(app) == 1


def test_a_pending_key_expires(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """Past SIGNIN_PENDING_SECONDS the pending key is gone: its code is refused, a new key shown."""
    app.config["SIGNIN_PENDING_SECONDS"] = 60
    assert sign_in(client, LOGIN).status_code == 303
    body = client.get("/sso/security/totp").get_data(as_text=True)
    old = secret_of(body)
    clock.advance(seconds=61)
    resp = client.post(
        "/sso/security/totp", data={"code": code_now(old, clock.now), "csrf": csrf_of(body)}
    )
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "not correct" in page
    new = secret_of(page)
    assert new != old and _factors(app) == 0
    resp = client.post(
        "/sso/security/totp", data={"code": code_now(new, clock.now), "csrf": csrf_of(page)}
    )
    assert resp.status_code == 200 and len(codes_of(resp.get_data(as_text=True))) == 10
    assert _factors(app) == 1


def test_an_unconfirmed_key_is_no_factor(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """A key shown but never confirmed: no factor stored, the next sign-in asks for no code."""
    assert sign_in(client, LOGIN).status_code == 303
    secret = secret_of(client.get("/sso/security/totp").get_data(as_text=True))
    assert _factors(app) == 0
    _sign_out(client)
    resp = sign_in(client, LOGIN, next_path="/app")
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    # Its code proves nothing at the second-factor step either: there is no such step.
    page = client.post("/sso/mfa", data={"code": code_now(secret, clock.now), "csrf": "x"})
    assert page.status_code == 400 and _factors(app) == 0


def test_a_sealed_value_opens_only_for_its_account_and_name(app: Flask, clock: Clock) -> None:
    """Moved to another account or name, late, or damaged: it reads as absent."""
    with app.test_request_context():
        pending.put_secret("totp", "JBSWY3DPEHPK3PXP", "org-1", "user-1", clock.now)
        assert pending.take_secret("totp", "org-1", "user-1", clock.now, keep=True) == (
            "JBSWY3DPEHPK3PXP"
        )
        assert pending.take_secret("totp", "org-1", "user-2", clock.now, keep=True) is None
        assert pending.take_secret("totp", "org-2", "user-1", clock.now, keep=True) is None
        from flask import session

        session["signin_pending_codes"] = session["signin_pending_totp"]
        assert pending.take_secret("codes", "org-1", "user-1", clock.now) is None
        late = clock.now + timedelta(seconds=app.config["SIGNIN_PENDING_SECONDS"] + 1)
        assert pending.take_secret("totp", "org-1", "user-1", late, keep=True) is None
        assert "signin_pending_totp" not in session  # a late value is dropped
        pending.put_secret("totp", "JBSWY3DPEHPK3PXP", "org-1", "user-1", clock.now)
        session["signin_pending_totp"] = session["signin_pending_totp"][:-4] + "AAAA"
        assert pending.take_secret("totp", "org-1", "user-1", clock.now) is None


def test_a_pending_enrolment_is_refused_once_the_account_has_a_factor(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """require_mfa. Someone holding the password reaches the enrol step while the owner has no
    factor; the owner then enrols theirs. The first one's pending enrolment must not add a
    factor of their own and sign in without the owner's: refused, back to the sign-in."""
    _require_mfa(admin)
    intruder = app.test_client()
    assert sign_in(intruder, LOGIN).headers["Location"] == "/sso/mfa/enrol"
    page = intruder.get("/sso/mfa/enrol").get_data(as_text=True)
    _enrol(client, clock)  # the owner, in their own browser
    clock.advance(seconds=60)  # still within the intruder's pending minutes
    resp = intruder.post(
        "/sso/mfa/enrol",
        data={"code": code_now(secret_of(page), clock.now), "csrf": csrf_of(page)},
    )
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "Please sign in again" in body, body
    assert 'href="/sso/login"' in body
    assert not signed_in(intruder) and _factors(app) == 1
    # The pending sign-in is over; signing in again asks for the owner's factor.
    assert intruder.get("/sso/mfa/enrol").status_code == 400
    assert sign_in(intruder, LOGIN).headers["Location"] == "/sso/mfa"


def test_a_pending_enrolment_of_a_locked_account_stores_nothing(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """require_mfa; a pending sign-in at the enrol step; the admin locks the account. The
    enrolment is refused before anything is stored: no factor, no recovery codes."""
    _require_mfa(admin)
    assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa/enrol"
    page = client.get("/sso/mfa/enrol").get_data(as_text=True)
    assert admin.post(f"/api/v1/users/{person}/actions/lock", {"reason": "x"}).status_code == 200
    resp = client.post(
        "/sso/mfa/enrol",
        data={"code": code_now(secret_of(page), clock.now), "csrf": csrf_of(page)},
    )
    assert resp.status_code == 403 and "Account locked" in resp.get_data(as_text=True)
    assert not signed_in(client) and _factors(app) == 0
    with read(app) as s:
        assert s.scalars(select(MfaRecoveryCode)).all() == []
    assert sign_ins(app, scim.org_id)[-1].reason_code == "locked"
