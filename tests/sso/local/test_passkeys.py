"""Passkeys (WebAuthn) as a second factor: registration and sign-in with a software authenticator."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import MfaFactor
from tests.sso.local.conftest import LOGIN
from tests.support import Clock, Scim
from tests.support.authenticator import SoftAuthenticator
from tests.support.local import codes_of, csrf_of, sign_in, signed_in
from tests.support.sso import events, read


def _csrf(client: FlaskClient, page: str) -> str:
    return csrf_of(client.get(page).get_data(as_text=True))


def _post(client: FlaskClient, url: str, csrf: str, body: dict[str, Any]) -> Any:
    return client.post(url, json=body, headers={"X-CSRF-Token": csrf})


def _register(client: FlaskClient, key: SoftAuthenticator, page: str) -> Any:
    csrf = _csrf(client, page)
    options = _post(client, "/sso/passkeys/register/options", csrf, {})
    assert options.status_code == 200, options.get_data(as_text=True)
    opts = options.get_json()
    assert opts["rp"]["id"] == "localhost" and opts["attestation"] == "none"
    return _post(client, "/sso/passkeys/register", csrf, {"credential": key.register(opts)})


def _sign_in_with_passkey(client: FlaskClient, key: SoftAuthenticator, **kw: Any) -> Any:
    assert sign_in(client, LOGIN, next_path="/app").headers["Location"] == "/sso/mfa"
    page = client.get("/sso/mfa").get_data(as_text=True)
    assert 'data-passkey="authenticate"' in page and "js/passkeys.js" in page
    csrf = csrf_of(page)
    options = _post(client, "/sso/passkeys/authenticate/options", csrf, {})
    assert options.status_code == 200
    opts = options.get_json()
    return _post(
        client, "/sso/passkeys/authenticate", csrf, {"credential": key.authenticate(opts, **kw)}
    )


def test_register_on_security_page_then_sign_in(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """A signed-in person adds a passkey; the next sign-in asks for it and accepts it."""
    key = SoftAuthenticator()
    assert sign_in(client, LOGIN).status_code == 303
    resp = _register(client, key, "/sso/security")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"redirect": "/sso/security/recovery-codes/new"}
    codes = codes_of(client.get("/sso/security/recovery-codes/new").get_data(as_text=True))
    assert len(codes) == 10
    with read(app) as s:
        factor = s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).one()
        assert factor.kind == "webauthn" and factor.sign_count == 0
    assert events(app, scim.org_id, "user.mfa.enrolled")[-1].detail == "webauthn: Passkey"
    client.delete_cookie("session", domain="localhost")
    resp = _sign_in_with_passkey(client, key)
    assert resp.status_code == 200 and resp.get_json() == {"redirect": "/app"}
    assert signed_in(client)
    with read(app) as s:
        factor = s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).one()
        assert factor.sign_count == 1 and factor.last_used_at is not None
    assert events(app, scim.org_id, "signin.success")[-1].detail.endswith("(password+webauthn)")


def test_forced_enrolment_with_a_passkey(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """require_mfa: a passkey instead of an app; recovery codes shown; then signed in."""
    assert admin.put("/api/v1/settings", {"require_mfa": True}).status_code == 200
    assert sign_in(client, LOGIN, next_path="/app").headers["Location"] == "/sso/mfa/enrol"
    resp = _register(client, SoftAuthenticator(), "/sso/mfa/enrol")
    assert resp.get_json() == {"redirect": "/sso/mfa/codes"}
    page = client.get("/sso/mfa/codes").get_data(as_text=True)
    assert len(codes_of(page)) == 10
    resp = client.post("/sso/mfa/codes", data={"csrf": csrf_of(page)})
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    assert signed_in(client)


def test_refused_passkeys(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """Another origin, another key, a counter going back, a replayed challenge: all refused."""
    key = SoftAuthenticator()
    sign_in(client, LOGIN)
    assert _register(client, key, "/sso/security").status_code == 200
    client.delete_cookie("session", domain="localhost")
    resp = _sign_in_with_passkey(client, key, origin="https://evil.example")
    assert resp.status_code == 401 and not signed_in(client)
    client.delete_cookie("session", domain="localhost")
    stranger = SoftAuthenticator(credential_id=key.credential_id)  # same id, other key
    assert _sign_in_with_passkey(client, stranger).status_code == 401
    client.delete_cookie("session", domain="localhost")
    assert _sign_in_with_passkey(client, key, count=5).status_code == 200
    client.delete_cookie("session", domain="localhost")
    assert _sign_in_with_passkey(client, key, count=3).status_code == 401  # cloned?
    # The challenge is single use: a second answer to it finds none.
    client.delete_cookie("session", domain="localhost")
    sign_in(client, LOGIN)
    csrf = _csrf(client, "/sso/mfa")
    opts = _post(client, "/sso/passkeys/authenticate/options", csrf, {}).get_json()
    answer = {"credential": key.authenticate(opts, count=6)}
    assert _post(client, "/sso/passkeys/authenticate", csrf, answer).status_code == 200
    sign_in(client, LOGIN)
    csrf = _csrf(client, "/sso/mfa")
    assert _post(client, "/sso/passkeys/authenticate", csrf, answer).status_code == 400


def test_passkey_endpoints_refuse_bad_input(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """No session, wrong type, no CSRF token, junk: clear errors, nothing stored."""
    resp = client.post("/sso/passkeys/register/options", json={})
    assert resp.status_code == 400  # no CSRF token in a new browser
    sign_in(client, LOGIN)
    csrf = _csrf(client, "/sso/security")
    resp = client.post(
        "/sso/passkeys/register",
        data="x",
        headers={"X-CSRF-Token": csrf},
        content_type="text/plain",
    )
    assert resp.status_code == 415
    resp = _post(client, "/sso/passkeys/register", csrf, {"credential": {"id": "x"}})
    assert resp.status_code == 400 and "error" in resp.get_json()
    _post(client, "/sso/passkeys/register/options", csrf, {})
    resp = _post(client, "/sso/passkeys/register", csrf, {"credential": {"id": "x"}})
    assert resp.status_code == 400
    with read(app) as s:
        assert s.scalars(select(MfaFactor)).all() == []


def test_passkey_sign_in_refused_at_the_last_step_answers_json(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """The passkey is right but the account was deactivated meanwhile: JSON the script shows."""
    key = SoftAuthenticator()
    sign_in(client, LOGIN)
    assert _register(client, key, "/sso/security").status_code == 200
    client.delete_cookie("session", domain="localhost")
    assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa"
    csrf = _csrf(client, "/sso/mfa")
    opts = _post(client, "/sso/passkeys/authenticate/options", csrf, {}).get_json()
    assert admin.post(f"/api/v1/users/{person}/actions/deactivate", {}).status_code == 200
    resp = _post(client, "/sso/passkeys/authenticate", csrf, {"credential": key.authenticate(opts)})
    assert resp.status_code == 403 and "not active" in resp.get_json()["error"]
    assert not signed_in(client)


def test_an_assertion_replayed_with_the_earlier_cookie_is_refused(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """A challenge is used once (WebAuthn L2 §13.4.3), also when the earlier cookie, which
    still holds it, is sent again with the same answer (a proxy log, a HAR file). Synced
    passkeys keep their counter at 0: the counter check catches nothing."""
    key = SoftAuthenticator()
    sign_in(client, LOGIN)
    assert _register(client, key, "/sso/security").status_code == 200
    client.delete_cookie("session", domain="localhost")
    assert sign_in(client, LOGIN, next_path="/app").headers["Location"] == "/sso/mfa"
    csrf = _csrf(client, "/sso/mfa")
    opts = _post(client, "/sso/passkeys/authenticate/options", csrf, {}).get_json()
    before = client.get_cookie("session", domain="localhost")
    assert before is not None
    answer = {"credential": key.authenticate(opts, count=0)}
    assert _post(client, "/sso/passkeys/authenticate", csrf, answer).status_code == 200
    assert signed_in(client)
    client.delete_cookie("session", domain="localhost")
    client.set_cookie("session", before.value, domain="localhost")
    replay = _post(client, "/sso/passkeys/authenticate", csrf, answer)
    assert replay.status_code == 400 and "error" in replay.get_json()
    assert not signed_in(client)


def test_a_registration_replayed_with_the_earlier_cookie_is_refused(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """The registration's challenge is used once too: the person removes a passkey; the
    earlier cookie and the same answer sent again do not put it back."""
    key = SoftAuthenticator()
    sign_in(client, LOGIN)
    csrf = _csrf(client, "/sso/security")
    opts = _post(client, "/sso/passkeys/register/options", csrf, {}).get_json()
    before = client.get_cookie("session", domain="localhost")
    assert before is not None
    answer = {"credential": key.register(opts)}
    assert _post(client, "/sso/passkeys/register", csrf, answer).status_code == 200
    with read(app) as s:
        factor_id = s.scalars(select(MfaFactor.id).where(MfaFactor.user_id == person)).one()
    resp = client.post(
        f"/sso/security/factors/{factor_id}/remove", data={"csrf": _csrf(client, "/sso/security")}
    )
    assert resp.status_code == 303
    client.set_cookie("session", before.value, domain="localhost")
    replay = _post(client, "/sso/passkeys/register", csrf, answer)
    assert replay.status_code == 400 and "error" in replay.get_json()
    with read(app) as s:
        assert s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).all() == []


def test_a_pending_enrolment_adds_no_passkey_once_the_account_has_a_factor(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """require_mfa: someone holding the password is at the enrol step; the owner enrols an
    authenticator app meanwhile. Their passkey is refused (JSON the script shows), the
    pending sign-in ends, and the account keeps the owner's factor only."""
    from tests.sso.local.test_mfa import _enrol

    assert admin.put("/api/v1/settings", {"require_mfa": True}).status_code == 200
    intruder = app.test_client()
    assert sign_in(intruder, LOGIN).headers["Location"] == "/sso/mfa/enrol"
    csrf = _csrf(intruder, "/sso/mfa/enrol")
    opts = _post(intruder, "/sso/passkeys/register/options", csrf, {}).get_json()
    _enrol(client, clock)  # the owner
    resp = _post(
        intruder, "/sso/passkeys/register", csrf, {"credential": SoftAuthenticator().register(opts)}
    )
    assert resp.status_code == 400 and "sign in again" in resp.get_json()["error"]
    assert not signed_in(intruder)
    with read(app) as s:
        kinds = s.scalars(select(MfaFactor.kind).where(MfaFactor.user_id == person)).all()
    assert kinds == ["totp"]
    assert intruder.get("/sso/mfa/codes").status_code == 400


def test_a_passkey_changes_nothing_on_a_locked_account(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """Locked while the sign-in waits at the passkey: the right passkey is refused as locked
    (JSON the script shows) before anything is written (its counter and last use stay),
    the refusal is recorded and the pending sign-in ends."""
    key = SoftAuthenticator()
    sign_in(client, LOGIN)
    assert _register(client, key, "/sso/security").status_code == 200
    client.delete_cookie("session", domain="localhost")
    assert sign_in(client, LOGIN).headers["Location"] == "/sso/mfa"
    csrf = _csrf(client, "/sso/mfa")
    opts = _post(client, "/sso/passkeys/authenticate/options", csrf, {}).get_json()
    assert admin.post(f"/api/v1/users/{person}/actions/lock", {}).status_code == 200
    resp = _post(client, "/sso/passkeys/authenticate", csrf, {"credential": key.authenticate(opts)})
    assert resp.status_code == 403 and "locked" in resp.get_json()["error"]
    assert not signed_in(client)
    with read(app) as s:
        factor = s.scalars(select(MfaFactor).where(MfaFactor.user_id == person)).one()
        assert factor.sign_count == 0 and factor.last_used_at is None
    assert events(app, scim.org_id, "signin.failure")[-1].detail.endswith("LOCKED_BY_ADMIN")
    assert client.get("/sso/mfa").status_code == 400


def test_a_demanded_change_comes_after_the_passkey(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """An admin demands a new password of an account with a passkey: the passkey first, then
    "Choose a new password" (the script is sent there), then signed in."""
    key = SoftAuthenticator()
    sign_in(client, LOGIN)
    assert _register(client, key, "/sso/security").status_code == 200
    client.delete_cookie("session", domain="localhost")
    assert admin.post(f"/api/v1/users/{person}/actions/require_new_password", {}).status_code == 200
    resp = _sign_in_with_passkey(client, key)
    assert resp.status_code == 200 and resp.get_json() == {"redirect": "/sso/password/change"}
    assert not signed_in(client)
    chosen = "Saffron-glacier-window-64"
    page = client.get("/sso/password/change").get_data(as_text=True)
    resp = client.post(
        "/sso/password/change",
        data={"password": chosen, "confirm": chosen, "csrf": csrf_of(page)},
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    assert signed_in(client)
    assert events(app, scim.org_id, "signin.success")[-1].detail.endswith("(password+webauthn)")
