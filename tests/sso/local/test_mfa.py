"""Second factors: TOTP enrolment and sign-in, recovery codes, require_mfa, security page, reset."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import MfaFactor, MfaRecoveryCode
from scim_server.services import totp
from tests.sso.local.conftest import LOGIN
from tests.support import Clock, Scim
from tests.support.local import (
    code_now,
    codes_of,
    csrf_of,
    form_post,
    mails,
    secret_of,
    sign_in,
    signed_in,
)
from tests.support.sso import events, read, sign_ins


def _require_mfa(admin: Scim) -> None:
    assert admin.put("/api/v1/settings", {"require_mfa": True}).status_code == 200


def _enrol(client: FlaskClient, clock: Clock, next_path: str = "/app") -> tuple[str, list[str]]:
    """Through the forced enrolment: (the TOTP secret, the recovery codes shown)."""
    resp = sign_in(client, LOGIN, next_path=next_path)
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/mfa/enrol"
    page = client.get("/sso/mfa/enrol")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and '<img src="data:image/svg+xml' in body
    secret = secret_of(body)
    resp = client.post(
        "/sso/mfa/enrol", data={"code": code_now(secret, clock.now), "csrf": csrf_of(body)}
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/mfa/codes"
    assert not signed_in(client)
    shown = client.get("/sso/mfa/codes")
    codes = codes_of(shown.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    resp = client.post("/sso/mfa/codes", data={"csrf": csrf_of(shown.get_data(as_text=True))})
    assert resp.status_code == 303 and resp.headers["Location"] == next_path
    return secret, codes


def _sign_out(client: FlaskClient) -> None:
    client.delete_cookie("session", domain="localhost")
    assert not signed_in(client)


def _second_step(client: FlaskClient, code: str) -> Any:
    return form_post(client, "/sso/mfa", "/sso/mfa", {"code": code})


def test_require_mfa_forces_enrolment_then_totp_sign_in(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """require_mfa: enrol at sign-in (QR, code, 10 codes), then the code is asked every time."""
    _require_mfa(admin)
    secret, _codes = _enrol(client, clock)
    assert signed_in(client)
    with read(app) as s:
        factor = s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).one()
        assert factor.kind == "totp" and factor.secret.startswith("enc:v1:")
        assert secret not in factor.secret
        hashes = s.scalars(select(MfaRecoveryCode.code_hash)).all()
        assert len(hashes) == 10 and not any(c in h for c in _codes for h in hashes)
    enrolled = events(app, scim.org_id, "user.mfa.enrolled")[-1]
    assert enrolled.detail == "totp: Authenticator app" and secret not in str(enrolled.changes)
    record = sign_ins(app, scim.org_id)[-1]
    assert record.outcome == "success"
    assert events(app, scim.org_id, "signin.success")[-1].detail.endswith("(password+totp)")
    # Next sign-in: the code after the password; the step used at enrolment is not accepted.
    _sign_out(client)
    resp = sign_in(client, LOGIN, next_path="/app")
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/mfa"
    resp = _second_step(client, code_now(secret, clock.now))
    assert resp.status_code == 401 and "used already" in resp.get_data(as_text=True)
    clock.advance(30)
    resp = _second_step(client, code_now(secret, clock.now))
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    assert signed_in(client)


def test_totp_code_is_never_accepted_twice_and_drift_is_one_step(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """±1 step accepted, ±2 refused; a code (or an earlier one) is refused once used."""
    _require_mfa(admin)
    secret, _codes = _enrol(client, clock)
    clock.advance(300)
    for steps, accepted in ((-2, False), (2, False), (-1, True), (-1, False), (0, True)):
        _sign_out(client)
        assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa"
        resp = _second_step(client, code_now(secret, clock.now, steps))
        assert (resp.status_code == 303) is accepted, (steps, resp.status_code)
    # Wrong codes leave a record with the reason, never the code.
    record = sign_ins(app, scim.org_id)[-2]
    assert record.reason_code == "mfa_failed"


def test_recovery_codes_are_single_use(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """A recovery code signs in once; a second use is refused; the security page counts them."""
    _require_mfa(admin)
    _secret, codes = _enrol(client, clock)
    _sign_out(client)
    sign_in(client, LOGIN)
    resp = _second_step(client, codes[3].upper())
    assert resp.status_code == 303
    assert events(app, scim.org_id, "user.mfa.recovery_code_used")[-1].detail == (
        "9 recovery codes left"
    )
    _sign_out(client)
    sign_in(client, LOGIN)
    assert _second_step(client, codes[3]).status_code == 401
    assert _second_step(client, codes[4]).status_code == 303
    page = client.get("/sso/security").get_data(as_text=True)
    assert "8 unused recovery codes left" in page


def test_wrong_second_factor_counts_towards_lockout(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """Distinct wrong codes lock the account as wrong passwords do; the pending sign-in ends."""
    assert (
        admin.put("/api/v1/settings", {"require_mfa": True, "lockout_threshold": 3}).status_code
        == 200
    )
    _enrol(client, clock)
    _sign_out(client)
    sign_in(client, LOGIN)
    assert _second_step(client, "000001").status_code == 401
    assert _second_step(client, "000002").status_code == 401
    resp = _second_step(client, "000003")
    assert resp.status_code == 401 and "not correct" in resp.get_data(as_text=True)
    assert admin.get(f"/api/v1/users/{person}").get_json()["status"] == "AUTO_LOCKED"
    assert client.get("/sso/mfa").status_code == 400


def test_security_page_add_remove_regenerate(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """Signed in: add an authenticator app, see it, new recovery codes, remove it."""
    assert client.get("/sso/security").status_code == 303  # not signed in
    assert sign_in(client, LOGIN).status_code == 303
    page = client.get("/sso/security")
    assert page.status_code == 200 and "No second factor yet" in page.get_data(as_text=True)
    body = client.get("/sso/security/totp").get_data(as_text=True)
    secret = secret_of(body)
    resp = client.post(
        "/sso/security/totp",
        data={"code": code_now(secret, clock.now), "csrf": csrf_of(body)},
    )
    assert resp.status_code == 200 and len(codes_of(resp.get_data(as_text=True))) == 10
    page = client.get("/sso/security").get_data(as_text=True)
    assert "Authenticator app" in page and "10 unused recovery codes left" in page
    resp = form_post(client, "/sso/security", "/sso/security/recovery-codes", {})
    fresh = codes_of(resp.get_data(as_text=True))
    assert len(fresh) == 10
    with read(app) as s:
        factor = s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).one()
    resp = form_post(client, "/sso/security", f"/sso/security/factors/{factor.id}/remove", {})
    assert resp.status_code == 303
    page = client.get("/sso/security").get_data(as_text=True)
    assert "No second factor yet" in page and "0 unused recovery codes left" in page
    assert events(app, scim.org_id, "user.mfa.removed")[-1].detail.startswith("totp:")


def test_last_factor_stays_when_mfa_is_required(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """require_mfa: removing the only factor is refused with a reason; it stays."""
    _require_mfa(admin)
    _enrol(client, clock)
    with read(app) as s:
        factor = s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).one()
    resp = form_post(client, "/sso/security", f"/sso/security/factors/{factor.id}/remove", {})
    assert resp.status_code == 409 and "requires a second factor" in resp.get_data(as_text=True)
    with read(app) as s:
        assert s.get(MfaFactor, (scim.org_id, factor.id)) is not None


def test_admin_reset_mfa(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """Reset MFA: factors and codes gone, event and mail, enrolment again at next sign-in."""
    _require_mfa(admin)
    _enrol(client, clock)
    detail = admin.get(f"/api/v1/users/{person}").get_json()
    assert detail["mfa"]["enrolled"] and detail["mfa"]["factors"][0]["kind"] == "totp"
    assert "secret" not in str(detail["mfa"])
    resp = admin.post(f"/api/v1/users/{person}/mfa/reset", {"reason": "lost phone"})
    assert resp.status_code == 200
    assert resp.get_json()["mfa"] == {"enrolled": False, "factors": [], "recoveryCodesLeft": 0}
    event = events(app, scim.org_id, "user.mfa.reset")[-1]
    assert event.detail == "lost phone" and event.changes["mfa"]["before"] == ["totp"]
    assert [m.recipient for m in mails(app, scim.org_id, "mfa_reset")] == [LOGIN]
    _sign_out(client)
    assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa/enrol"
    assert admin.post("/api/v1/users/nope/mfa/reset", {}).status_code == 404
    assert admin.get(f"/api/v1/users/{person}/mfa").get_json()["enrolled"] is False


def test_enrolment_with_a_wrong_code_keeps_nothing(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """A wrong first code: the same page with a message, no factor stored."""
    _require_mfa(admin)
    sign_in(client, LOGIN)
    body = client.get("/sso/mfa/enrol").get_data(as_text=True)
    secret = secret_of(body)
    wrong = str((int(code_now(secret, clock.now)) + 1) % 10**6).zfill(6)
    resp = client.post("/sso/mfa/enrol", data={"code": wrong, "csrf": csrf_of(body)})
    assert resp.status_code == 400 and "not correct" in resp.get_data(as_text=True)
    assert secret_of(resp.get_data(as_text=True)) == secret  # the same key to try again
    with read(app) as s:
        assert s.scalars(select(MfaFactor)).all() == []
    assert totp.matching_step(secret, wrong, clock.now, after=None) is None


def test_all_digit_recovery_code_is_still_a_recovery_code(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """A recovery code typed without its dash, all digits by chance, is not taken for TOTP."""
    from sqlalchemy import update

    from scim_server.models import User
    from scim_server.services import mfa

    _require_mfa(admin)
    _enrol(client, clock)
    with read(app) as s, s.begin():
        user = s.get(User, (scim.org_id, person))
        s.execute(
            update(MfaRecoveryCode).values(code_hash=mfa.recovery_code_hash(user, "23456-78923"))
        )
    _sign_out(client)
    sign_in(client, LOGIN)
    assert _second_step(client, "2345678923").status_code == 303


def test_changing_factors_needs_a_recent_sign_in(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """A session older than SCIM_SECURITY_REAUTH_SECONDS reads the page but changes nothing."""
    assert sign_in(client, LOGIN).status_code == 303
    body = client.get("/sso/security/totp").get_data(as_text=True)
    secret = secret_of(body)
    resp = client.post(
        "/sso/security/totp", data={"code": code_now(secret, clock.now), "csrf": csrf_of(body)}
    )
    assert resp.status_code == 200
    with read(app) as s:
        factor = s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).one()
    clock.advance(app.config["SECURITY_REAUTH_SECONDS"] + 60)
    assert client.get("/sso/security").status_code == 200  # reading is fine
    resp = form_post(client, "/sso/security", f"/sso/security/factors/{factor.id}/remove", {})
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/sso/login?")
    assert client.get("/sso/security/totp").status_code == 303
    with read(app) as s:
        assert s.get(MfaFactor, (scim.org_id, factor.id)) is not None
    # Signing in again (password, then the second factor) allows the change.
    assert sign_in(client, LOGIN, next_path="/sso/security").headers["Location"] == "/sso/mfa"
    resp = _second_step(client, code_now(secret, clock.now))
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/security"
    resp = form_post(client, "/sso/security", f"/sso/security/factors/{factor.id}/remove", {})
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/security?done=removed"


def test_a_deactivated_person_s_session_no_longer_reaches_the_security_page(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """Deactivated by the IdP (Entra's PATCH) while signed in: the session is no longer
    enough to read /sso/security or to add a factor to the account, as the console and
    the OIDC provider already refuse it at the next request."""
    assert sign_in(client, LOGIN).status_code == 303
    body = client.get("/sso/security/totp").get_data(as_text=True)
    secret = secret_of(body)
    resp = scim.patch_ops(
        f"/scim/v2/Users/{person}", {"op": "Replace", "path": "active", "value": "False"}
    )
    assert resp.status_code == 200 and resp.get_json()["active"] is False
    page = client.get("/sso/security")
    assert page.status_code == 303 and page.headers["Location"].startswith("/sso/login")
    welcome = client.get("/sso/welcome")  # no longer says who is signed in
    assert welcome.status_code == 303 and welcome.headers["Location"] == "/sso/login"
    client.post(
        "/sso/security/totp", data={"code": code_now(secret, clock.now), "csrf": csrf_of(body)}
    )
    with read(app) as s:
        assert s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).all() == []


def test_the_password_alone_does_not_forget_wrong_codes(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """Someone holding the password guesses codes, typing the password again between
    guesses: the wrong codes still add up to a lock (threshold 3: two in the first round,
    the third in the second locks). A whole sign-in, password and code, forgets them."""
    assert (
        admin.put("/api/v1/settings", {"require_mfa": True, "lockout_threshold": 3}).status_code
        == 200
    )
    secret, _codes = _enrol(client, clock)
    guesses = iter(f"{n:06d}" for n in range(100001, 100100))
    _sign_out(client)
    assert sign_in(client, LOGIN).headers.get("Location") == "/sso/mfa"
    assert _second_step(client, next(guesses)).status_code == 401
    # A right code after one wrong one: the sign-in is whole, the wrong code forgotten.
    clock.advance(seconds=30)
    assert _second_step(client, code_now(secret, clock.now)).status_code == 303
    for _round in range(2):
        _sign_out(client)
        assert sign_in(client, LOGIN).headers.get("Location") == "/sso/mfa"
        assert _second_step(client, next(guesses)).status_code == 401
        if _round == 0:
            assert _second_step(client, next(guesses)).status_code == 401
    assert admin.get(f"/api/v1/users/{person}").get_json()["status"] == "AUTO_LOCKED"


def test_a_wrong_code_typed_again_in_a_new_time_step_counts_again(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """The lockout counts distinct wrong attempts, but the right TOTP code changes every 30 s:
    the same six digits in a new time step are a new guess (or whoever holds the password
    types the same few codes in every step, forever). Threshold 3: two codes, one of them
    twice, in one step count two; the first again in the next step locks."""
    assert (
        admin.put("/api/v1/settings", {"require_mfa": True, "lockout_threshold": 3}).status_code
        == 200
    )
    secret, _codes = _enrol(client, clock)
    _sign_out(client)
    clock.advance(seconds=60)
    # Never right in this step, the next, or either's drift window.
    valid = {code_now(secret, clock.now, d) for d in (-1, 0, 1, 2)}
    first, second = [g for g in ("111111", "222222", "333333", "444444") if g not in valid][:2]
    assert sign_in(client, LOGIN).headers.get("Location") == "/sso/mfa"
    for guess in (first, first, second):
        assert _second_step(client, guess).status_code == 401
    assert admin.get(f"/api/v1/users/{person}").get_json()["status"] == "ACTIVE"
    clock.advance(seconds=30)
    assert _second_step(client, first).status_code == 401
    assert admin.get(f"/api/v1/users/{person}").get_json()["status"] == "AUTO_LOCKED"


# -- a lock while the second factor is asked ---------------------------------------------


def _at_the_second_factor_then_locked(
    client: FlaskClient, admin: Scim, person: str, clock: Clock
) -> tuple[str, list[str], str]:
    """Enrolled; a new sign-in waits at the code when an admin locks the account:
    (the TOTP secret, the recovery codes, the code page's CSRF token)."""
    _require_mfa(admin)
    secret, codes = _enrol(client, clock)
    _sign_out(client)
    clock.advance(seconds=90)
    assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa"
    token = csrf_of(client.get("/sso/mfa").get_data(as_text=True))
    resp = admin.post(f"/api/v1/users/{person}/actions/lock", {"reason": "stolen laptop"})
    assert resp.status_code == 200, resp.get_json()
    return secret, codes, token


def test_a_recovery_code_is_not_spent_on_a_locked_account(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """Locked while the sign-in waits at the second factor: a recovery code typed then is
    refused as locked and stays unused; the refusal is recorded, the pending sign-in ends."""
    _secret, codes, token = _at_the_second_factor_then_locked(client, admin, person, clock)
    resp = client.post("/sso/mfa", data={"code": codes[0], "csrf": token})
    assert resp.status_code == 403 and "Account locked" in resp.get_data(as_text=True)
    assert not signed_in(client)
    with read(app) as s:
        used = s.scalars(
            select(MfaRecoveryCode).where(
                MfaRecoveryCode.user_id == person, MfaRecoveryCode.used_at.is_not(None)
            )
        ).all()
    assert used == []
    assert events(app, scim.org_id, "user.mfa.recovery_code_used") == []
    assert sign_ins(app, scim.org_id)[-1].reason_code == "locked"
    assert client.get("/sso/mfa").status_code == 400  # the pending sign-in is over


def test_a_locked_account_answers_the_same_to_a_right_and_a_wrong_code(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """Locked while the sign-in waits at the code: a wrong code and the right one, each sent
    with the same pending cookie, get the same answer (no oracle on the code), and the
    right one's time step is not used up (the owner may still type it once unlocked)."""
    secret, _codes, token = _at_the_second_factor_then_locked(client, admin, person, clock)
    cookie = client.get_cookie("session", domain="localhost")
    assert cookie is not None
    wrong = client.post("/sso/mfa", data={"code": "000000", "csrf": token})
    client.set_cookie("session", cookie.value, domain="localhost")
    right = client.post("/sso/mfa", data={"code": code_now(secret, clock.now), "csrf": token})
    assert wrong.status_code == right.status_code == 403
    assert wrong.get_data() == right.get_data()
    assert not signed_in(client)
    with read(app) as s:
        factor = s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).one()
        before = factor.last_step
    assert before is None or before < totp.step_of(clock.now)


def test_the_second_factor_cannot_be_skipped(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """At the second factor, a post to another step's page (the recovery codes, a new
    password, an enrolment) is refused: nothing signs in, nothing is enrolled or changed."""
    _require_mfa(admin)
    _enrol(client, clock)
    for url in ("/sso/mfa/codes", "/sso/password/change", "/sso/mfa/enrol"):
        _sign_out(client)
        assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa"
        token = csrf_of(client.get("/sso/mfa").get_data(as_text=True))
        chosen = "Saffron-glacier-window-64"
        resp = client.post(
            url, data={"password": chosen, "confirm": chosen, "code": "123456", "csrf": token}
        )
        assert resp.status_code == 400 and "Sign-in expired" in resp.get_data(as_text=True), url
        assert not signed_in(client)
    assert client.get("/sso/security").status_code == 303
    with read(app) as s:
        assert len(s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).all()) == 1
    assert [e.detail for e in events(app, scim.org_id, "user.password.set")] == ["set by the test"]


def test_a_sign_in_half_done_ends_when_the_organization_goes_sso_only(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """The password proved, the second factor still to come, the admin sets SSO-only: the
    step refuses as the password step now does (it completed, wrote ``signin.success``
    and moved the last login)."""
    _require_mfa(admin)
    secret, _codes = _enrol(client, clock)
    clock.advance(60)
    other = app.test_client()
    assert sign_in(other, LOGIN).headers["Location"] == "/sso/mfa"
    token = csrf_of(other.get("/sso/mfa").get_data(as_text=True))
    assert admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}).status_code == 200
    successes = len(events(app, scim.org_id, "signin.success"))
    assert "Sign-in expired" in other.get("/sso/mfa").get_data(as_text=True)
    resp = other.post("/sso/mfa", data={"code": code_now(secret, clock.now), "csrf": token})
    assert "Sign-in expired" in resp.get_data(as_text=True)
    assert not signed_in(other)
    assert len(events(app, scim.org_id, "signin.success")) == successes
