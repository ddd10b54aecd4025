"""The worker's side of the outbox: claim a due mail, send it outside the claim, record the outcome.

A due mail (queued or failed, ``next_attempt_at`` passed; or sending with an
expired lease: its worker died) is claimed with the shared lease helper
(``services.leases``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so several
workers never take one mail at once. SMTP runs after the claim committed; the
outcome is written only while this worker still holds the lease. Each failure
is retried with exponential backoff; after ``MAX_ATTEMPTS`` the mail is
abandoned (an admin may retry it). A worker that dies after the SMTP server
accepted a mail but before recording it makes the mail go out again when the
lease expires, with the same Message-ID, so mail clients can drop the copy.
The relay's 250 to DATA is what counts as sent (``mailer``); one exchange ends by
the mailer's deadline, well within the lease.

A mail that carries credentials or a link into an account (``mail.CREDENTIAL_KINDS``)
is checked just before it goes: if the account was deleted, is no longer in a status
that may receive credentials (``credentials.SENDABLE``: deactivated or locked since it
was queued), or newer credentials of that account were queued after it, it is
``cancelled`` (audited as ``mail.cancelled``), never sent. Notices (password changed,
MFA reset or changed, account locked) go whatever the account's status: they hold no
secret and tell the person what happened to their account.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import make_msgid

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from scim_server.audit import AuditContext, record, use_context
from scim_server.mailer import Mailer, Outgoing
from scim_server.models import MailOutbox, User
from scim_server.services import leases
from scim_server.services import mail as outbox
from scim_server.services.credentials import SENDABLE
from scim_server.services.mail import MAX_ATTEMPTS

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)


def claim_mail(
    factory: sessionmaker[Session],
    worker_id: str,
    *,
    now: datetime,
    domain: str,
    lease: timedelta = LEASE,
) -> MailOutbox | None:
    """Take one due mail and commit the lease; a detached copy, or None when none is due."""
    due = or_(
        and_(MailOutbox.state.in_(("queued", "failed")), MailOutbox.next_attempt_at <= now),
        and_(MailOutbox.state == "sending", MailOutbox.lease_expires_at < now),
    )
    stmt = select(MailOutbox).where(due).order_by(MailOutbox.next_attempt_at, MailOutbox.created_at)

    def take(mail: MailOutbox) -> None:
        if mail.state == "sending":
            log.warning(
                "mail %s: the lease of %s expired; %s takes it", mail.id, mail.claimed_by, worker_id
            )
        mail.state = "sending"
        mail.claimed_by = worker_id
        mail.lease_expires_at = now + lease
        mail.attempts += 1
        # One Message-ID for every attempt: a copy sent twice is recognisable as one mail.
        mail.message_id = mail.message_id or make_msgid(domain=domain)

    claimed: MailOutbox | None = leases.claim_first(factory, stmt, take)
    return claimed


def deliver_due(
    factory: sessionmaker[Session],
    mailer: Mailer,
    worker_id: str,
    clock: Callable[[], datetime],
    *,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Send due mail until none is left (or ``limit``); returns how many were handled."""
    domain = mailer.sender.rpartition("@")[2].strip(">") or "localhost"
    handled = 0
    while (limit is None or handled < limit) and not should_stop():
        mail = claim_mail(factory, worker_id, now=clock(), domain=domain)
        if mail is None:
            break
        deliver(factory, mailer, mail, worker_id, clock)
        handled += 1
    return handled


def deliver(
    factory: sessionmaker[Session],
    mailer: Mailer,
    mail: MailOutbox,
    worker_id: str,
    clock: Callable[[], datetime],
) -> str:
    """Send one claimed mail and record the outcome; returns the mail's new state."""
    if mail.attempts > MAX_ATTEMPTS:
        # Its workers kept dying (lease expired each time): stop trying.
        return record_outcome(
            factory, mail, worker_id, clock(), "its workers stopped", give_up=True
        )
    if mail.body_text is None or mail.body_html is None or mail.message_id is None:
        return record_outcome(factory, mail, worker_id, clock(), "no body to send", give_up=True)
    if mail.kind in outbox.CREDENTIAL_KINDS and mail.user_id is not None:
        unsent = cancel_unwanted(factory, mail, worker_id)
        if unsent is not None:
            return unsent
    outgoing = Outgoing(
        id=mail.id,
        recipient=mail.recipient,
        subject=mail.subject,
        body_text=mail.body_text,
        body_html=mail.body_html,
        message_id=mail.message_id,
    )
    try:
        where = mailer.send(outgoing, clock())
    except Exception as exc:  # any SMTP, network or disk failure is retried
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("mail %s (%s): attempt %s failed: %s", mail.id, mail.kind, mail.attempts, error)
        return record_outcome(factory, mail, worker_id, clock(), error)
    if mailer.smtp is None:
        log.info("mail %s (%s) written to %s", mail.id, mail.kind, where)
    else:
        log.info("mail %s (%s) sent through %s", mail.id, mail.kind, where)
    return record_outcome(factory, mail, worker_id, clock(), None)


def _worker_context(worker_id: str) -> AuditContext:
    return AuditContext(
        actor_type="system", actor_id=worker_id[:64], actor_name="scim-server worker"
    )


def _held(session: Session, claimed: MailOutbox, worker_id: str) -> MailOutbox | str:
    """The mail's row, locked, if this worker still holds its lease; else (logged) the
    state it is in now, or ``gone``."""
    mail = session.scalar(
        select(MailOutbox)
        .where(MailOutbox.org_id == claimed.org_id, MailOutbox.id == claimed.id)
        .with_for_update()
    )
    if mail is None or mail.state != "sending" or mail.claimed_by != worker_id:
        log.warning("mail %s: no longer held by %s; leaving it", claimed.id, worker_id)
        return mail.state if mail is not None else "gone"
    return mail


def why_unwanted(session: Session, mail: MailOutbox) -> str | None:
    """Why credentials (or a link) about to go out must not, or None when they may."""
    user = session.get(User, (mail.org_id, mail.user_id))
    if user is None:
        return "the account no longer exists"
    if user.status not in SENDABLE:
        # credentials.py: a deactivated or locked account receives nothing.
        return f"the account is {user.status}"
    newer = session.scalar(
        select(MailOutbox.id)
        .where(
            MailOutbox.org_id == mail.org_id,
            MailOutbox.created_at > mail.created_at,
            MailOutbox.user_id == mail.user_id,
            MailOutbox.kind.in_(outbox.CREDENTIAL_KINDS),
        )
        .limit(1)
    )
    if newer is not None:
        return "replaced by newer credentials"
    return None


def cancel_unwanted(
    factory: sessionmaker[Session], claimed: MailOutbox, worker_id: str
) -> str | None:
    """Cancel a claimed credentials mail its account may no longer receive (``why_unwanted``);
    returns the mail's state then, or None: send it."""
    with use_context(_worker_context(worker_id)), factory() as session, session.begin():
        mail = _held(session, claimed, worker_id)
        if isinstance(mail, str):
            return mail
        why = why_unwanted(session, mail)
        if why is None:
            return None
        outbox.cancel(session, mail, why)
        log.info("mail %s (%s) cancelled: %s", mail.id, mail.kind, why)
        return mail.state


def record_outcome(
    factory: sessionmaker[Session],
    claimed: MailOutbox,
    worker_id: str,
    now: datetime,
    error: str | None,
    *,
    give_up: bool = False,
) -> str:
    """Record sent, failed (retried later) or abandoned, with audit events, if our lease holds."""
    with use_context(_worker_context(worker_id)), factory() as session, session.begin():
        mail = _held(session, claimed, worker_id)
        if isinstance(mail, str):
            return mail
        mail.claimed_by = None
        mail.lease_expires_at = None
        fields = {"resource_type": "Mail", "resource_id": mail.id}
        about = f"{mail.kind} to {mail.recipient}"
        if error is None:
            mail.state = "sent"
            mail.sent_at = now
            mail.last_error = None
            # The body may hold a temporary password: it is not kept once delivered.
            mail.body_text = mail.body_html = None
            record(session, mail.org_id, "mail.sent", detail=about, **fields)
            return mail.state
        mail.last_error = error
        record(
            session,
            mail.org_id,
            "mail.failed",
            outcome="failure",
            detail=f"{about}, attempt {mail.attempts}: {error}",
            **fields,
        )
        if give_up or mail.attempts >= MAX_ATTEMPTS:
            mail.state = "abandoned"
            record(
                session,
                mail.org_id,
                "mail.abandoned",
                outcome="failure",
                detail=f"{about}, after {mail.attempts} attempts: {error}",
                **fields,
            )
        else:
            mail.state = "failed"
            mail.next_attempt_at = now + leases.backoff(mail.attempts)
        return mail.state
