"""Password sign-in on /sso/login: the password step, generic refusals, forced change, next."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import unicodedata
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import User, UserPassword
from scim_server.services import passwords
from sso.provider.clients import create_client
from tests.sso.local.conftest import LOGIN
from tests.support import Clock, Scim
from tests.support.admin_api import admin_of
from tests.support.credentials import password_verifies
from tests.support.dns_server import add_verified_domain
from tests.support.local import (
    PASSWORD,
    code_now,
    csrf_of,
    forgot,
    form_post,
    give_password,
    mail_bodies,
    mails,
    sign_in,
    signed_in,
)
from tests.support.sso import events, make_person, read, sign_ins

GENERIC = "The e-mail address or password is not correct."


def _user(app: Flask, org_id: str, user_id: str) -> User:
    with read(app) as s:
        user = s.get(User, (org_id, user_id))
        assert user is not None
        return user


def test_email_step_leads_to_password_form(client: FlaskClient, person: str) -> None:
    """An address of an organization without SSO: the password form, with the forgot link."""
    resp = client.post("/sso/login", data={"email": LOGIN, "next": "/app"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert 'action="/sso/login/password"' in body and 'href="/sso/forgot"' in body
    assert 'type="password"' in body and 'value="/app"' in body
    assert "<script" not in body and "style=" not in body


def test_sign_in_with_password(app: Flask, client: FlaskClient, scim: Scim, person: str) -> None:
    """The right password: 303 to next, a session, ACTIVE, signin.success and a record."""
    resp = sign_in(client, LOGIN, next_path="/app/home")
    assert resp.status_code == 303 and resp.headers["Location"] == "/app/home"
    assert signed_in(client)
    user = _user(app, scim.org_id, person)
    assert user.status == "ACTIVE" and user.last_login_at is not None
    record = sign_ins(app, scim.org_id)[-1]
    assert (record.outcome, record.protocol, record.user_id) == ("success", "password", person)
    assert record.connection_id is None
    event = events(app, scim.org_id)[-1]
    assert (event.action, event.resource_id) == ("signin.success", person)
    assert PASSWORD not in str(event.explanation) and PASSWORD not in (event.detail or "")


def test_wrong_password_and_unknown_user_get_the_same_answer(
    app: Flask, client: FlaskClient, scim: Scim, person: str
) -> None:
    """A wrong password and an unknown account: one generic page, status and words alike."""
    wrong = sign_in(client, LOGIN, "not the password at all")
    unknown = sign_in(client, "nobody@example.com", "not the password at all")
    for resp in (wrong, unknown):
        assert resp.status_code == 401 and GENERIC in resp.get_data(as_text=True)
        assert not signed_in(client)
    strip = lambda r: r.get_data(as_text=True).replace("nobody@example.com", LOGIN)  # noqa: E731
    assert strip(wrong) == strip(unknown)
    record = sign_ins(app, scim.org_id)[-1]
    assert (record.outcome, record.reason_code) == ("failure", "bad_password")
    assert "not the password" not in (record.detail or "")
    assert _user(app, scim.org_id, person).status == "PROVISIONED"


def test_username_signs_in_too(app: Flask, client: FlaskClient, scim: Scim, person: str) -> None:
    """The SCIM userName (here the address, any case) names the account as well."""
    resp = sign_in(client, "ALICE@Example.com")
    assert resp.status_code == 303


def test_same_login_in_two_organizations_is_refused_generically(
    app: Flask, client: FlaskClient, scim: Scim, other_scim: Scim, person: str
) -> None:
    """Two accounts named alike in two password organizations: no guess, the generic answer."""
    other = make_person(app, other_scim, LOGIN)
    give_password(app, other_scim.org_id, other)
    resp = sign_in(client, LOGIN)
    assert resp.status_code == 401 and GENERIC in resp.get_data(as_text=True)
    for org in (scim.org_id, other_scim.org_id):
        assert sign_ins(app, org)[-1].reason_code == "ambiguous_account"


def test_domain_decides_the_organization(
    app: Flask, client: FlaskClient, scim: Scim, other_scim: Scim, person: str, admin: Scim
) -> None:
    """With example.com registered to one organization, its account is the one: no ambiguity."""
    other = make_person(app, other_scim, LOGIN)
    give_password(app, other_scim.org_id, other)
    add_verified_domain(admin, "example.com")
    resp = sign_in(client, LOGIN)
    assert resp.status_code == 303
    assert sign_ins(app, scim.org_id)[-1].user_id == person


def test_a_pending_claim_decides_nothing(
    app: Flask, client: FlaskClient, scim: Scim, other_scim: Scim, person: str, admin: Scim
) -> None:
    """Another organization's unverified claim of example.com does not take the address: the
    password sign-in still reaches the one account (the claimant's admin proved nothing)."""
    attacker = admin_of(other_scim)
    assert attacker.post("/api/v1/sso/domains", {"domain": "example.com"}).status_code == 201
    resp = sign_in(client, LOGIN)
    assert resp.status_code == 303
    assert sign_ins(app, scim.org_id)[-1].user_id == person
    assert sign_ins(app, other_scim.org_id) == []


def test_sso_only_organization_refuses_passwords(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str
) -> None:
    """sign_in_methods sso_only: the password is never checked; the same generic answer."""
    assert admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}).status_code == 200
    resp = sign_in(client, LOGIN)
    assert resp.status_code == 401 and GENERIC in resp.get_data(as_text=True)
    assert not signed_in(client)


def test_refusals_of_status_and_license(
    app: Flask, client: FlaskClient, scim: Scim, clock: Clock
) -> None:
    """The right password of a deactivated or unlicensed account: the SSO refusals, recorded."""
    inactive = make_person(app, scim, "ina@example.com", status="DEACTIVATED")
    give_password(app, scim.org_id, inactive)
    resp = sign_in(client, "ina@example.com")
    assert resp.status_code == 403 and "Account not active" in resp.get_data(as_text=True)
    assert sign_ins(app, scim.org_id)[-1].reason_code == "inactive_account"
    unlicensed = make_person(app, scim, "bob@example.com", licensed=False)
    give_password(app, scim.org_id, unlicensed)
    resp = sign_in(client, "bob@example.com")
    assert resp.status_code == 403 and "No license" in resp.get_data(as_text=True)
    assert sign_ins(app, scim.org_id)[-1].reason_code == "missing_license"
    assert not signed_in(client)


def test_rehash_when_parameters_change(
    app: Flask, client: FlaskClient, scim: Scim, person: str
) -> None:
    """A hash made with older argon2 parameters is replaced at sign-in, same password."""
    with read(app) as s:
        before = s.get(UserPassword, (scim.org_id, person)).hash
    app.config["ARGON2_TIME_COST"] = 2
    assert sign_in(client, LOGIN).status_code == 303
    with read(app) as s:
        after = s.get(UserPassword, (scim.org_id, person)).hash
    assert after != before and "t=2" in after and "t=1" in before
    hashing = passwords.Hashing.from_config(app.config)
    assert passwords.verify_password(hashing, after, PASSWORD) == (True, False)


def test_a_password_set_in_nfc_signs_in_typed_in_nfd(
    app: Flask, client: FlaskClient, scim: Scim, person: str
) -> None:
    """NIST SP 800-63B §5.1.1.2: passwords are normalised (NFKC) before hashing, so one set
    composed signs in typed decomposed (some input methods, a password manager filled on
    another platform)."""
    chosen = unicodedata.normalize("NFC", "Crème brûlée à la façon de Zoë 42")
    give_password(app, scim.org_id, person, chosen)
    typed = unicodedata.normalize("NFD", chosen)
    assert typed != chosen
    resp = sign_in(client, LOGIN, typed, next_path="/app")
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"


def test_a_hash_made_before_normalisation_still_signs_in_and_is_replaced(
    app: Flask, client: FlaskClient, scim: Scim, person: str
) -> None:
    """A hash of the raw, decomposed password (made before passwords were normalised) still
    matches what the person types, and is replaced at sign-in by the hash of its NFKC form."""
    typed = unicodedata.normalize("NFD", "Crème brûlée à la façon de Zoë 42")
    hashing = passwords.Hashing.from_config(app.config)
    legacy = hashing.hasher().hash(typed)
    with read(app) as s, s.begin():
        s.get(UserPassword, (scim.org_id, person)).hash = legacy
    assert sign_in(client, LOGIN, typed).status_code == 303
    with read(app) as s:
        after = s.get(UserPassword, (scim.org_id, person)).hash
    assert after != legacy
    hashing.hasher().verify(after, unicodedata.normalize("NFKC", typed))


# -- temporary passwords ---------------------------------------------------------------


def _temporary(app: Flask, scim: Scim, clock: Clock, days: int = 7) -> tuple[str, str]:
    user_id = make_person(app, scim, "tim@example.com")
    temp = passwords.generate_temporary(passwords.PasswordPolicy())
    give_password(
        app,
        scim.org_id,
        user_id,
        temp,
        temporary=True,
        must_change=True,
        expires_at=clock.now + timedelta(days=days),
    )
    with read(app) as s, s.begin():
        from scim_server.services import lifecycle

        lifecycle.transition(s, s.get(User, (scim.org_id, user_id)), "require_new_password")
    return user_id, temp


def test_temporary_password_leads_to_change_first(
    app: Flask, client: FlaskClient, scim: Scim, clock: Clock
) -> None:
    """A temporary password: the change page before anything; the new one ends the state."""
    user_id, temp = _temporary(app, scim, clock)
    resp = sign_in(client, "tim@example.com", temp, next_path="/app")
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/password/change"
    assert not signed_in(client)  # a pending sign-in is not a sign-in
    page = client.get("/sso/password/change")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and 'autocomplete="new-password"' in body
    assert "Your password was temporary" in body and "You were asked" not in body
    # The policy's refusals, each naming its rule; nothing typed comes back.
    for bad, words in (
        ("xq7v", "too short"),
        ("password1234", "too common"),
        ("tim@example.com is me", "must not contain your username"),
        (temp, "not the one you were given"),
    ):
        resp = form_post(
            client,
            "/sso/password/change",
            "/sso/password/change",
            {"password": bad, "confirm": bad},
        )
        text = resp.get_data(as_text=True)
        assert resp.status_code == 400 and words in text, (bad, text)
        assert bad not in text
    resp = form_post(
        client,
        "/sso/password/change",
        "/sso/password/change",
        {"password": "a new long phrase of mine", "confirm": "another"},
    )
    assert resp.status_code == 400 and "not the same" in resp.get_data(as_text=True)
    resp = form_post(
        client,
        "/sso/password/change",
        "/sso/password/change",
        {"password": "violet tractor humming", "confirm": "violet tractor humming"},
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    assert signed_in(client)
    user = _user(app, scim.org_id, user_id)
    assert user.status == "ACTIVE"
    with read(app) as s:
        row = s.get(UserPassword, (scim.org_id, user_id))
        assert not row.temporary and not row.must_change
    assert [m.recipient for m in mails(app, scim.org_id, "password_changed")] == ["tim@example.com"]
    actions = [e.action for e in events(app, scim.org_id, "user.")]
    assert "user.password.set" in actions and "user.complete_recovery" in actions
    # The old temporary password is gone, the new one works.
    client.get("/sso/login")
    assert sign_in(client, "tim@example.com", temp).status_code == 401
    assert sign_in(client, "tim@example.com", "violet tractor humming").status_code == 303


def test_expired_temporary_password_is_refused_clearly(
    app: Flask, client: FlaskClient, scim: Scim, clock: Clock
) -> None:
    """After its expiry, the temporary password says so (only to who typed it right)."""
    _user_id, temp = _temporary(app, scim, clock, days=1)
    clock.advance(86400 + 1)
    resp = sign_in(client, "tim@example.com", temp)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 403 and "Temporary password expired" in body
    assert sign_ins(app, scim.org_id)[-1].reason_code == "temporary_password_expired"
    assert client.get("/sso/password/change").status_code == 400


def test_pending_change_expires_and_is_not_a_session(
    app: Flask, client: FlaskClient, scim: Scim, clock: Clock
) -> None:
    """The pending change dies after its few minutes; a broken cookie is a clear refusal."""
    _user_id, temp = _temporary(app, scim, clock)
    sign_in(client, "tim@example.com", temp)
    clock.advance(app.config["SIGNIN_PENDING_SECONDS"] + 1)
    resp = client.get("/sso/password/change")
    assert resp.status_code == 400 and "Sign-in expired" in resp.get_data(as_text=True)
    client.set_cookie("session", "garbage.not.signed", domain="localhost")
    resp = client.get("/sso/mfa")
    assert resp.status_code == 400 and "Sign-in expired" in resp.get_data(as_text=True)


def test_admin_password_change_ends_a_pending_sign_in(
    app: Flask, client: FlaskClient, scim: Scim, clock: Clock
) -> None:
    """A pending sign-in is bound to the password it proved: a new password ends it."""
    user_id, temp = _temporary(app, scim, clock)
    sign_in(client, "tim@example.com", temp)
    give_password(app, scim.org_id, user_id, "an entirely different phrase", temporary=True)
    resp = client.get("/sso/password/change")
    assert resp.status_code == 400 and "Sign-in expired" in resp.get_data(as_text=True)


def test_a_forced_change_after_an_admin_lock_changes_nothing(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, clock: Clock
) -> None:
    """Someone signs in with a temporary password; the admin, suspecting a takeover, locks
    the account. The pending change is refused before anything changes: no new password
    (else the cookie holder's password is the account's once it is unlocked), no mail."""
    user_id, temp = _temporary(app, scim, clock)
    assert sign_in(client, "tim@example.com", temp).headers["Location"] == "/sso/password/change"
    with read(app) as s:
        before = s.get(UserPassword, (scim.org_id, user_id)).hash
    assert admin.post(f"/api/v1/users/{user_id}/actions/lock", {"reason": "x"}).status_code == 200
    chosen = "violet tractor humming loudly"
    resp = form_post(
        client,
        "/sso/password/change",
        "/sso/password/change",
        {"password": chosen, "confirm": chosen},
    )
    assert resp.status_code == 403 and "Account locked" in resp.get_data(as_text=True)
    assert not signed_in(client)
    with read(app) as s:
        assert s.get(UserPassword, (scim.org_id, user_id)).hash == before
    assert mails(app, scim.org_id, "password_changed") == []
    assert _user(app, scim.org_id, user_id).status == "LOCKED_BY_ADMIN"
    assert sign_ins(app, scim.org_id)[-1].reason_code == "locked"


# -- bad input -------------------------------------------------------------------------


def test_bad_input_is_refused_clearly_and_changes_nothing(
    app: Flask, client: FlaskClient, scim: Scim, person: str
) -> None:
    """Wrong content type, a 1 MB password, an empty one: clear pages, no record, no count."""
    before = len(sign_ins(app, scim.org_id))
    resp = client.post(
        "/sso/login/password", json={"login": LOGIN, "password": PASSWORD, "next": "/"}
    )
    assert resp.status_code == 415 and "form" in resp.get_data(as_text=True)
    huge = "x" * (1024 * 1024)
    resp = sign_in(client, LOGIN, huge)
    assert resp.status_code == 413 and resp.mimetype == "text/html"
    long = "x" * (passwords.MAX_INPUT_CHARS + 1)
    resp = sign_in(client, LOGIN, long)
    assert resp.status_code == 413 and "too long" in resp.get_data(as_text=True)
    resp = sign_in(client, LOGIN, "")
    assert resp.status_code == 400 and "Enter your password" in resp.get_data(as_text=True)
    resp = client.post("/sso/login", data="email=a", content_type="text/plain")
    assert resp.status_code == 415
    assert len(sign_ins(app, scim.org_id)) == before
    with read(app) as s:
        from scim_server.models import AccountLockout

        assert s.scalars(select(AccountLockout)).all() == []
    assert not signed_in(client)


def test_forms_need_their_csrf_token(
    app: Flask, client: FlaskClient, scim: Scim, clock: Clock
) -> None:
    """A pending step's form posted without (or with a wrong) token: 400, nothing changed."""
    user_id, temp = _temporary(app, scim, clock)
    sign_in(client, "tim@example.com", temp)
    resp = client.post(
        "/sso/password/change",
        data={"password": "violet tractor humming", "confirm": "violet tractor humming"},
    )
    assert resp.status_code == 400 and "no longer valid" in resp.get_data(as_text=True)
    assert _user(app, scim.org_id, user_id).status == "AWAITING_NEW_PASSWORD"


def test_throttle_per_address(app: Flask, client: FlaskClient, scim: Scim, person: str) -> None:
    """Over the per-address limit: 429 with Retry-After, the password not even checked."""
    app.config["SIGNIN_ATTEMPTS_PER_MINUTE"] = 2
    assert sign_in(client, LOGIN, "wrong one here").status_code == 401
    assert sign_in(client, LOGIN, "wrong two here").status_code == 401
    resp = sign_in(client, LOGIN)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "60"
    assert "Too many attempts" in resp.get_data(as_text=True)
    assert not signed_in(client)


# -- the product's OIDC authorize flow ------------------------------------------------

REDIRECT = "https://product.example.com/callback"


def test_oidc_authorize_continues_after_password_sign_in(
    app: Flask, client: FlaskClient, scim: Scim, person: str
) -> None:
    """authorize → /sso/login → password → authorize again → a code for this person."""
    with read(app) as s:
        product, _secret = create_client(s, "Product", [REDIRECT])
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    query = {
        "response_type": "code",
        "client_id": product.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "st",
        "nonce": "n",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    resp = client.get("/oauth/authorize", query_string=query)
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/sso/login?next=")
    next_path = parse_qs(urlsplit(resp.headers["Location"]).query)["next"][0]
    page = client.post("/sso/login", data={"email": LOGIN, "next": next_path})
    assert page.status_code == 200 and "/sso/login/password" in page.get_data(as_text=True)
    resp = sign_in(client, LOGIN, next_path=next_path)
    assert resp.status_code == 303 and resp.headers["Location"] == next_path
    resp = client.get(next_path)
    assert resp.status_code == 302 and resp.headers["Location"].startswith(REDIRECT + "?")
    assert parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]


def test_sign_in_during_recovery_ends_it(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """Someone asked for a reset, the person still knows the password: RECOVERY ends, links die."""
    with read(app) as s, s.begin():
        from scim_server.services import lifecycle

        user = s.get(User, (scim.org_id, person))
        token = passwords.issue_link(s, user, "reset", timedelta(minutes=60), sent_to=None)
        lifecycle.transition(s, user, "start_recovery")
    resp = sign_in(client, LOGIN)
    assert resp.status_code == 303 and signed_in(client)
    assert _user(app, scim.org_id, person).status == "ACTIVE"
    with read(app) as s:
        assert passwords.find_link(s, token, "reset") is None
    assert events(app, scim.org_id, "user.complete_recovery")[-1].detail == (
        "signed in with the current password"
    )


def test_password_allowed_with_sso_offers_both(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, saml_connection: Any, person: str
) -> None:
    """password_allowed + a connection: the password form and a button to the IdP.

    Left automatic, the same organization is sso_only (it has SSO): straight to the IdP.
    """
    resp = client.post("/sso/login", data={"email": LOGIN, "next": "/app"})
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith(f"/sso/saml/{saml_connection.id}/start")
    assert sign_in(client, LOGIN).status_code == 401  # sso_only: no password sign-in
    assert admin.put("/api/v1/settings", {"sign_in_methods": "password_allowed"}).status_code == 200
    resp = client.post("/sso/login", data={"email": LOGIN, "next": "/app"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'action="/sso/login/password"' in body
    assert f'href="/sso/saml/{saml_connection.id}/start?next=%2Fapp"' in body
    assert sign_in(client, LOGIN).status_code == 303
    assert admin.put("/api/v1/settings", {"sign_in_methods": "password_only"}).status_code == 200
    body = client.post("/sso/login", data={"email": LOGIN}).get_data(as_text=True)
    assert "/sso/saml/" not in body and 'type="password"' in body


def _owner_with_an_app(app: Flask, client: FlaskClient, admin: Scim, clock: Clock) -> str:
    """require_mfa, and the owner enrolled an authenticator app: its secret."""
    from tests.sso.local.test_mfa import _enrol, _require_mfa, _sign_out

    _require_mfa(admin)
    secret, _codes = _enrol(client, clock)
    _sign_out(client)
    return secret


def test_the_password_alone_does_not_end_recovery(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """The owner's password leaked; they ask for a reset link to replace it. Whoever holds
    the password types it and stops at the second factor: nobody signed in, so RECOVERY and
    the owner's link stay (else each such attempt kills every new link)."""
    _owner_with_an_app(app, client, admin, clock)
    assert forgot(client, LOGIN).status_code == 200
    (body,) = mail_bodies(app, scim.org_id, "reset_link")
    token = body.split("/sso/reset/")[1].split()[0]
    intruder = app.test_client()
    assert sign_in(intruder, LOGIN).headers["Location"] == "/sso/mfa"
    assert _user(app, scim.org_id, person).status == "RECOVERY"
    new = "Saffron-glacier-window-64"
    resp = client.post(f"/sso/reset/{token}", data={"password": new, "confirm": new})
    assert resp.status_code == 200, resp.status_code
    assert sign_in(intruder, LOGIN).status_code == 401  # the leaked password is gone


def test_a_whole_sign_in_with_a_second_factor_ends_recovery(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """The person asked for a link, then remembered the password: with password and code the
    sign-in is whole, and only then RECOVERY ends and the link dies."""
    secret = _owner_with_an_app(app, client, admin, clock)
    assert forgot(client, LOGIN).status_code == 200
    (body,) = mail_bodies(app, scim.org_id, "reset_link")
    token = body.split("/sso/reset/")[1].split()[0]
    clock.advance(seconds=30)
    assert sign_in(client, LOGIN, next_path="/app").headers["Location"] == "/sso/mfa"
    page = client.get("/sso/mfa").get_data(as_text=True)
    resp = client.post(
        "/sso/mfa", data={"code": code_now(secret, clock.now), "csrf": csrf_of(page)}
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    assert _user(app, scim.org_id, person).status == "ACTIVE"
    with read(app) as s:
        assert passwords.find_link(s, token, "reset") is None
    assert events(app, scim.org_id, "user.complete_recovery")[-1].detail == (
        "signed in with the current password"
    )


# -- a demanded new password and the second factor --------------------------------------

CHOSEN = "Saffron-glacier-window-64"


def test_a_demanded_change_waits_for_the_second_factor(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """An account with an authenticator app; its admin demands a new password (the old one
    leaked). Whoever holds only the old password goes to the second factor, never to the
    change page: the password stays the owner's, and nothing is changed or recorded."""
    _owner_with_an_app(app, client, admin, clock)
    resp = admin.post(f"/api/v1/users/{person}/actions/require_new_password", {})
    assert resp.status_code == 200, resp.get_json()
    intruder = app.test_client()
    resp = sign_in(intruder, LOGIN)
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/mfa"
    token = csrf_of(intruder.get("/sso/mfa").get_data(as_text=True))
    resp = intruder.post(
        "/sso/password/change", data={"password": CHOSEN, "confirm": CHOSEN, "csrf": token}
    )
    # Not this sign-in's step: refused, the pending sign-in ends.
    assert resp.status_code == 400 and "Sign-in expired" in resp.get_data(as_text=True)
    assert not signed_in(intruder)
    assert password_verifies(app, scim.org_id, person, PASSWORD)
    assert not password_verifies(app, scim.org_id, person, CHOSEN)
    assert [e.detail for e in events(app, scim.org_id, "user.password.set")] == ["set by the test"]
    assert mails(app, scim.org_id, "password_changed") == []
    assert _user(app, scim.org_id, person).status == "AWAITING_NEW_PASSWORD"


def test_the_owner_proves_the_factor_then_chooses_the_password(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """The owner: password, then the code, then "Choose a new password", then signed in with
    both proofs; the demand is met and the new password signs in."""
    secret = _owner_with_an_app(app, client, admin, clock)
    assert admin.post(f"/api/v1/users/{person}/actions/require_new_password", {}).status_code == 200
    clock.advance(seconds=30)
    assert sign_in(client, LOGIN, next_path="/app").headers["Location"] == "/sso/mfa"
    resp = form_post(client, "/sso/mfa", "/sso/mfa", {"code": code_now(secret, clock.now)})
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/password/change"
    assert not signed_in(client)
    # The page says why: an admin's demand, not a temporary password (it was the owner's own).
    body = client.get("/sso/password/change").get_data(as_text=True)
    assert "You were asked to choose a new password" in body and "temporary" not in body
    resp = form_post(
        client,
        "/sso/password/change",
        "/sso/password/change",
        {"password": CHOSEN, "confirm": CHOSEN},
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    assert signed_in(client)
    assert password_verifies(app, scim.org_id, person, CHOSEN)
    assert _user(app, scim.org_id, person).status == "ACTIVE"
    assert events(app, scim.org_id, "signin.success")[-1].detail.endswith("(password+totp)")
    assert [m.recipient for m in mails(app, scim.org_id, "password_changed")] == [LOGIN]


def test_the_password_alone_forgets_no_failures_while_a_change_is_demanded(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """Threshold 3, an account with a factor and a demanded change: two wrong passwords, the
    right one (which proves too little to forget them), then a third wrong one locks."""
    _owner_with_an_app(app, client, admin, clock)
    assert admin.put("/api/v1/settings", {"lockout_threshold": 3}).status_code == 200
    assert admin.post(f"/api/v1/users/{person}/actions/require_new_password", {}).status_code == 200
    for wrong in ("wrong password one", "wrong password two"):
        assert sign_in(app.test_client(), LOGIN, wrong).status_code == 401
    assert sign_in(app.test_client(), LOGIN).headers["Location"] == "/sso/mfa"
    assert sign_in(app.test_client(), LOGIN, "wrong password three").status_code == 401
    assert _user(app, scim.org_id, person).status == "AUTO_LOCKED"


def test_a_password_chosen_on_the_change_page_ends_the_reset_link(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """An admin demands a new password; someone asks for a reset link; the person signs in
    and chooses a new password on the change page. The link mailed before dies with the
    password it was to replace (410), and the chosen password stays."""
    assert admin.post(f"/api/v1/users/{person}/actions/require_new_password", {}).status_code == 200
    assert forgot(client, LOGIN).status_code == 200
    (body,) = mail_bodies(app, scim.org_id, "reset_link")
    token = body.split("/sso/reset/")[1].split()[0]
    assert sign_in(client, LOGIN).headers["Location"] == "/sso/password/change"
    resp = form_post(
        client,
        "/sso/password/change",
        "/sso/password/change",
        {"password": CHOSEN, "confirm": CHOSEN},
    )
    assert resp.status_code == 303 and signed_in(client)
    other = "Quartz-meadow-lantern-97"
    used = app.test_client().post(f"/sso/reset/{token}", data={"password": other, "confirm": other})
    assert used.status_code == 410
    assert password_verifies(app, scim.org_id, person, CHOSEN)
    assert _user(app, scim.org_id, person).status == "ACTIVE"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "/\\evil.com",
        "https://evil.com",
        "/\t/evil.com",
        "\\\\evil",
        "javascript:x",
        "/%0a/evil",
        " //evil.com",
        "http:/evil.com",
    ],
)
def test_next_never_leads_to_another_site(
    client: FlaskClient, scim: Scim, person: str, target: str
) -> None:
    """After the password, ``next`` is a path on this server or the default page: never an
    open redirect, whatever spelling of another site it holds."""
    resp = sign_in(client, LOGIN, next_path=target)
    assert resp.status_code == 303
    location = resp.headers["Location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert "evil" not in location or location == target


def test_unknown_wrong_locked_and_deactivated_get_one_answer(
    app: Flask, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """An unknown login, a wrong password, the right password of an account an admin locked,
    a wrong password of a deactivated one: the same status and page, so the form tells
    nobody which accounts exist or what became of them."""
    unknown = sign_in(app.test_client(), "nobody@example.com", "wrong password 1")
    wrong = sign_in(app.test_client(), LOGIN, "wrong password 2")
    assert admin.post(f"/api/v1/users/{person}/actions/lock", {}).status_code == 200
    locked = sign_in(app.test_client(), LOGIN)
    assert admin.post(f"/api/v1/users/{person}/actions/deactivate", {}).status_code == 200
    deactivated = sign_in(app.test_client(), LOGIN, "wrong password 3")
    answers = (unknown, wrong, locked, deactivated)
    assert {r.status_code for r in answers} == {401}
    pages = {
        re.sub(r'name="csrf" value="[^"]+"', "", r.get_data(as_text=True)).replace(
            "nobody@example.com", LOGIN
        )
        for r in answers
    }
    assert len(pages) == 1 and GENERIC in pages.pop()
