"""The worker's side of the outbox: claim a due mail, send it outside the claim, record the outcome.

A due mail (queued or failed, ``next_attempt_at`` passed; or sending with an
expired lease: its worker died) is claimed with the shared lease helper
(``services.leases``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so several
workers never take one mail at once. Organizations take turns (``leases.in_turn``):
one mail of each organization with due mail, the one waiting longest first, so one
organization's backlog (an initial sync's welcomes) does not hold back another's
password reset. SMTP runs after the claim committed; the outcome is written only
while this worker still holds the lease. A worker that dies after the SMTP server
accepted a mail but before recording it makes the mail go out again when the
lease expires, with the same Message-ID, so mail clients can drop the copy.
The relay's 250 to DATA is what counts as sent (``mailer``); one exchange ends by
the mailer's deadline, well within the lease.

A failure is one of three (``failure_of``). A 5yz answer about the mail (RFC 5321
§4.2.1: permanent; every recipient refused with one) abandons it at once, the answer
recorded. A 4yz answer is retried with backoff (``leases.backoff``, at most
``mail.RETRY_EVERY``) for ``mail.RETRY_WINDOW`` from the first attempt, then abandoned (an
admin may retry it). A failure of the relay itself (unreachable, no answer in time,
closed, TLS, DNS, our login refused, a 421) is retried the same way, and it also ends
the round's mail: the others are not tried (nor spend attempts) until the relay is
tried again (``Relay``: after 10 s, then twice as long each time it still fails).

A mail that carries credentials or a link into an account (``mail.CREDENTIAL_KINDS``)
is checked just before it goes (``why_unwanted``): if the account was deleted, is no
longer in a status that may receive credentials (``credentials.SENDABLE``: deactivated
or locked since it was queued), newer credentials of that account were queued after it,
the account no longer has the address it goes to (unless an admin had it sent to
themselves), or the password or link it holds no longer works (replaced, used, expired),
it is ``cancelled`` (audited as ``mail.cancelled``), never sent. (A link delivered before
its account's address changed stops working too: ``recovery`` checks the address at use,
by the same rule, ``addresses.still_has``.) Notices (password changed, MFA reset or
changed, account locked) go whatever the account's status: they hold no secret and tell
the person what happened to their account.

The address is checked last, so a mail cancelled for it is one its account was otherwise
still due. When that mail is the automatic welcome of a SCIM create (Entra and Okta create
a user, then PATCH its e-mails a moment later), the same transaction makes fresh
credentials and queues a new welcome to the account's current address, as an admin's
resend would (``credentials.deliver``; ``_welcome_again``): the new mail is checked at its
own send time by the same rule. An admin's send or reset is not repeated: see
``_welcome_again``.
"""

from __future__ import annotations

import itertools
import logging
import smtplib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any

from sqlalchemy import and_, literal_column, or_, select
from sqlalchemy.orm import Session, sessionmaker

from scim_server.audit import AuditContext, record, use_context
from scim_server.db import utcnow
from scim_server.mailer import Mailer, Outgoing
from scim_server.models import CredentialSend, CredentialToken, MailOutbox, User
from scim_server.services import credentials, leases, passwords, settings
from scim_server.services import mail as outbox
from scim_server.services.addresses import still_has, user_address
from scim_server.services.credentials import SENDABLE, Delivery
from scim_server.services.mail import MAX_LOST_LEASES, RETRY_EVERY, RETRY_WINDOW

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
# SMTP answers about the session, not the mail: AUTH required or refused (RFC 4954 §6).
_SESSION_CODES = frozenset({421, 454, 530, 534, 535, 538})
# ``why_unwanted``'s last check: the one reason a welcome is sent again (``_welcome_again``).
ADDRESS_CHANGED = "the account's e-mail address changed since it was queued"
# The kinds a welcome is mailed as: a temporary password, or an activation link.
_WELCOME_KINDS = ("welcome", "activation_link")


def _waiting(columns: Any) -> Any:
    """Mail still to send, in the words of the partial index (literal values: a parameter
    would keep SQLite, and PostgreSQL's generic plans, from using it)."""
    return columns.state.in_([literal_column("'queued'"), literal_column("'failed'")])


def failure_of(exc: BaseException) -> str:
    """What a failed send says: ``permanent`` (a 5yz answer about this mail: RFC 5321
    §4.2.1, do not repeat it), ``relay`` (the relay itself: unreachable, no answer in time,
    closed, TLS, DNS, our login or sender refused, a 421: every mail would fail alike) or
    ``transient`` (a 4yz answer about this mail)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _answer in exc.recipients.values()]
        if codes and all(500 <= code < 600 for code in codes):
            return "permanent"
        return "relay" if any(code in _SESSION_CODES for code in codes) else "transient"
    if isinstance(
        exc,
        (
            smtplib.SMTPConnectError,
            smtplib.SMTPHeloError,
            smtplib.SMTPAuthenticationError,
            smtplib.SMTPSenderRefused,
        ),
    ):
        return "relay"
    if isinstance(exc, smtplib.SMTPNotSupportedError) and "SMTPUTF8" in str(exc):
        # This mail's address needs SMTPUTF8 (RFC 6531), which the relay does not offer:
        # no retry will send it, and the relay sends the others (STARTTLS not offered, the
        # other such error, is the relay's: below).
        return "permanent"
    if isinstance(exc, smtplib.SMTPResponseException):  # DATA and the like: this mail
        if exc.smtp_code in _SESSION_CODES:
            return "relay"
        return "permanent" if 500 <= exc.smtp_code < 600 else "transient"
    # smtplib's other errors (disconnected, not supported) are OSErrors too, as are a
    # refused connection, a timeout, DNS and TLS failures, and a mail folder we cannot write.
    return "relay" if isinstance(exc, OSError) else "transient"


@dataclass
class Relay:
    """The relay as this worker last found it. After a failure of the relay itself the
    round's mail ends and no mail is tried before ``retry_at``: 10 s, then twice as long
    each time it still fails (at most ``mail.RETRY_EVERY``); one mail delivered ends it.
    A relay that takes connections and never answers held a round for every due mail's
    deadline in turn (50 x 60 s), each spending an attempt."""

    failures: int = 0
    retry_at: datetime | None = None

    def down(self, now: datetime) -> bool:
        return self.retry_at is not None and now < self.retry_at

    def failed(self, now: datetime) -> None:
        self.failures += 1
        self.retry_at = now + leases.backoff(self.failures, RETRY_EVERY)

    def worked(self) -> None:
        self.failures, self.retry_at = 0, None


def _claim(
    factory: sessionmaker[Session],
    worker_id: str,
    stmt: Any,
    *,
    now: datetime,
    domain: str,
    lease: timedelta,
) -> MailOutbox | None:
    """Lock the first mail ``stmt`` selects, mark it ours under a lease, commit."""

    def take(mail: MailOutbox) -> None:
        if mail.state == "sending":
            log.warning(
                "mail %s: the lease of %s expired; %s takes it", mail.id, mail.claimed_by, worker_id
            )
            mail.lost_leases += 1
        mail.state = "sending"
        mail.claimed_by = worker_id
        mail.lease_expires_at = now + lease
        mail.attempts += 1
        mail.first_attempt_at = mail.first_attempt_at or now
        # One Message-ID for every attempt: a copy sent twice is recognisable as one mail.
        mail.message_id = mail.message_id or make_msgid(domain=domain)

    claimed: MailOutbox | None = leases.claim_first(factory, stmt, take)
    return claimed


def claim_mail(
    factory: sessionmaker[Session],
    worker_id: str,
    *,
    now: datetime,
    domain: str,
    lease: timedelta = LEASE,
    org_id: str | None = None,
) -> MailOutbox | None:
    """Take one due mail and commit the lease; a detached copy, or None when none is due.

    ``org_id``: that organization's oldest waiting mail (the worker's turns, on the
    partial index of waiting mail); None: the oldest due mail of any, or one whose
    worker died (its lease expired)."""
    if org_id is not None:
        stmt = (
            select(MailOutbox)
            .where(
                MailOutbox.org_id == org_id,
                _waiting(MailOutbox),
                MailOutbox.next_attempt_at <= now,
            )
            .order_by(MailOutbox.next_attempt_at)
        )
    else:
        due = or_(
            and_(MailOutbox.state.in_(("queued", "failed")), MailOutbox.next_attempt_at <= now),
            and_(MailOutbox.state == "sending", MailOutbox.lease_expires_at < now),
        )
        stmt = (
            select(MailOutbox)
            .where(due)
            .order_by(MailOutbox.next_attempt_at, MailOutbox.created_at)
        )
    return _claim(factory, worker_id, stmt, now=now, domain=domain, lease=lease)


def claim_lost(
    factory: sessionmaker[Session],
    worker_id: str,
    *,
    now: datetime,
    domain: str,
    lease: timedelta = LEASE,
) -> MailOutbox | None:
    """Take a mail whose worker died while sending it (its lease expired), if there is one."""
    stmt = (
        select(MailOutbox)
        .where(MailOutbox.state == "sending", MailOutbox.lease_expires_at < now)
        .order_by(MailOutbox.next_attempt_at)
    )
    return _claim(factory, worker_id, stmt, now=now, domain=domain, lease=lease)


def due_orgs(factory: sessionmaker[Session], now: datetime) -> list[str]:
    """The organizations with mail due, the one whose oldest waited longest first."""
    with factory() as session:
        return leases.orgs_in_turn(session, MailOutbox.__table__, _waiting, "next_attempt_at", now)


def deliver_due(
    factory: sessionmaker[Session],
    mailer: Mailer,
    worker_id: str,
    clock: Callable[[], datetime],
    *,
    delivery: Delivery,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    relay: Relay | None = None,
) -> int:
    """Send due mail until none is left (or ``limit``), organizations in turn; returns how
    many were handled. A failure of the relay ends it (``relay``, the worker's: no mail is
    tried again before its ``retry_at``). ``delivery``: how the worker makes credentials
    (argon2 cost, ``SCIM_BASE_URL``), for a welcome sent again to a corrected address."""
    relay = relay or Relay()
    domain = mailer.sender.rpartition("@")[2].strip(">") or "localhost"
    handled = 0

    def more() -> bool:
        return (limit is None or handled < limit) and not should_stop() and not relay.down(clock())

    def lost() -> Iterator[MailOutbox]:
        while (mail := claim_lost(factory, worker_id, now=clock(), domain=domain)) is not None:
            yield mail

    def claim_of(org_id: str) -> MailOutbox | None:
        return claim_mail(factory, worker_id, now=clock(), domain=domain, org_id=org_id)

    if not more():
        return 0
    turns = leases.in_turn(lambda: due_orgs(factory, clock()), claim_of)
    for mail in itertools.chain(lost(), turns):
        deliver(factory, mailer, mail, worker_id, clock, relay, delivery=delivery)
        handled += 1
        if not more():
            break
    return handled


def deliver(
    factory: sessionmaker[Session],
    mailer: Mailer,
    mail: MailOutbox,
    worker_id: str,
    clock: Callable[[], datetime],
    relay: Relay | None = None,
    *,
    delivery: Delivery,
) -> str:
    """Send one claimed mail and record the outcome; returns the mail's new state.

    ``relay`` learns whether the relay worked (``Relay``); ``delivery``: see ``deliver_due``."""
    if mail.lost_leases >= MAX_LOST_LEASES:
        # Its workers kept dying (lease expired each time): stop trying.
        return record_outcome(
            factory, mail, worker_id, clock(), "its workers stopped", give_up=True
        )
    if mail.body_text is None or mail.body_html is None or mail.message_id is None:
        return record_outcome(factory, mail, worker_id, clock(), "no body to send", give_up=True)
    if mail.kind in outbox.CREDENTIAL_KINDS and mail.user_id is not None:
        unsent = cancel_unwanted(factory, mail, worker_id, clock(), delivery=delivery)
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
    except Exception as exc:  # any SMTP, network or disk failure
        error = f"{type(exc).__name__}: {exc}"[:2000]
        failure = failure_of(exc)
        log.warning(
            "mail %s (%s): attempt %s failed (%s): %s",
            mail.id,
            mail.kind,
            mail.attempts,
            failure,
            error,
        )
        now = clock()
        if failure == "relay" and relay is not None:
            relay.failed(now)
        return record_outcome(factory, mail, worker_id, now, error, give_up=failure == "permanent")
    if relay is not None:
        relay.worked()
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


def why_unwanted(session: Session, mail: MailOutbox, now: datetime | None = None) -> str | None:
    """Why credentials (or a link) about to go out at ``now`` must not, or None when they may.

    The account's row is locked: a SCIM write of it in flight is waited for, and a welcome
    sent again (``_welcome_again``) writes it. The address is checked last: a mail refused
    for it alone (``ADDRESS_CHANGED``) is one the account is otherwise still due."""
    now = now or utcnow()
    user = session.get(User, (mail.org_id, mail.user_id), with_for_update=True)
    if user is None:
        return "the account no longer exists"
    if user.status not in SENDABLE:
        # credentials.py: a deactivated or locked account receives nothing.
        return f"the account is {user.status}"
    if not settings.passwords_allowed(
        session, mail.org_id, settings.get_settings(session, mail.org_id)
    ):
        # Single sign-on only since it was queued: a password or link it would not sign in with.
        return "the organization signs in through single sign-on only"
    # Whatever else a reset ended (an admin's removes the password and the activation
    # link) is a dead secret, below.
    newer = session.scalar(
        select(MailOutbox.id)
        .where(
            MailOutbox.org_id == mail.org_id,
            MailOutbox.created_at > mail.created_at,
            MailOutbox.user_id == mail.user_id,
            MailOutbox.kind.in_(outbox.replacing(mail.kind)),
        )
        .limit(1)
    )
    if newer is not None:
        return "replaced by newer credentials"
    dead = _dead_secret(session, mail, user, now)
    if dead is not None:
        return dead
    # for_admin None: queued before the server kept who it was for.
    if mail.for_admin is False and not still_has(session, user, mail.recipient):
        # The IdP or an admin corrected it (a typo, a mailbox given to someone else):
        # a secret does not go to an address the account no longer has.
        return ADDRESS_CHANGED
    return None


def _dead_secret(session: Session, mail: MailOutbox, user: User, now: datetime) -> str | None:
    """Why the temporary password or link the mail holds no longer works, or None.

    A newer credentials mail was checked first: here the password or link was replaced
    without one (the IdP set the password), used, or expired while the mail waited (a
    worker outage, a relay down for hours)."""
    if mail.kind in outbox.PASSWORD_KINDS:
        current = passwords.current_password(session, user)
        if current is None:
            return "the temporary password it holds was removed"
        if not current.temporary:
            return "the account has a password of its own since"
        if current.expires_at is not None and current.expires_at <= now:
            return "the temporary password expired"
        return None
    purpose = outbox.LINK_KINDS.get(mail.kind)
    if purpose is None:
        return None
    link = session.scalar(
        select(CredentialToken)
        .where(
            CredentialToken.org_id == user.org_id,
            CredentialToken.user_id == user.id,
            CredentialToken.purpose == purpose,
        )
        .order_by(CredentialToken.created_at.desc())
        .limit(1)
    )
    if link is None:
        return "the link no longer exists"
    # ``recovery.end_expired_recoveries`` ends an expired link as used at its expiry.
    if link.expires_at <= now or link.used_at == link.expires_at:
        return "the link expired"
    if link.used_at is not None:
        return "the link was used or withdrawn"
    return None


def cancel_unwanted(
    factory: sessionmaker[Session],
    claimed: MailOutbox,
    worker_id: str,
    now: datetime | None = None,
    *,
    delivery: Delivery,
) -> str | None:
    """Cancel a claimed credentials mail its account may no longer receive (``why_unwanted``);
    returns the mail's state then, or None: send it. A welcome cancelled only because the
    address changed is followed, in the same transaction, by a new one (``_welcome_again``)."""
    with use_context(_worker_context(worker_id)), factory() as session, session.begin():
        mail = _held(session, claimed, worker_id)
        if isinstance(mail, str):
            return mail
        why = why_unwanted(session, mail, now)
        if why is None:
            return None
        outbox.cancel(session, mail, why)
        log.info("mail %s (%s) cancelled: %s", mail.id, mail.kind, why)
        if why == ADDRESS_CHANGED:
            _welcome_again(session, mail, delivery)
        return mail.state


def _is_welcome(session: Session, mail: MailOutbox) -> bool:
    """Whether ``mail`` is the automatic welcome of a SCIM create (its credentials send's
    reason; an admin's send, resend or schedule is mailed as the same kinds)."""
    if mail.kind not in _WELCOME_KINDS:
        return False
    reason = session.scalar(
        select(CredentialSend.reason)
        .where(
            CredentialSend.org_id == mail.org_id,
            CredentialSend.user_id == mail.user_id,
            CredentialSend.mail_id == mail.id,
        )
        .limit(1)
    )
    return reason == "welcome"


def _welcome_again(session: Session, cancelled: MailOutbox, delivery: Delivery) -> None:
    """After ``cancelled`` (a welcome refused only for its address: the account, locked by
    ``why_unwanted``, is otherwise still due it), queue a new welcome to the account's
    current address, in the cancellation's transaction: new credentials as an admin's
    resend makes them (``credentials.deliver``; the old password or link dies, its secret
    never reused), ``user.credentials.welcome`` saying why. No address left, or passwords
    no longer allowed: nothing is queued, and a failed ``user.credentials.welcome`` says why.

    Only the automatic welcome: no person asked for it and no one watches for it, and
    without it a new employee has no way in. An admin's send, resend, schedule or reset was
    that admin's act at that moment (the outbox shows it cancelled, and why: they decide
    whether to send again), and a reset link the person asked for (forgot password) is not
    mailed to an address that never asked.
    """
    if cancelled.user_id is None or not _is_welcome(session, cancelled):
        return
    user = session.get(User, (cancelled.org_id, cancelled.user_id))
    if user is None:  # why_unwanted found it, locked: it cannot be gone
        return
    before = cancelled.recipient
    address = user_address(session, user)
    current = settings.get_settings(session, user.org_id)
    why_not = None
    if not settings.passwords_allowed(session, user.org_id, current):
        why_not = "the organization signs in through single sign-on only since"
    elif address is None:
        why_not = f"the account has no e-mail address any more (it was {before})"
    if why_not is not None:
        record(
            session,
            user.org_id,
            "user.credentials.welcome",
            outcome="failure",
            **credentials.about(user),
            detail=f"welcome not sent again: {why_not}",
        )
        log.info("user %s: welcome not sent again: %s", user.id, why_not)
        return
    sent = credentials.deliver(
        session,
        delivery,
        user,
        current,
        reason="welcome",
        note=f"sent again: the welcome queued for {before} was cancelled, {ADDRESS_CHANGED}",
        previous=before,
    )
    log.info("mail %s: the welcome sent again to the account's new address", sent.mail_id)


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
        first = mail.first_attempt_at or now
        if give_up or now - first >= RETRY_WINDOW:
            mail.state = "abandoned"
            record(
                session,
                mail.org_id,
                "mail.abandoned",
                outcome="failure",
                detail=f"{about}, after {mail.attempts} attempt(s): {error}",
                **fields,
            )
        else:
            mail.state = "failed"
            mail.next_attempt_at = now + leases.backoff(mail.attempts, RETRY_EVERY)
        return mail.state
