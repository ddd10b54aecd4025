"""The signed-in person's own security page, and the passkey (WebAuthn) endpoints.

``/sso/security``: their factors (kind, name, when added and last used),
add an authenticator app or a passkey, remove one, new recovery codes; each change
is mailed to the account's address (``factors.tell_owner``). Behind the sign-in
session (``sso.signin.session``); each form carries the CSRF token.
The passkey endpoints serve both the security page (a signed-in person adds
one) and a pending sign-in (enrolment the organization requires, or the
second factor), and answer JSON to ``static/js/passkeys.js``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import current_app, jsonify, redirect, request

from scim_server.db import db
from scim_server.errors import DomainError
from scim_server.models import User
from scim_server.services import mfa
from scim_server.services.settings import get_settings
from scim_server.urls import link_root, public_url
from sso.errors import SsoError
from sso.local import factors, passkeys, pending, web
from sso.local import password as local
from sso.local.enrolment import enrol_page, enrol_totp_from_form, enrolment_refusal
from sso.local.views import (
    after_second_factor,
    bp,
    continue_sign_in,
    org_name_of,
    pending_at,
    status_refused,
)
from sso.local.web import BadRequestError
from sso.signin import pages
from sso.signin.session import SsoSession, current_session, end_session, speaks_for

NOTICES = {
    "totp": "Your authenticator app was added.",
    "passkey": "Your passkey was added.",
    "removed": "The factor was removed.",
}


def _signed_in(*, change: bool = False) -> tuple[SsoSession, User] | None:
    """The signed-in person; for a ``change``, only if they signed in recently.

    Adding or removing a factor is what someone holding a stolen session would do
    first, so a change needs a sign-in of the last ``SCIM_SECURITY_REAUTH_SECONDS``.
    """
    found = current_session()
    if found is None:
        return None
    if (
        change
        and web.now().timestamp() - found.auth_time > current_app.config["SECURITY_REAUTH_SECONDS"]
    ):
        return None
    s = db.writing_session()
    with s.begin():
        user = s.get(User, (found.org_id, found.user_id))
        # A session outlives a deactivation or a lock: the account is checked on every
        # request (as the console and the OIDC provider do), or a leaver's open session
        # could still add a factor or make recovery codes that outlast a later reactivation.
        vouched = speaks_for(s, found, user)
        if user is not None:
            s.expunge(user)
    if user is None or not vouched:
        return None
    return found, user


def _to_login() -> Any:
    """Sign in (again): a change to one's factors needs a recent sign-in."""
    return redirect("/sso/login?" + urlencode({"next": "/sso/security"}), 303)


@bp.post("/sign-out")
def sign_out() -> Any:
    """Anyone signed in ends their session, on the server too (``end_session``: a copy of
    the cookie, and the OIDC provider's codes and tokens issued in it, stop working), not
    only console users: someone who signed in to an application on a shared computer."""
    web.check_csrf(web.form().get("csrf"))
    end_session(db.writing_session() if current_session() is not None else None)
    return redirect("/sso/signed-out", 303)


@bp.get("/signed-out")
def signed_out() -> Any:
    return pages.message_page(
        "Signed out",
        "You are signed out. To sign in again, go back to the sign-in page.",
    )


@bp.get("/security")
def security_page() -> Any:
    who = _signed_in()
    if who is None:
        return _to_login()
    _found, user = who
    s = db.writing_session()
    with s.begin():
        described = mfa.describe(s, user)
        required = get_settings(s, user.org_id).require_mfa
        org_name = org_name_of(s, user.org_id)
    return web.page(
        "signin/security.html",
        user_name=user.login_name or user.user_name,
        mfa=described,
        required=required,
        org_name=org_name,
        notice=NOTICES.get(request.args.get("done", "")),
    )


@bp.get("/security/totp")
def add_totp_form() -> Any:
    who = _signed_in(change=True)
    if who is None:
        return _to_login()
    return enrol_page(who[1], "/sso/security/totp")


@bp.post("/security/totp")
def add_totp() -> Any:
    data = web.form()
    web.check_csrf(data.get("csrf"))
    who = _signed_in(change=True)
    if who is None:
        return _to_login()
    if not enrol_totp_from_form(who[1], data.get("code") or ""):
        return enrol_page(
            who[1], "/sso/security/totp", "That code is not correct. Try the next one.", 400
        )
    return _after_enrolment("totp", who[1])


def _after_enrolment(kind: str, user: User) -> Any:
    codes = pending.take_secret("codes", user.org_id, user.id, web.now())
    if isinstance(codes, list):
        return web.page("signin/recovery_codes.html", codes=codes, action=None)
    return redirect(f"/sso/security?done={kind}", 303)


@bp.post("/security/factors/<factor_id>/remove")
def remove_factor(factor_id: str) -> Any:
    data = web.form()
    web.check_csrf(data.get("csrf"))
    who = _signed_in(change=True)
    if who is None:
        return _to_login()
    user = who[1]
    s = db.writing_session()
    with s.begin():
        if get_settings(s, user.org_id).require_mfa and len(mfa.factors(s, user)) <= 1:
            raise BadRequestError(
                409,
                "Your organization requires a second factor: add another before removing "
                "your last one.",
            )
        try:
            removed = mfa.remove_factor(s, user, factor_id[:36], by="removed by the person")
        except DomainError as err:
            raise BadRequestError(404, str(err.detail)) from None
        factors.tell_owner(s, user, "removed", base_url=link_root(), now=web.now(), factor=removed)
    return redirect("/sso/security?done=removed", 303)


@bp.post("/security/recovery-codes")
def regenerate_codes() -> Any:
    data = web.form()
    web.check_csrf(data.get("csrf"))
    who = _signed_in(change=True)
    if who is None:
        return _to_login()
    s = db.writing_session()
    with s.begin():
        if not mfa.enrolled(s, who[1]):
            raise BadRequestError(409, "Add a second factor first: recovery codes go with one.")
        codes = mfa.new_recovery_codes(s, who[1])
        # Recovery codes are a way in too (look-up secrets): the owner hears of new ones.
        factors.tell_owner(s, who[1], "recovery_codes", base_url=link_root(), now=web.now())
    return web.page("signin/recovery_codes.html", codes=codes, action=None)


# -- passkeys -------------------------------------------------------------------------


def _rp() -> passkeys.RelyingParty:
    return passkeys.RelyingParty.from_base_url(
        public_url(), current_app.config["PRODUCT_NAME"], current_app.config["WEBAUTHN_RP_ID"]
    )


def _json_error(status: int, message: str) -> Any:
    return jsonify({"error": message}), status


def _json_refusal(err: SsoError) -> Any:
    """A refused step, as JSON the script shows; the pending sign-in is over."""
    pending.drop()
    return _json_error(err.status, err.message)


def _spent_until() -> datetime:
    """How long a used challenge is remembered: past its own deadline (``put_secret``)."""
    return web.now() + timedelta(seconds=int(current_app.config["SIGNIN_PENDING_SECONDS"]))


def _registering() -> tuple[User, pending.Pending | None] | None:
    """Who adds a passkey: the signed-in person, or a pending sign-in that must enrol."""
    who = _signed_in(change=True)
    if who is not None:
        return who[1], None
    found = pending.current(web.now())
    if found is not None and found.stage == "enrol":
        found, user = pending_at("enrol")
        return user, found
    return None


@bp.post("/passkeys/register/options")
def passkey_register_options() -> Any:
    web.json_body()
    try:
        who = _registering()
    except SsoError as err:
        return _json_refusal(err)
    if who is None:
        return _json_error(401, "Sign in first.")
    user = who[0]
    s = db.writing_session()
    with s.begin():
        existing = mfa.factors(s, user, "webauthn")
    options, challenge = passkeys.registration_options(_rp(), user, existing)
    pending.put_secret("webauthn_register", challenge, user.org_id, user.id, web.now())
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/passkeys/register")
def passkey_register() -> Any:
    body = web.json_body()
    try:
        who = _registering()
    except SsoError as err:
        return _json_refusal(err)
    stale = "This registration is no longer valid. Start again."
    if who is None:
        return _json_error(400, stale)
    user, found = who
    challenge = pending.take_secret("webauthn_register", user.org_id, user.id, web.now())
    if not isinstance(challenge, str):
        return _json_error(400, stale)
    try:
        credential_id, public_key, count = passkeys.verify_registration(_rp(), challenge, body)
    except passkeys.PasskeyError:
        return _json_error(400, "The passkey could not be registered. Try again.")
    label = body.get("label") if isinstance(body.get("label"), str) else None
    s = db.writing_session()
    try:
        with s.begin():
            locked = s.get(User, (user.org_id, user.id), with_for_update=True)
            assert locked is not None
            refusal = enrolment_refusal(s, locked, first=found is not None)
            if refusal is None:
                if not passkeys.spend_challenge(s, user.org_id, challenge, _spent_until()):
                    return _json_error(400, stale)  # a replayed registration
                had_none = not mfa.enrolled(s, locked)
                try:
                    # Refused before anything is added: the spent challenge is kept.
                    added = mfa.add_passkey(s, locked, credential_id, public_key, count, label)
                except DomainError as err:
                    return _json_error(400, str(err.detail))
                factors.tell_owner(
                    s, locked, "added", base_url=link_root(), now=web.now(), factor=added
                )
                if had_none or mfa.codes_left(s, locked) == 0:
                    codes = mfa.new_recovery_codes(s, locked)
                    pending.put_secret("codes", codes, user.org_id, user.id, web.now())
    except SsoError as err:
        refusal = err
    if refusal is not None:
        return _json_refusal(refusal)
    if found is not None:
        pending.advance(found, "codes", proved="webauthn")
        return jsonify({"redirect": "/sso/mfa/codes"})
    if isinstance(pending.take_secret("codes", user.org_id, user.id, web.now(), keep=True), list):
        return jsonify({"redirect": "/sso/security/recovery-codes/new"})
    return jsonify({"redirect": "/sso/security?done=passkey"})


@bp.get("/security/recovery-codes/new")
def show_new_codes() -> Any:
    """The codes made with a first passkey, shown once."""
    who = _signed_in()
    if who is None:
        return _to_login()
    return _after_enrolment("passkey", who[1])


@bp.post("/passkeys/authenticate/options")
def passkey_options() -> Any:
    web.json_body()
    _found, user = pending_at("mfa")
    s = db.writing_session()
    with s.begin():
        keys_ = mfa.factors(s, user, "webauthn")
    if not keys_:
        return _json_error(400, "No passkey is registered for this account.")
    options, challenge = passkeys.authentication_options(_rp(), keys_)
    pending.put_secret("webauthn_auth", challenge, user.org_id, user.id, web.now())
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/passkeys/authenticate")
def passkey_authenticate() -> Any:
    body = web.json_body()
    stale = "This sign-in is no longer valid. Start again."
    try:
        found, user = pending_at("mfa")
    except SsoError as err:
        if err.reason_code != "pending_expired":
            raise
        return _json_error(400, stale)  # the script's words, not the page's
    challenge = pending.take_secret("webauthn_auth", user.org_id, user.id, web.now())
    if not isinstance(challenge, str):
        return _json_error(400, stale)
    attempt = web.attempt()
    s = db.writing_session()
    replayed = refused = False
    stage = "done"
    with s.begin():
        locked = s.get(User, (user.org_id, user.id), with_for_update=True)
        assert locked is not None
        # The status first: a locked or deactivated account's passkey changes nothing (no
        # challenge spent, no counter moved).
        status = status_refused(s, locked, attempt)
        if status is None:
            if not passkeys.spend_challenge(s, user.org_id, challenge, _spent_until()):
                local.record_failure(
                    s, locked, "replay", "a passkey challenge used before", attempt
                )
                replayed = True
            else:
                try:
                    factor, count = passkeys.verify_authentication(
                        _rp(), challenge, body, mfa.factors(s, locked, "webauthn")
                    )
                except passkeys.PasskeyError as err:
                    local.record_failure(s, locked, "mfa_failed", str(err)[:500], attempt)
                    refused = True
                else:
                    mfa.passkey_used(s, factor, count, attempt.now)
                    stage = after_second_factor(s, locked, found, "webauthn")
    if status is not None:
        return _json_refusal(status)
    if replayed:
        pending.drop()
        return _json_error(400, stale)
    if refused:
        return _json_error(401, "The passkey was not accepted.")
    try:
        resp = continue_sign_in(s, found, stage, "webauthn")
    except SsoError as err:
        # Status or license refused at the last step: the script shows the same words.
        return _json_refusal(err)
    return jsonify({"redirect": resp.headers["Location"]})
