"""Credentials sends that wait for ``scim-server worker``: an admin's date, a SCIM welcome.

An admin schedules the credentials of one user or a list (a go-live day); the
date shows on the user in the admin API until the worker sends them. The
secret is made when the worker sends (``credentials.deliver``), never at
scheduling time, so nothing secret waits in the database. A user created over
SCIM gets a row due at once (reason ``welcome``; ``credentials.queue_welcome``).

Workers claim due rows with the shared lease code (``services.leases``: SKIP
LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite), organizations in turn (one due row
of each, the one waiting longest first: an initial sync's hundred thousand welcomes,
each an argon2id hash, do not hold back another organization's), then send in a second
transaction that locks the row again and checks the lease is still theirs;
that transaction queues the mail and deletes the row together, so two workers
never send one schedule twice.

A welcome whose account got a password of its own meanwhile (the IdP's password sync
right after the create) is dropped, not sent: it would replace that password
(``drop_welcome``, also when the IdP sets it).

A send to the console person who scheduled it ("to me") is checked again in that
transaction (``_to_me_refusal``): the account may have gained console roles beyond
theirs since, or they may no longer manage users; the row then fails with the reason
(shown on the user's profile) and a failure event, and no credentials are made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import DomainError, InvalidValueError, NotFoundError
from scim_server.models import CredentialSchedule, User
from scim_server.services import console_access, credentials, leases, passwords
from scim_server.services.addresses import user_address
from scim_server.services.lifecycle import SIGN_IN_ALLOWED
from scim_server.services.passwords import Hashing

log = logging.getLogger(__name__)

STATES = ("scheduled", "failed")
MAX_USERS = 500
MAX_AHEAD = timedelta(days=366)
LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 5


def _check_send_at(send_at: datetime, now: datetime) -> datetime:
    if send_at.tzinfo is None or send_at.utcoffset() is None:
        raise InvalidValueError(
            "send_at must carry a timezone (e.g. 2027-01-04T08:00:00+01:00 or ...Z)."
        )
    if send_at <= now:
        raise InvalidValueError("send_at is in the past: choose a future date and time.")
    if send_at > now + MAX_AHEAD:
        raise InvalidValueError("send_at is more than a year ahead.")
    return send_at.astimezone(UTC)


def schedule(
    session: Session,
    org_id: str,
    user_ids: Sequence[str],
    send_at: datetime,
    *,
    base_url: str,
    recipient: str | None = None,
    scheduled_by: str | None = None,
    scheduled_by_id: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Schedule (or reschedule) the credentials of each user for ``send_at``; one result per id.

    A date in the past, an SSO-only organization or a malformed list refuses the
    whole request; a user that is missing, locked, deactivated or has no address
    is refused on its own row (the others are scheduled). ``scheduled_by_id``: the
    console person scheduling (None: the admin API, the command line), whose console
    roles a send to ``recipient`` is checked against again when it goes out.
    """
    now = now or utcnow()
    send_at = _check_send_at(send_at, now)
    ids = list(user_ids)
    if not 1 <= len(ids) <= MAX_USERS:
        raise InvalidValueError(f"Give from 1 to {MAX_USERS} user ids.")
    if len(set(ids)) != len(ids):
        raise InvalidValueError("A user id is listed twice.")
    results: list[dict[str, Any]] = []
    with session.begin():
        credentials.require_passwords(session, org_id)
        found = {
            u.id: u
            for u in session.scalars(
                select(User).where(User.org_id == org_id, User.id.in_(ids)).with_for_update()
            )
        }
        existing = {
            row.user_id: row
            for row in session.scalars(
                select(CredentialSchedule)
                .where(CredentialSchedule.org_id == org_id, CredentialSchedule.user_id.in_(ids))
                .with_for_update()
            )
        }
        for user_id in ids:
            user = found.get(user_id)
            if user is None:
                results.append({"id": user_id, "status": 404, "error": "User not found."})
                continue
            problem = _refusal(session, user, recipient)
            if problem:
                results.append({"id": user_id, "status": 409, "error": problem})
                continue
            row = existing.get(user_id)
            before = row.send_at if row is not None else None
            if row is None:
                row = CredentialSchedule(org_id=org_id, user_id=user_id, created_at=now)
                session.add(row)
            row.send_at = send_at
            row.recipient = recipient
            row.base_url = base_url
            row.reason = "scheduled"
            row.state = "scheduled"
            row.attempts = 0
            row.last_error = None
            row.scheduled_by = scheduled_by
            row.scheduled_by_id = scheduled_by_id
            row.claimed_by = None
            row.lease_expires_at = None
            record(
                session,
                org_id,
                "user.credentials.schedule",
                **credentials.about(user),
                detail=f"credentials to {'the acting admin' if recipient else 'the user'}",
                changes={"send_at": {"before": _iso(before), "after": _iso(send_at)}},
            )
            results.append({"id": user_id, "status": 200, "send_at": _iso(send_at)})
    return results


def _refusal(session: Session, user: User, recipient: str | None) -> str | None:
    if user.status not in credentials.SENDABLE:
        return f"The account is {user.status}: activate or unlock it first."
    if recipient is None and user_address(session, user) is None:
        return "The user has no e-mail address: schedule them to yourself instead."
    return None


def cancel(session: Session, org_id: str, user_id: str) -> None:
    """Cancel the user's waiting credentials send; 404 when there is none."""
    with session.begin():
        user = credentials.locked_user(session, org_id, user_id)
        row = session.scalar(
            select(CredentialSchedule)
            .where(CredentialSchedule.org_id == org_id, CredentialSchedule.user_id == user_id)
            .with_for_update()
        )
        if row is None:
            raise NotFoundError("No credentials send is scheduled for this user.")
        record(
            session,
            org_id,
            "user.credentials.schedule.cancel",
            **credentials.about(user),
            changes={"send_at": {"before": _iso(row.send_at), "after": None}},
        )
        session.delete(row)


def drop_welcome(session: Session, user: User, why: str) -> bool:
    """Drop the user's welcome still waiting for the worker, in the caller's transaction
    (``user.credentials.schedule.cancel``, ``why`` its detail); True if there was one. An
    admin's scheduled send stays: that was a decision, not the create's default."""
    row = session.scalar(
        select(CredentialSchedule)
        .where(
            CredentialSchedule.org_id == user.org_id,
            CredentialSchedule.user_id == user.id,
            CredentialSchedule.reason == "welcome",
        )
        .with_for_update()
    )
    if row is None:
        return False
    _dropped(session, row, user, why)
    return True


def _dropped(session: Session, row: CredentialSchedule, user: User, why: str) -> None:
    record(
        session,
        row.org_id,
        "user.credentials.schedule.cancel",
        **credentials.about(user),
        detail=why,
        changes={"send_at": {"before": _iso(row.send_at), "after": None}},
    )
    session.delete(row)


def schedules_of(session: Session, org_id: str, user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The waiting send of each of these users (one query), as the account view shows it."""
    if not user_ids:
        return {}
    rows = session.scalars(
        select(CredentialSchedule).where(
            CredentialSchedule.org_id == org_id, CredentialSchedule.user_id.in_(user_ids)
        )
    )
    return {row.user_id: schedule_view(row) for row in rows}


def schedule_view(row: CredentialSchedule) -> dict[str, Any]:
    return {
        "sendAt": _iso(row.send_at),
        "state": row.state,
        "reason": row.reason,
        "to": "me" if row.recipient else "user",
        "recipient": row.recipient,
        "lastError": row.last_error,
        "scheduledBy": row.scheduled_by,
    }


def list_schedules(
    session: Session, org_id: str, *, offset: int, limit: int
) -> tuple[int, list[CredentialSchedule]]:
    """Every waiting send of the organization, soonest first."""
    where = CredentialSchedule.org_id == org_id
    total = session.scalar(select(func.count()).select_from(CredentialSchedule).where(where)) or 0
    rows = session.scalars(
        select(CredentialSchedule)
        .where(where)
        .order_by(CredentialSchedule.send_at, CredentialSchedule.user_id)
        .offset(offset)
        .limit(limit)
    ).all()
    return total, list(rows)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


# -- the worker -------------------------------------------------------------------------------


def send_due(
    factory: sessionmaker[Session],
    hashing: Hashing,
    worker_id: str,
    clock: Callable[[], datetime],
    *,
    lease: timedelta = LEASE,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    base_url: str | None = None,
) -> int:
    """Send every due credentials send (or ``limit``), organizations in turn; returns how
    many were handled. ``base_url``: the links' root now (``SCIM_BASE_URL``); None: each
    send's own (the root its scheduling request was served at)."""
    handled = 0

    def claim(org_id: str) -> CredentialSchedule | None:
        now = clock()
        stmt = (
            select(CredentialSchedule)
            .where(
                CredentialSchedule.org_id == org_id,
                CredentialSchedule.state == "scheduled",
                CredentialSchedule.send_at <= now,
                or_(
                    CredentialSchedule.lease_expires_at.is_(None),
                    CredentialSchedule.lease_expires_at < now,
                ),
            )
            .order_by(CredentialSchedule.send_at)
        )

        def take(row: CredentialSchedule) -> None:
            row.claimed_by = worker_id
            row.lease_expires_at = now + lease
            row.attempts += 1

        claimed: CredentialSchedule | None = leases.claim_first(factory, stmt, take)
        return claimed

    if (limit is not None and limit <= 0) or should_stop():
        return 0
    for row in leases.in_turn(lambda: due_orgs(factory, clock()), claim):
        try:
            _send_one(factory, hashing, worker_id, row.org_id, row.user_id, base_url)
        except Exception as exc:
            log.exception("credentials send for user %s failed", row.user_id)
            _release(factory, worker_id, row.org_id, row.user_id, clock(), exc)
        handled += 1
        if (limit is not None and handled >= limit) or should_stop():
            break
    return handled


def _scheduled(columns: Any) -> Any:
    return columns.state == "scheduled"


def due_orgs(factory: sessionmaker[Session], now: datetime) -> list[str]:
    """The organizations with a credentials send due, the one whose oldest waited longest
    first (on ``ix_credential_schedules_org_id_state_send_at``)."""
    with factory() as session:
        return leases.orgs_in_turn(
            session, CredentialSchedule.__table__, _scheduled, "send_at", now
        )


def _locked_row(session: Session, org_id: str, user_id: str) -> CredentialSchedule | None:
    return session.scalar(
        select(CredentialSchedule)
        .where(CredentialSchedule.org_id == org_id, CredentialSchedule.user_id == user_id)
        .with_for_update()
    )


def _send_one(
    factory: sessionmaker[Session],
    hashing: Hashing,
    worker_id: str,
    org_id: str,
    user_id: str,
    base_url: str | None = None,
) -> str:
    """Under the lease: make the credentials, queue the mail, delete the row; one transaction."""
    with factory() as session, session.begin():
        row = _locked_row(session, org_id, user_id)
        if row is None or row.claimed_by != worker_id or row.state != "scheduled":
            return "lost"  # cancelled, rescheduled or taken over meanwhile: not ours to send
        user = session.scalar(
            select(User).where(User.org_id == org_id, User.id == user_id).with_for_update()
        )
        delivery = credentials.Delivery(hashing=hashing, base_url=base_url or row.base_url)
        if user is not None and row.reason == "welcome" and _has_own_password(session, user):
            _dropped(session, row, user, "no welcome: the account has a password of its own since")
            return "dropped"
        try:
            if user is None:
                raise NotFoundError("The user no longer exists.")
            current = credentials.require_passwords(session, org_id)
            credentials.check_sendable(user)
            if row.recipient is None and user_address(session, user) is None:
                raise DomainError("The user has no e-mail address.")
            refused = _to_me_refusal(session, row)
            if refused:
                raise DomainError(refused)
        except DomainError as exc:
            _failed(session, row, user, exc.detail)
            return "failed"
        credentials.deliver(
            session, delivery, user, current, reason=row.reason, recipient=row.recipient
        )
        session.delete(row)
        return "sent"


def _has_own_password(session: Session, user: User) -> bool:
    """A password the person chose or the IdP set, not one of our temporary ones."""
    current = passwords.current_password(session, user)
    return current is not None and not current.temporary


def _to_me_refusal(session: Session, row: CredentialSchedule) -> str | None:
    """Why a send to the console person who scheduled it may not go out now, as the
    console would refuse it if asked today (``require("users.write", account=)``): they
    can no longer use the console to manage users (role taken back, account gone,
    deactivated or locked: a leaver's mailbox), or the account holds console roles beyond
    theirs (an org admin's password in a user manager's hands). Checked at the send, not
    only when scheduled: a year may pass between the two."""
    scheduler = row.scheduled_by_id
    if row.recipient is None or scheduler is None or scheduler == row.user_id:
        return None
    account = session.get(User, (row.org_id, scheduler))
    roles = console_access.roles_of(session, row.org_id, scheduler)
    if (
        account is None
        or account.status not in SIGN_IN_ALLOWED
        or "users.write" not in console_access.capabilities(roles)
    ):
        return "The admin who scheduled it to themselves no longer manages users."
    if console_access.beyond(session, row.org_id, roles, [row.user_id]):
        return (
            "The account now holds console roles beyond those of the admin who scheduled "
            "it to themselves: an organization admin sends its credentials."
        )
    return None


def _failed(session: Session, row: CredentialSchedule, user: User | None, detail: str) -> None:
    row.state = "failed"
    row.last_error = detail
    row.claimed_by = None
    row.lease_expires_at = None
    if user is not None:
        record(
            session,
            row.org_id,
            f"user.credentials.{row.reason}",
            outcome="failure",
            **credentials.about(user),
            detail=f"credentials not sent: {detail}",
        )


def _release(
    factory: sessionmaker[Session],
    worker_id: str,
    org_id: str,
    user_id: str,
    now: datetime,
    exc: Exception,
) -> None:
    """After an unexpected error: try again later (backoff), or fail after the last attempt."""
    with factory() as session, session.begin():
        row = _locked_row(session, org_id, user_id)
        if row is None or row.claimed_by != worker_id:
            return
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if row.attempts >= MAX_ATTEMPTS:
            user = session.get(User, (org_id, user_id))
            _failed(session, row, user, error)
            return
        row.claimed_by = None
        row.last_error = error
        row.lease_expires_at = now + leases.backoff(row.attempts)
