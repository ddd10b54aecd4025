"""The enrolment a sign-in goes through when the organization requires a second factor.

The pages of the ``enrol`` and ``codes`` stages of a pending sign-in (``views.pending_at``),
on the local blueprint; ``security`` enrols further factors of a signed-in person through
the same ``enrol_totp_from_form``. Nothing is stored for an account that has a factor since
(its owner's) or that was locked or deactivated meanwhile (``enrolment_refusal``).
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from scim_server.db import db
from scim_server.models import User
from scim_server.services import mfa, totp
from scim_server.urls import link_root
from sso.connections.sealing import current_secret
from sso.errors import SsoError
from sso.local import factors, pending, web
from sso.local import password as local
from sso.local.views import bp, check_still_none, continue_sign_in, org_name_of, pending_at
from sso.signin.decision import status_refusal


def enrolment_refusal(s: Session, user: User, *, first: bool) -> SsoError | None:
    """Why no factor may be added now, recorded (caller's transaction, the row locked).

    ``first``: the enrol step of a pending sign-in (``check_still_none``). Any
    enrolment: the account's status (locked or deactivated since: nothing stored).
    """
    if first:
        check_still_none(s, user)
    refusal = status_refusal(user, local.PENDING_ALLOWED)
    if refusal is not None:
        local.record_failure(s, user, refusal.reason_code, refusal.detail, web.attempt())
    return refusal


def totp_setup(s: Session, user: User, secret: str) -> dict[str, Any]:
    """What the enrolment page shows: the QR code, the secret in groups of four."""
    issuer = org_name_of(s, user.org_id) or current_app.config["PRODUCT_NAME"]
    uri = totp.provisioning_uri(secret, user.login_name or user.user_name, issuer)
    return {
        "qr": factors.qr_data_uri(uri),
        "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "org_name": org_name_of(s, user.org_id),
    }


@bp.get("/mfa/enrol")
def enrol_form() -> Any:
    _found, user = pending_at("enrol")
    return enrol_page(user, "/sso/mfa/enrol")


def enrol_page(user: User, action: str, problem: str | None = None, status: int = 200) -> Any:
    """The QR code of the key being enrolled (a new one when none is pending or it expired)."""
    secret = pending.take_secret("totp", user.org_id, user.id, web.now(), keep=True)
    if not isinstance(secret, str):
        secret = totp.new_secret()
        pending.put_secret("totp", secret, user.org_id, user.id, web.now())
    s = db.writing_session()
    with s.begin():
        setup = totp_setup(s, user, secret)
    return web.page(
        "signin/mfa_enrol.html",
        status,
        problem=problem,
        action=action,
        forced=action == "/sso/mfa/enrol",
        **setup,
    )


@bp.post("/mfa/enrol")
def enrol() -> Any:
    data = web.form()
    web.check_csrf(data.get("csrf"))
    found, user = pending_at("enrol")
    ok = enrol_totp_from_form(user, data.get("code") or "", first=True)
    if not ok:
        return enrol_page(
            user, "/sso/mfa/enrol", "That code is not correct. Try the next one.", 400
        )
    return continue_sign_in(db.writing_session(), found, "codes", "totp")


def enrol_totp_from_form(user: User, code: str, *, first: bool = False) -> bool:
    """Keep the authenticator whose secret is in the session if ``code`` proves it.

    The first factor brings ten recovery codes, kept (sealed) in the session until shown once.
    The account's owner is mailed of the new factor (``factors.tell_owner``), the first too.
    ``first``: the enrol step of a pending sign-in. ``SsoError`` (nothing stored) when
    ``enrolment_refusal`` says no.
    """
    secret = pending.take_secret("totp", user.org_id, user.id, web.now(), keep=True)
    if not isinstance(secret, str) or len(code) > 16:
        return False
    s = db.writing_session()
    with s.begin():
        locked = s.get(User, (user.org_id, user.id), with_for_update=True)
        assert locked is not None
        refusal = enrolment_refusal(s, locked, first=first)
        if refusal is None:
            had_none = not mfa.enrolled(s, locked)
            now = web.now()
            factor = factors.enrol_totp(s, current_secret(), locked, secret, code, now)
            if factor is None:
                s.rollback()
                return False
            factors.tell_owner(s, locked, "added", base_url=link_root(), now=now, factor=factor)
            if had_none or mfa.codes_left(s, locked) == 0:
                codes = mfa.new_recovery_codes(s, locked)
                pending.put_secret("codes", codes, user.org_id, user.id, web.now())
    if refusal is not None:
        raise refusal
    pending.take("totp")
    return True


@bp.get("/mfa/codes")
def recovery_codes() -> Any:
    """The recovery codes, once; then the sign-in goes on."""
    _found, user = pending_at("codes")
    codes = pending.take_secret("codes", user.org_id, user.id, web.now())
    return web.page(
        "signin/recovery_codes.html",
        codes=codes if isinstance(codes, list) else [],
        action="/sso/mfa/codes",
    )


@bp.post("/mfa/codes")
def after_codes() -> Any:
    data = web.form()
    web.check_csrf(data.get("csrf"))
    found, _user = pending_at("codes")
    return continue_sign_in(db.writing_session(), found, "done")
