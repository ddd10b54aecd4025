"""Local passwords: argon2id hashes, the organization's policy, history, temporary passwords.

For people whose organization lets them sign in without SSO (the
``sign_in_methods`` setting). The policy follows NIST SP 800-63B §5.1.1.2:
length (12 to 128 by default), no composition rules, refuse common and
predictable passwords (the 30,000 most common ones from zxcvbn's offline list,
and anything zxcvbn guesses in under a million tries) and the person's own
username or e-mail, and none of their last five. Each refusal names its rule.

Nothing here keeps or logs a password: the audit events say what happened,
never the secret.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import reuse_plan, utcnow
from scim_server.errors import InvalidValueError
from scim_server.fixed import Fixed
from scim_server.models import CredentialToken, PasswordHistory, User, UserPassword

# Refused before any hashing, whatever the policy says: hashing a megabyte costs
# the server, and no person types this much (NIST asks for at least 64).
MAX_INPUT_CHARS = 1024
# Every refusal names one of these.
RULES = ("length", "common", "personal", "history")
# zxcvbn's estimate under which a password counts as common (a simple variation of one).
COMMON_GUESSES_LOG10 = 6.0
# Temporary passwords: no look-alike characters (0/O, 1/l/I), in groups of four.
_TEMPORARY_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LINK_PURPOSES = ("activation", "reset")


@dataclass(frozen=True)
class Hashing:
    """argon2id cost, from configuration (``SCIM_ARGON2_*``).

    ``gate`` is held around each argon2 computation: the pages a person signs in
    on pass the node's slots (``scim_server.slots``, it may raise ``NoSlotError``
    before any work); everything else computes at once.
    """

    time_cost: int = 2
    memory_kib: int = 19 * 1024
    parallelism: int = 1
    gate: Callable[[], AbstractContextManager[object]] = field(
        default=nullcontext, compare=False, repr=False
    )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Hashing:
        return cls(
            time_cost=int(config["ARGON2_TIME_COST"]),
            memory_kib=int(config["ARGON2_MEMORY_KIB"]),
            parallelism=int(config["ARGON2_PARALLELISM"]),
        )

    def hasher(self) -> PasswordHasher:
        return _hasher(self.time_cost, self.memory_kib, self.parallelism)


@cache
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


@cache
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_kib, parallelism).hash(secrets.token_urlsafe(16))


class PasswordRejected(InvalidValueError):
    """A password the policy refuses; ``rule`` is one of ``RULES``."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class PasswordPolicy:
    """The organization's rules (settings ``password_*``); the defaults are NIST's."""

    min_length: int = 12
    max_length: int = 128
    history: int = 5
    refuse_common: bool = True


def normalise(password: str) -> str:
    """NFKC, as NIST SP 800-63B §5.1.1.2 asks: the composed and decomposed forms of one
    password (an input method, a password manager filled on another platform) are one."""
    return unicodedata.normalize("NFKC", password)


def hash_password(hashing: Hashing, password: str) -> str:
    _check_input(password)
    with hashing.gate():
        return hashing.hasher().hash(normalise(password))


def verify_password(hashing: Hashing, stored: str, password: str) -> tuple[bool, bool]:
    """(matches, needs rehash). A damaged hash never matches.

    The NFKC form is checked; then, if it differs, the raw one: a hash made before
    passwords were normalised. Such a match asks for a rehash, as a hash with older
    argon2 parameters does, so the sign-in stores the normalised form's.
    """
    if not isinstance(password, str) or len(password) > MAX_INPUT_CHARS:
        return False, False
    hasher = hashing.hasher()
    normal = normalise(password)
    with hashing.gate():
        for candidate in dict.fromkeys((normal, password)):
            try:
                hasher.verify(stored, candidate)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                continue
            return True, candidate != normal or hasher.check_needs_rehash(stored)
    return False, False


def burn_time(hashing: Hashing, password: str) -> None:
    """Verify against a hash nobody has: an unknown account takes as long as a known one."""
    verify_password(
        hashing, _dummy_hash(hashing.time_cost, hashing.memory_kib, hashing.parallelism), password
    )


def _check_input(password: Any) -> str:
    if not isinstance(password, str):
        raise PasswordRejected("length", "The password must be a string.")
    if len(password) > MAX_INPUT_CHARS:
        raise PasswordRejected(
            "length", f"The password is too long (at most {MAX_INPUT_CHARS} characters)."
        )
    return password


@cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def _guesses_log10(password: str, identifiers: list[str]) -> float:
    from zxcvbn import zxcvbn

    # zxcvbn refuses more than 72 characters (its matching grows with length): those decide.
    return float(zxcvbn(password[:72], user_inputs=identifiers)["guesses_log10"])


def personal_identifiers(user: User, email: str | None) -> list[str]:
    """What a password must not contain: the username, the e-mail and its local part."""
    values = [user.user_name, user.login_name, email, (email or "").partition("@")[0]]
    return sorted({v.casefold() for v in values if v and len(v) >= 4})


def check_policy(policy: PasswordPolicy, password: Any, *, identifiers: Iterable[str]) -> str:
    """The password (NFKC: what is hashed) if the policy accepts it; else ``PasswordRejected``
    naming the rule."""
    password = normalise(_check_input(password))
    length = len(password)
    if length < policy.min_length:
        raise PasswordRejected(
            "length", f"The password is too short: use at least {policy.min_length} characters."
        )
    if length > policy.max_length:
        raise PasswordRejected(
            "length", f"The password is too long: use at most {policy.max_length} characters."
        )
    folded = password.casefold()
    idents = [normalise(i).casefold() for i in identifiers if i]
    if any(i in folded for i in idents):
        raise PasswordRejected(
            "personal", "The password must not contain your username or e-mail address."
        )
    if policy.refuse_common and (
        folded in _common_passwords() or _guesses_log10(password, idents) < COMMON_GUESSES_LOG10
    ):
        raise PasswordRejected(
            "common",
            "This password is too common or too easy to guess; "
            "a few unrelated words make a strong one.",
        )
    return password


def generate_temporary(policy: PasswordPolicy) -> str:
    """A random password that satisfies ``policy`` (about 5.8 bits per character)."""
    length = max(policy.min_length, 16)
    groups = -(-length // 4)
    chars = "-".join(
        "".join(secrets.choice(_TEMPORARY_ALPHABET) for _ in range(4)) for _ in range(groups)
    )
    if len(chars) > policy.max_length:
        chars = chars.replace("-", "")[: policy.max_length]
    return chars


# -- storage ----------------------------------------------------------------------------


def current_password(session: Session, user: User) -> UserPassword | None:
    return session.get(UserPassword, (user.org_id, user.id))


def _recent_hashes(session: Session, user: User, count: int) -> list[str]:
    if count <= 0:
        return []
    return list(
        session.scalars(
            select(PasswordHistory.hash)
            .where(PasswordHistory.org_id == user.org_id, PasswordHistory.user_id == user.id)
            .order_by(PasswordHistory.created_at.desc(), PasswordHistory.id.desc())
            .limit(count)
        )
    )


def check_history(
    session: Session, hashing: Hashing, policy: PasswordPolicy, user: User, password: str
) -> None:
    """Refuse any of the user's last ``policy.history`` chosen passwords."""
    for stored in _recent_hashes(session, user, policy.history):
        if verify_password(hashing, stored, password)[0]:
            raise PasswordRejected(
                "history",
                f"Choose a password you have not used recently (the last {policy.history} "
                "are remembered).",
            )


def set_password(
    session: Session,
    hashing: Hashing,
    policy: PasswordPolicy,
    user: User,
    password: str,
    *,
    identifiers: Iterable[str],
    temporary: bool = False,
    expires_at: datetime | None = None,
    must_change: bool = False,
    detail: str,
) -> UserPassword:
    """Give ``user`` this password in the caller's transaction, after the policy allows it.

    A chosen password (not ``temporary``) is also checked against the history and
    then remembered in it, meets an admin's demand for a new password
    (``users.new_password_required``), and ends the reset and activation links still live:
    mailed to replace the password before it, whoever holds one would replace this one too.
    The audit event (``user.password.set``) says ``detail`` and whether the password is
    temporary, never the password.
    """
    check_policy(policy, password, identifiers=identifiers)
    if not temporary:
        check_history(session, hashing, policy, user, password)
    digest = hash_password(hashing, password)
    now = utcnow()
    row = current_password(session, user)
    if row is None:
        row = UserPassword(org_id=user.org_id, user_id=user.id, hash=digest)
        session.add(row)
    else:
        end_sessions(user)
    row.hash = digest
    row.temporary = temporary
    row.must_change = must_change
    if not temporary:
        # A password of the person's own (chosen, or the IdP's) is what an admin's
        # ``require_new_password`` asked for: the demand is met, whatever status covers it
        # now (``lifecycle``); a temporary one meets nothing.
        user.new_password_required = False
        expire_all_links(session, user)
    row.set_at = now
    row.expires_at = expires_at
    if not temporary and policy.history > 0:
        session.add(
            PasswordHistory(
                org_id=user.org_id,
                id=str(uuid.uuid4()),
                user_id=user.id,
                hash=digest,
                created_at=now,
            )
        )
        session.flush()
        keep = (
            select(PasswordHistory.id)
            .where(PasswordHistory.org_id == user.org_id, PasswordHistory.user_id == user.id)
            .order_by(PasswordHistory.created_at.desc(), PasswordHistory.id.desc())
            .limit(policy.history)
        )
        session.execute(
            delete(PasswordHistory).where(
                PasswordHistory.org_id == user.org_id,
                PasswordHistory.user_id == user.id,
                PasswordHistory.id.not_in(keep.scalar_subquery()),
            )
        )
    record(
        session,
        user.org_id,
        "user.password.set",
        resource_type="User",
        resource_id=user.id,
        external_id=user.external_id,
        user_name=user.user_name,
        detail=detail,
        changes={"password": {"after": "temporary" if temporary else "set"}},
    )
    return row


def end_sessions(user: User) -> None:
    """End every sign-in session of ``user`` (``sso.signin.session`` compares the epoch):
    whoever signed in with the password that is now replaced or gone is signed out, an
    intruder with a leaked one included. A first password ends nothing."""
    user.session_epoch = (user.session_epoch or 0) + 1


def rehash(hashing: Hashing, row: UserPassword, password: str) -> None:
    """After a successful check with old parameters: the same password, today's cost."""
    row.hash = hash_password(hashing, password)


def remove_password(session: Session, user: User, *, detail: str) -> bool:
    """Forget the user's password (not the history); True if there was one."""
    row = current_password(session, user)
    if row is None:
        return False
    session.delete(row)
    end_sessions(user)
    record(
        session,
        user.org_id,
        "user.password.removed",
        resource_type="User",
        resource_id=user.id,
        external_id=user.external_id,
        user_name=user.user_name,
        detail=detail,
        changes={"password": {"before": "set", "after": None}},
    )
    return True


# -- single-use links (activation, reset) -------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link(
    session: Session, user: User, purpose: str, ttl: timedelta, *, sent_to: str | None
) -> str:
    """A new single-use link token for ``user``; earlier unused ones of that purpose die.

    Returns the token itself (for the mail): only its SHA-256 is stored. ``sent_to``: the
    account's address the mail goes to (the link works only while the account has it:
    ``recovery``), None when it goes to an admin to hand over.
    """
    if purpose not in LINK_PURPOSES:
        raise InvalidValueError(f"Unknown link purpose {purpose!r}.")
    now = utcnow()
    for old in session.scalars(
        select(CredentialToken).where(
            CredentialToken.org_id == user.org_id,
            CredentialToken.user_id == user.id,
            CredentialToken.purpose == purpose,
            CredentialToken.used_at.is_(None),
        )
    ):
        old.used_at = now
    token = secrets.token_urlsafe(32)
    session.add(
        CredentialToken(
            org_id=user.org_id,
            id=str(uuid.uuid4()),
            user_id=user.id,
            purpose=purpose,
            token_hash=_digest(token),
            created_at=now,
            expires_at=now + ttl,
            sent_to=sent_to,
        )
    )
    return token


def find_link(
    session: Session, token: Any, purpose: str, *, for_update: bool = False
) -> CredentialToken | None:
    """The live link for ``token`` (unused, unexpired), or None: a broken token is just None."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    stmt = select(CredentialToken).where(
        CredentialToken.token_hash == _digest(token), CredentialToken.purpose == purpose
    )
    row = session.scalar(stmt.with_for_update() if for_update else stmt)
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        return None
    return row


def consume_link(session: Session, token: Any, purpose: str) -> CredentialToken | None:
    """Use the link once (row locked: two clicks at once, one wins); None if it is not live."""
    row = find_link(session, token, purpose, for_update=True)
    if row is not None:
        row.used_at = utcnow()
    return row


def expire_links(session: Session, user: User, purpose: str) -> int:
    """End every live link of ``purpose`` for ``user`` (a new one went out, or it was used)."""
    now = utcnow()
    rows = session.scalars(
        select(CredentialToken).where(
            CredentialToken.org_id == user.org_id,
            CredentialToken.user_id == user.id,
            CredentialToken.purpose == purpose,
            CredentialToken.used_at.is_(None),
        )
    ).all()
    for row in rows:
        row.used_at = now
    return len(rows)


# Compiled once (``fixed.Fixed``), its plan reused: a deactivation (a SCIM PATCH, a hot
# path) runs it, and the ORM's bulk UPDATE was rebuilt and evaluated at every call.
_EXPIRE_ALL_LINKS = Fixed(
    reuse_plan(
        update(CredentialToken)
        .where(
            CredentialToken.org_id == bindparam("b_org_id"),
            CredentialToken.user_id == bindparam("b_user_id"),
            CredentialToken.used_at.is_(None),
        )
        .values(used_at=bindparam("now"))
    )
)


def expire_all_links(session: Session, user: User) -> None:
    """End every live link of ``user``, reset and activation alike, in one statement: a
    password of their own replaced what the links were for, or a lock or a deactivation
    ended the account's way in (``lifecycle.ENDS_LINKS``). Links loaded in this session
    are not updated in memory: none of the callers reads one after."""
    session.flush()  # as ``session.execute`` would (autoflush)
    _EXPIRE_ALL_LINKS.run(
        session.connection(), {"b_org_id": user.org_id, "b_user_id": user.id, "now": utcnow()}
    )
