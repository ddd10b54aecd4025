"""The local sign-in pages under ``/sso``: password, forced change, second factor.

Thin handlers: read the form (``web.form``), call ``password``/``factors``,
render. Until the last step the person holds only a pending sign-in
(``pending``); the last step ends like an SSO sign-in (``password.finish``,
then ``start_session``) and goes to ``next`` (the OIDC authorize flow, when
the product sent the person here). The enrolment stages' pages are ``enrolment``'s.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, redirect
from sqlalchemy.orm import Session

from scim_server.db import db
from scim_server.models import Organization, User
from scim_server.services import credentials, lockout, mail, mfa, passwords
from scim_server.services.addresses import user_address
from scim_server.services.settings import get_settings, passwords_allowed
from scim_server.slots import NoSlotError
from sso.connections.sealing import current_secret
from sso.errors import SsoError
from sso.local import factors, pending, web
from sso.local import password as local
from sso.local.web import BadRequestError
from sso.signin import pages
from sso.signin.amr import local_amr
from sso.signin.decision import status_refusal
from sso.signin.session import ended_id, start_session
from sso.signin.targets import safe_next

bp = Blueprint("local", __name__, url_prefix="/sso")

STAGE_URLS = {
    "change": "/sso/password/change",
    "mfa": "/sso/mfa",
    "enrol": "/sso/mfa/enrol",
    "codes": "/sso/mfa/codes",
}
MAX_LOGIN = 320


@bp.errorhandler(BadRequestError)
def _bad_request(err: BadRequestError) -> Any:
    return pages.message_page("Invalid request", err.message, status=err.status)


bp.before_request(web.refuse_nul)
bp.before_request(web.audit_actor)


# Refusals that end the pending sign-in: nothing it could still send would be accepted
# (its time is up, or the account was locked or deactivated meanwhile).
ENDS_PENDING = frozenset({"pending_expired", "locked", "inactive_account"})


@bp.errorhandler(SsoError)
def _refused(err: SsoError) -> Any:
    if err.reason_code in ENDS_PENDING:
        pending.drop()
    return web.refusal(err)


def password_page(
    login: str,
    next_path: str,
    *,
    problem: str | None = None,
    status: int = 200,
    sso_url: str | None = None,
) -> Any:
    return web.page(
        "signin/password.html",
        status,
        login=login,
        next_path=next_path,
        problem=problem,
        sso_url=sso_url,
    )


# -- the password ---------------------------------------------------------------------


@bp.post("/login/password")
def sign_in_with_password() -> Any:
    """Check the password: an answer as generic as the failure, or the next step."""
    data = web.form()
    # The form's token: without it a page elsewhere could sign the visitor's browser in as
    # its own account (login CSRF), and what they then enrol or type would be its.
    web.check_csrf(data.get("csrf"))
    login = (data.get("login") or "").strip()
    secret = data.get("password") or ""
    next_path = safe_next(data.get("next"))
    if not login or len(login) > MAX_LOGIN:
        return pages.login_page(next_path, "", "Enter your e-mail address or username.", 400)
    if len(secret) > passwords.MAX_INPUT_CHARS:
        # Refused before any hashing: no person types this much.
        return password_page(
            login,
            next_path,
            status=413,
            problem=f"The password is too long (at most {passwords.MAX_INPUT_CHARS} characters).",
        )
    if not secret:
        return password_page(login, next_path, problem="Enter your password.", status=400)
    web.throttle()
    started = time.perf_counter()
    attempt = web.attempt()
    s = db.writing_session()
    try:
        verified = local.check_password(s, login, secret, attempt, read=db.lookup)
    except NoSlotError:
        return web.busy(password_page(login, next_path, problem=web.BUSY), "password sign-in")
    except SsoError as err:
        if isinstance(err, local.CredentialsRefusedError):
            web.even_out(started, err.account_found)
        if err.reason_code == "invalid_credentials":
            return password_page(login, next_path, problem=err.message, status=401)
        return web.refusal(err)
    if verified.stage == "done":
        return _finish(s, verified.org_id, verified.user_id, ("password",), next_path)
    pending.begin(
        verified.org_id,
        verified.user_id,
        verified.stage,
        next_path,
        verified.password_hash,
        attempt.now,
        verified.epoch,
    )
    return redirect(STAGE_URLS[verified.stage], 303)


def _finish(s: Session, org_id: str, user_id: str, proved: tuple[str, ...], next_path: str) -> Any:
    how = "+".join(dict.fromkeys(proved))
    user = local.finish(s, org_id, user_id, how, web.attempt())
    pending.drop()
    start_session(user.org_id, user.id, how, None, local_amr(proved), user.session_epoch)
    return redirect(next_path, 303)


def pending_at(stage: str) -> tuple[pending.Pending, User]:
    """The pending sign-in at ``stage``, its account, and the password it was proved with."""
    found = pending.current(web.now())
    if found is None or found.stage != stage:
        raise SsoError("pending_expired", f"no pending sign-in at {stage!r}")
    s = db.writing_session()
    with s.begin():
        user = s.get(User, (found.org_id, found.user_id))
        row = passwords.current_password(s, user) if user is not None else None
        if user is None or row is None or pending.fingerprint(row.hash) != found.password:
            raise SsoError("pending_expired", "the account or its password changed meanwhile")
        if user.status in local.PENDING_ALLOWED and (user.session_epoch or 0) != found.epoch:
            # Its factors reset, or locked or deactivated since and then unlocked or
            # reactivated (a lock that stands is the step's own answer: ``status_refused``):
            # what ends the account's sessions ends a sign-in half done too.
            raise SsoError("pending_expired", "the account's sessions were ended meanwhile")
        if ended_id(s, found.org_id, pending.spent_id(found)):
            raise SsoError("pending_expired", "this sign-in was completed already")
        if not passwords_allowed(s, user.org_id, get_settings(s, user.org_id)):
            # SSO-only since the password was proved: the password step would refuse now.
            raise SsoError("pending_expired", "the organization no longer takes passwords")
        if stage == "enrol":
            check_still_none(s, user)
        s.expunge(user)
    return found, user


def status_refused(s: Session, user: User, attempt: local.Attempt) -> SsoError | None:
    """Why this step must stop for the account's status now (locked or deactivated since the
    password was proved), recorded in the caller's transaction (the row locked); None if it
    may go on. Checked first, before a code or passkey is looked at: nothing is spent or
    stored, and a right code and a wrong one get the same answer (no oracle on the code)."""
    # An automatic lock whose time is up ends here too, as at the password step: the owner on
    # the second factor's page is not refused for a stranger's guesses once it has passed.
    lockout.release_if_due(s, user, attempt.now)
    refusal = status_refusal(user, local.PENDING_ALLOWED)
    if refusal is not None:
        local.record_failure(s, user, refusal.reason_code, refusal.detail, attempt)
    return refusal


def check_still_none(s: Session, user: User) -> None:
    """The enrol step is for an account with no factor: once it has one (its owner enrolled
    meanwhile), this sign-in must prove that one, not add its own and go on without it."""
    if mfa.enrolled(s, user):
        raise SsoError("pending_expired", "a factor was enrolled since the password was proved")


def continue_sign_in(
    s: Session,
    found: pending.Pending,
    stage: str,
    proved: str | None = None,
    password_hash: str | None = None,
    epoch: int | None = None,
) -> Any:
    """The sign-in's next step; ``password_hash`` and ``epoch``: a password chosen on its
    way, which moved both (the sign-in stays bound to the account as it is now)."""
    if stage == "done":
        if not pending.spend(s, found):
            # A copy of this browser's cookie completed it first: one sign-in, one session.
            raise SsoError("pending_expired", "this sign-in was completed already")
        return _finish(
            s,
            found.org_id,
            found.user_id,
            found.factors + ((proved,) if proved else ()),
            found.next_path,
        )
    pending.advance(found, stage, proved=proved, password_hash=password_hash, epoch=epoch)
    return redirect(STAGE_URLS[stage], 303)


def org_name_of(s: Session, org_id: str) -> str | None:
    org = s.get(Organization, org_id)
    return org.name if org is not None else None


# -- forced change of a temporary password -------------------------------------------


@bp.get("/password/change")
def change_password_form() -> Any:
    _found, user = pending_at("change")
    return _change_page(user)


def _change_page(user: User, problem: str | None = None, status: int = 200) -> Any:
    s = db.writing_session()
    with s.begin():
        policy = get_settings(s, user.org_id).password_policy()
        org_name = org_name_of(s, user.org_id)
        demanded = local.demanded(passwords.current_password(s, user))
    return web.page(
        "signin/change_password.html",
        status,
        problem=problem,
        min_length=policy.min_length,
        max_length=policy.max_length,
        org_name=org_name,
        demanded=demanded,
    )


@bp.post("/password/change")
def change_password() -> Any:
    """Choose a password (the policy's refusal names its rule; nothing typed is echoed)."""
    data = web.form()
    web.check_csrf(data.get("csrf"))
    found, user = pending_at("change")
    new, again = data.get("password") or "", data.get("confirm") or ""
    if len(new) > passwords.MAX_INPUT_CHARS:
        return _change_page(user, "The password is too long.", 413)
    if new != again:
        return _change_page(user, "The two passwords are not the same.", 400)
    attempt = web.attempt()
    s = db.writing_session()
    try:
        stage, new_hash, epoch = _change(s, user, new, attempt, found.factors)
    except passwords.PasswordRejected as err:
        return _change_page(user, str(err.detail), 400)
    except NoSlotError:
        return web.busy(_change_page(user, web.BUSY), "password change")
    return continue_sign_in(s, found, stage, password_hash=new_hash, epoch=epoch)


def _change(
    s: Session, user: User, new: str, attempt: local.Attempt, proved: tuple[str, ...]
) -> tuple[str, str, int]:
    """Set the chosen password in one transaction: (the next stage, the new hash, the
    account's ``session_epoch`` now: the change ended the sessions before it).

    ``PasswordRejected`` (the rule) or ``NoSlotError`` (no argon2 slot) change nothing;
    nor does an account locked or deactivated since the temporary password was proved
    (``SsoError``, recorded): the password chosen by whoever holds this pending sign-in
    must not be the account's when an admin unlocks it. ``proved``: what this sign-in
    proved before (``pending.Pending.factors``).
    """
    with s.begin():
        found_user = s.get(User, (user.org_id, user.id), with_for_update=True)
        if found_user is None:
            raise SsoError("pending_expired", "the account disappeared during sign-in")
        user = found_user
        refusal = status_refused(s, user, attempt)
        if refusal is None:
            stage, new_hash = _set_chosen(s, user, new, attempt, proved)
            return stage, new_hash, user.session_epoch or 0
    raise refusal


def _set_chosen(
    s: Session, user: User, new: str, attempt: local.Attempt, proved: tuple[str, ...]
) -> tuple[str, str]:
    """``_change``'s work, in its transaction (the account's row locked, its status checked)."""
    current = get_settings(s, user.org_id)
    row = passwords.current_password(s, user)
    if local.next_stage(s, user, row, proved) == "mfa":
        # A factor the account gained since this sign-in's password was proved: only
        # whoever proves it may choose the next password (``local.next_stage``).
        raise SsoError("pending_expired", "a factor was enrolled since the password was proved")
    address = user_address(s, user)
    demanded = local.demanded(row)  # the person's own password, not a temporary one
    if row is not None and passwords.verify_password(attempt.hashing, row.hash, new)[0]:
        raise passwords.PasswordRejected(
            "history",
            "Choose a new password, not the one you have now."
            if demanded
            else "Choose a new password, not the one you were given.",
        )
    row = passwords.set_password(
        s,
        attempt.hashing,
        current.password_policy(),
        user,
        new,
        identifiers=passwords.personal_identifiers(user, address),
        detail="chosen by the person at sign-in, replacing a password an admin asked them to "
        "replace"
        if demanded
        else "chosen by the person at sign-in, replacing a temporary password",
    )
    # The demand is met (``set_password`` ended the reset links a RECOVERY waits on).
    credentials.settle(s, user, "new password chosen at sign-in")
    if address is not None:
        mail.queue_mail(
            s,
            user.org_id,
            "password_changed",
            address,
            {
                "username": user.login_name or user.user_name,
                "login_url": mail.login_url(attempt.base_url),
            },
            user_id=user.id,
        )
    return local.next_stage(s, user, row, proved), row.hash


# -- second factor --------------------------------------------------------------------


@bp.get("/mfa")
def mfa_form() -> Any:
    _found, user = pending_at("mfa")
    return _mfa_page(user)


def _mfa_page(user: User, problem: str | None = None, status: int = 200) -> Any:
    s = db.writing_session()
    with s.begin():
        kinds = {f.kind for f in mfa.factors(s, user)}
        org_name = org_name_of(s, user.org_id)
    return web.page(
        "signin/mfa.html",
        status,
        problem=problem,
        totp="totp" in kinds,
        passkey="webauthn" in kinds,
        org_name=org_name,
    )


@bp.post("/mfa")
def verify_mfa() -> Any:
    """A TOTP code or a recovery code; a wrong one counts towards the lockout."""
    data = web.form()
    web.check_csrf(data.get("csrf"))
    found, user = pending_at("mfa")
    code = (data.get("code") or "").strip()
    if not code or len(code) > 64:
        return _mfa_page(
            user, "Enter the code from your authenticator app, or a recovery code.", 400
        )
    web.throttle()
    attempt = web.attempt()
    s = db.writing_session()
    locked = False
    proved: str | None = None
    stage = "done"
    with s.begin():
        found_user = s.get(User, (user.org_id, user.id), with_for_update=True)
        if found_user is None:
            raise SsoError("pending_expired", "the account disappeared during sign-in")
        user = found_user
        refusal = status_refused(s, user, attempt)
        if refusal is None:
            proved = factors.check_code(s, current_secret(), user, code, attempt.now)
            if proved is None:
                guess = factors.guess_of(code, attempt.now)
                locked = local.count_failure(s, user, guess, attempt) is not None
                local.record_failure(s, user, "mfa_failed", "wrong second-factor code", attempt)
            else:
                stage = after_second_factor(s, user, found, proved)
    if refusal is not None:
        raise refusal  # the pending sign-in ends (``ENDS_PENDING``)
    if proved is None:
        if locked:
            pending.drop()
            return web.refusal(SsoError("invalid_credentials", "locked at the second factor"))
        return _mfa_page(user, "That code is not correct, or it was used already.", 401)
    return continue_sign_in(s, found, stage, proved)


def after_second_factor(s: Session, user: User, found: pending.Pending, proved: str) -> str:
    """The step after a proved second factor (caller's transaction): the demanded new
    password (``local.next_stage``), or done."""
    row = passwords.current_password(s, user)
    return local.next_stage(s, user, row, (*found.factors, proved))
