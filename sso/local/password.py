"""The password sign-in: which account, the password, lockout, status, and the end of a sign-in.

One answer for every failure a stranger could cause (unknown account, wrong
password, locked account, an organization without passwords): the generic
``invalid_credentials``, after the same argon2 work (``passwords.burn_time``
when there is no hash to check). The precise reason goes to the sign-in
records and the audit log (``signin.failure``), as for SAML and OIDC. A wrong
password or second factor counts towards the account's lockout.

A sign-in ends where an SSO sign-in ends (``finish``): status and license
checked again, ``lifecycle.record_sign_in``, ``signin.success``. Only there,
once every factor is proved, does a sign-in end ``RECOVERY`` (the reset link
asked for dies): a right password alone proves too little to kill the owner's
link. Each step between checks the status again before it changes anything
(``status_refusal``): an admin's lock or a deactivation meanwhile stops it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from scim_server.models import User, UserPassword
from scim_server.services import credentials, lifecycle, lockout, mail, mfa, passwords
from scim_server.services.addresses import user_address
from scim_server.services.settings import get_settings
from sso.errors import SsoError
from sso.local.accounts import find_account
from sso.signin.decision import LOCKED, check_license, record_outcome, status_refusal
from sso.signin.request import SignInRequest

log = logging.getLogger(__name__)
PROTOCOL = "password"  # sign_in_records.protocol: at most 8 characters
# The statuses a pending sign-in goes on in, until ``finish`` asks for SIGN_IN_ALLOWED.
PENDING_ALLOWED = lifecycle.SIGN_IN_ALLOWED | {lifecycle.AWAITING_NEW_PASSWORD}


@dataclass(frozen=True)
class Attempt:
    """Where an attempt comes from and what it runs with (the clock is injected)."""

    hashing: passwords.Hashing
    attempt_key: bytes  # HMAC key of the lockout's wrong-attempt hashes
    now: datetime
    base_url: str
    source_ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Verified:
    """A proved password: the account, and the next step (change, mfa, enrol or done)."""

    org_id: str
    user_id: str
    stage: str
    password_hash: str
    epoch: int = 0  # the account's session_epoch (``pending.Pending.epoch``)


@dataclass(frozen=True)
class _Refusal:
    reason: str  # for the records
    detail: str
    public: str = "invalid_credentials"  # what the person is told


class CredentialsRefusedError(SsoError):
    """A refused password; ``account_found`` says which path ran (for timing, never shown)."""

    def __init__(self, reason_code: str, detail: str, *, account_found: bool) -> None:
        super().__init__(reason_code, detail)
        self.account_found = account_found


def local_request(
    org_id: str, login: str, attempt: Attempt, how: str = "password"
) -> SignInRequest:
    """The sign-in record's view of a local attempt (no connection)."""
    return SignInRequest(
        org_id=org_id,
        connection_id="",
        connection_name=f"local sign-in ({how})",
        protocol=PROTOCOL,
        subject=login[:320],
        email=login[:320] if "@" in login else None,
        user_name=login[:320],
        external_id=None,
        source_ip=attempt.source_ip,
        user_agent=attempt.user_agent,
    )


class _Proof:
    """The one argon2 computation of an attempt, made outside any transaction when possible.

    ``check`` reuses the result computed before the write transaction when the
    stored hash is still the one it was computed against; a hash changed
    meanwhile (a concurrent password change wins) is checked again. ``burn``
    spends the same time when nothing was checked, so every refusal costs one
    verification.
    """

    def __init__(self, hashing: passwords.Hashing, password: str) -> None:
        self._hashing = hashing
        self._password = password
        self._hash: str | None = None
        self._result = (False, False)
        self._spent = False

    def check(self, stored: str) -> tuple[bool, bool]:
        if not self._spent or self._hash != stored:
            self._result = passwords.verify_password(self._hashing, stored, self._password)
            self._hash = stored
            self._spent = True
        return self._result

    def burn(self) -> None:
        if not self._spent:
            passwords.burn_time(self._hashing, self._password)
            self._spent = True


Reading = Callable[[], AbstractContextManager[Session]]


def check_password(
    session: Session, login: str, password: str, attempt: Attempt, read: Reading | None = None
) -> Verified:
    """Prove the password of the account ``login`` names; ``SsoError`` (generic) otherwise.

    ``read`` opens a session for the lookup (the web view passes ``db.lookup``):
    the account is found and its password verified outside ``session``'s
    transaction, so on SQLite the write lock is held only to record the
    outcome, under the account's row lock. By default ``session`` reads too.
    """
    proof = _Proof(attempt.hashing, password)
    with (read or (lambda: nullcontext(session)))() as reader, reader.begin():
        found = find_account(reader, login)
        stored = _hash_to_check(reader, found.user)
    # The slow part, with no transaction open: on SQLite nobody waits for it.
    if stored is not None:
        proof.check(stored)
    else:
        proof.burn()  # unknown account, no password or locked: the same time spent
    if found.user is None:
        refusal = (
            _Refusal(
                "ambiguous_account", f"{login!r} names accounts in {len(found.orgs)} organizations"
            )
            if found.ambiguous
            else _Refusal("unknown_user", f"no account with a password for {login!r}")
        )
        with session.begin():
            for org_id in found.orgs:
                record_outcome(
                    session,
                    local_request(org_id, login, attempt),
                    "failure",
                    refusal.reason,
                    refusal.detail,
                    None,
                )
        log.info("password sign-in refused (%s): %s", refusal.reason, refusal.detail)
        raise CredentialsRefusedError(refusal.public, refusal.detail, account_found=False)
    result: Verified | _Refusal
    with session.begin():
        user = session.get(
            User, (found.user.org_id, found.user.id), with_for_update=True, populate_existing=True
        )
        if user is None:
            proof.burn()
            result = _Refusal("unknown_user", "the account disappeared during sign-in")
        else:
            result = _decide(session, user, login, password, proof, attempt)
            if isinstance(result, _Refusal):
                record_outcome(
                    session,
                    local_request(user.org_id, login, attempt),
                    "failure",
                    result.reason,
                    result.detail,
                    user,
                )
    if isinstance(result, _Refusal):
        log.info("password sign-in refused (%s): %s", result.reason, result.detail)
        raise CredentialsRefusedError(result.public, result.detail, account_found=True)
    return result


def _hash_to_check(session: Session, user: User | None) -> str | None:
    """The hash to verify before the write transaction; none while locked (never checked)."""
    if user is None or user.status in LOCKED:
        return None  # a lock due to end is checked under the row lock, after its release
    row = passwords.current_password(session, user)
    return row.hash if row is not None else None


def _decide(
    session: Session, user: User, login: str, password: str, proof: _Proof, attempt: Attempt
) -> Verified | _Refusal:
    """In the transaction that holds the account's row: every outcome is written together."""
    lockout.release_if_due(session, user, attempt.now)
    row = passwords.current_password(session, user)
    if row is None:
        proof.burn()
        return _Refusal("no_password", "the account has no password")
    if user.status in LOCKED:
        proof.burn()  # never checked while locked
        return _Refusal("locked", f"account status is {user.status}")
    ok, needs_rehash = proof.check(row.hash)
    if not ok:
        until = count_failure(session, user, password, attempt)
        suffix = f"; account locked until {until.isoformat(timespec='seconds')}" if until else ""
        return _Refusal("bad_password", "wrong password" + suffix)
    if needs_rehash:
        # The cost parameters changed since this hash was made: today's, with the same password.
        passwords.rehash(attempt.hashing, row, password)
    if row.temporary and row.expires_at is not None and row.expires_at <= attempt.now:
        return _Refusal(
            "temporary_password_expired",
            f"the temporary password expired at {row.expires_at.isoformat(timespec='seconds')}",
            public="temporary_password_expired",
        )
    if user.status not in PENDING_ALLOWED:
        policy = lockout.LockoutPolicy.from_settings(get_settings(session, user.org_id))
        if lockout.guessed_too_often(session, user, policy, attempt.now):
            # Guessed past the threshold, and a deactivated account cannot be locked: its
            # right password gets the answer a wrong one gets, or the page of its own would
            # tell a guesser when they found it (to use at the reactivation).
            return _Refusal("inactive_account", f"account status is {user.status}")
        return _Refusal("inactive_account", f"account status is {user.status}", "inactive_account")
    try:
        check_license(session, user)
    except SsoError as err:
        return _Refusal(err.reason_code, err.detail, err.reason_code)
    # RECOVERY stays until the sign-in is whole (``finish``): whoever holds a leaked
    # password and stops at the second factor must not kill the owner's reset link.
    stage = next_stage(session, user, row)
    if stage != "mfa":
        # The failures are forgotten once nothing is left to guess: after a second factor,
        # at the sign-in's end (``finish``). A right password alone must not wipe the count
        # of wrong codes, or whoever knows it guesses codes two at a time, forever. (Any
        # other stage is an account without a factor: its password is the whole proof.)
        lockout.clear(session, user)
    return Verified(user.org_id, user.id, stage, row.hash, user.session_epoch or 0)


# What a pending sign-in's factors say when a second factor was proved (not the password).
SECOND_FACTORS = frozenset({"totp", "recovery_code", "webauthn"})


def next_stage(
    session: Session, user: User, row: UserPassword | None, proved: tuple[str, ...] = ("password",)
) -> str:
    """After a proof (``proved``: what this sign-in proved so far): prove a second factor,
    change the password, enrol a factor, or done.

    The account's second factor comes first: a chosen password is stored only once every
    factor is proved, or whoever holds a leaked password (the reason an admin demands a new
    one) would choose the next one, signing the owner out. A change while an admin's demand
    for a new password stands, whatever the status says (a RECOVERY from before migration
    0039 may hold one): the old password never signs in straight."""
    enrolled = mfa.enrolled(session, user)
    if enrolled and not SECOND_FACTORS.intersection(proved):
        return "mfa"
    if must_change(user, row):
        return "change"
    if not enrolled and mfa.enrolment_required(session, user):
        return "enrol"
    return "done"


def must_change(user: User, row: UserPassword | None) -> bool:
    """Whether this account's next sign-in must choose a new password."""
    return (
        user.status == lifecycle.AWAITING_NEW_PASSWORD
        or user.new_password_required
        or (row is not None and row.must_change)
    )


def demanded(row: UserPassword | None) -> bool:
    """Whether the password to replace is the person's own (an admin asked for a new one),
    not a temporary one they were given: what the change page tells them."""
    return row is None or not row.must_change


def count_failure(session: Session, user: User, typed: str, attempt: Attempt) -> datetime | None:
    """One wrong password or code towards the lockout; the lock's mail when it locks."""
    policy = lockout.LockoutPolicy.from_settings(get_settings(session, user.org_id))
    key = lockout.attempt_key(attempt.attempt_key, user, typed)
    until = lockout.record_failure(session, user, policy, key, attempt.now)
    if until is not None:
        address = user_address(session, user)
        if address is not None:
            mail.queue_mail(
                session,
                user.org_id,
                "account_locked",
                address,
                {
                    "username": user.login_name or user.user_name,
                    # The minute after the lock ends: the person must not come back before.
                    "until": credentials.mail_time(until, round_up=True),
                    "login_url": mail.login_url(attempt.base_url),
                },
                user_id=user.id,
            )
    return until


def record_failure(
    session: Session, user: User, reason: str, detail: str, attempt: Attempt
) -> None:
    """Record a refused later step (a wrong code) in the caller's transaction."""
    record_outcome(
        session,
        local_request(user.org_id, user.login_name or user.user_name, attempt),
        "failure",
        reason,
        detail,
        user,
    )


def finish(session: Session, org_id: str, user_id: str, how: str, attempt: Attempt) -> User:
    """The last step: status and license again, the sign-in marked and recorded.

    ``how`` names what was proved (``password``, ``password+totp``...). A sign-in
    during ``RECOVERY`` ends it: the person knows their password after all, and proved
    every factor, so the reset they asked for is not needed.
    """
    refusal: SsoError | None = None
    with session.begin():
        user = session.get(User, (org_id, user_id), with_for_update=True, populate_existing=True)
        if user is None:
            raise SsoError("pending_expired", "the account disappeared during sign-in")
        login = user.login_name or user.user_name
        try:
            refused = status_refusal(user)
            if refused is not None:
                raise refused
            check_license(session, user)
        except SsoError as err:
            refusal = err
            record_outcome(
                session,
                local_request(org_id, login, attempt, how),
                "failure",
                err.reason_code,
                err.detail,
                user,
            )
        else:
            lockout.clear(session, user)  # a whole sign-in: the failures before it are forgotten
            if user.status == lifecycle.RECOVERY:
                passwords.expire_links(session, user, "reset")
                lifecycle.transition(
                    session, user, "complete_recovery", reason="signed in with the current password"
                )
            lifecycle.record_sign_in(session, user)
            record_outcome(
                session, local_request(org_id, login, attempt, how), "success", None, None, user
            )
    if refusal is not None:
        raise refusal
    return user
