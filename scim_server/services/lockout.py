"""Lockout after repeated failed sign-ins (organization settings ``lockout_*``).

``threshold`` distinct wrong attempts within ``window`` lock the account
(``AUTO_LOCKED``) for ``first`` minutes, twice as long on each lockout in a
row, up to ``maximum``. The same wrong password typed again is one failure:
each attempt is kept as a keyed hash (HMAC of what was typed, keyed by a
server secret and the account), never the password. The lock ends by itself
when its time is up: at the next sign-in attempt (``release_if_due``) and in
the worker's sweep (``release_due``), so the admin API shows the truth. An
admin unlock clears everything at once (``clear``). ``LOCKED_BY_ADMIN`` is
never touched here. The counters are rows, so every web node shares them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.models import AccountLockout, User
from scim_server.services import lifecycle
from scim_server.services.settings import IdentitySettings


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int  # 0: lockout off
    window: timedelta
    first: timedelta
    maximum: timedelta

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> LockoutPolicy:
        return cls(
            threshold=settings.number("lockout_threshold"),
            window=timedelta(minutes=settings.number("lockout_window_minutes")),
            first=timedelta(minutes=settings.number("lockout_minutes")),
            maximum=timedelta(minutes=settings.number("lockout_max_minutes")),
        )

    def duration(self, previous_locks: int) -> timedelta:
        """The first lock, doubled for each lockout before it in a row, capped."""
        return min(self.first * (2 ** min(previous_locks, 20)), self.maximum)


def attempt_key(key: bytes, user: User, typed: str) -> str:
    """A keyed hash of a wrong attempt: equal for the same text, useless without the key."""
    message = f"{user.org_id}\x00{user.id}\x00{typed}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def _row(session: Session, user: User) -> AccountLockout | None:
    return session.get(AccountLockout, (user.org_id, user.id), with_for_update=True)


def locked_until(session: Session, user: User) -> datetime | None:
    row = session.get(AccountLockout, (user.org_id, user.id))
    return row.locked_until if row is not None else None


def release_if_due(session: Session, user: User, now: datetime) -> bool:
    """End an automatic lock whose time is up (caller's transaction, user row locked)."""
    if user.status != lifecycle.AUTO_LOCKED:
        return False
    row = _row(session, user)
    if row is None or row.locked_until is None or row.locked_until > now:
        return False
    row.locked_until = None
    row.failures = []
    lifecycle.transition(session, user, "unlock", reason="the automatic lockout ended")
    return True


def record_failure(
    session: Session, user: User, policy: LockoutPolicy, attempt: str, now: datetime
) -> datetime | None:
    """Count one wrong attempt (caller's transaction, user row locked).

    Returns the end of the lock when this attempt locked the account, else None.
    """
    row = _row(session, user)
    if row is None:
        row = AccountLockout(org_id=user.org_id, user_id=user.id, failures=[], locks=0)
        session.add(row)
    kept = _recent(row, policy, now)
    if any(f[0] == attempt for f in kept):
        row.failures = kept  # the same wrong password again: it counted already
        return None
    kept.append([attempt, now.isoformat()])
    row.failures = kept[-max(policy.threshold, 1) :]
    if policy.threshold <= 0 or len(kept) < policy.threshold:
        return None
    if user.status not in lifecycle.TRANSITIONS["auto_lock"].sources:
        return None
    until = now + policy.duration(row.locks or 0)
    row.locks = (row.locks or 0) + 1
    row.locked_until = until
    row.failures = []
    minutes = int(policy.window.total_seconds() // 60)
    lifecycle.transition(
        session,
        user,
        "auto_lock",
        reason=f"{policy.threshold} failed sign-ins within {minutes} minutes; "
        f"locked until {until.isoformat(timespec='seconds')}",
    )
    return until


def guessed_too_often(session: Session, user: User, policy: LockoutPolicy, now: datetime) -> bool:
    """Whether the account's wrong attempts in the window reached the threshold though it was
    not locked (a deactivated account cannot be: ``record_failure``)."""
    row = _row(session, user)
    if row is None or policy.threshold <= 0:
        return False
    return len(_recent(row, policy, now)) >= policy.threshold


def _recent(row: AccountLockout, policy: LockoutPolicy, now: datetime) -> list[list[str]]:
    """The row's wrong attempts within the policy's window ([attempt hash, ISO time])."""
    since = now - policy.window
    return [f for f in (row.failures or []) if datetime.fromisoformat(f[1]) > since]


def clear(session: Session, user: User) -> bool:
    """Forget the failures and the lockout streak (a success, or an admin's unlock)."""
    row = session.get(AccountLockout, (user.org_id, user.id))
    if row is None:
        return False
    session.delete(row)
    return True


def release_due(session: Session, now: datetime, *, limit: int = 500) -> int:
    """The worker's sweep: end the automatic locks whose time is up; returns how many."""
    with session.begin():
        due = session.execute(
            select(AccountLockout.org_id, AccountLockout.user_id)
            .where(AccountLockout.locked_until <= now)
            .limit(limit)
        ).all()
        released = 0
        for org_id, user_id in due:
            user = session.get(User, (org_id, user_id), with_for_update=True)
            if user is None:
                continue
            if release_if_due(session, user, now):
                released += 1
            else:
                # No longer AUTO_LOCKED (an admin acted): only the end time goes.
                row = _row(session, user)
                if row is not None:
                    row.locked_until = None
    return released
