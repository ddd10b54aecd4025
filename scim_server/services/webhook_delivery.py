"""The worker's side of webhooks: claim a due delivery, POST it outside the claim, record it.

The claim is the shared lease helper (``services.leases``: ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so two workers never send one delivery at once. A
delivery is due only when no earlier delivery about the same resource, to the
same subscription, is still open: deliveries go out in order per resource.
A failure is retried with exponential backoff (``leases.backoff``; later when a 429 or
503 answer's ``Retry-After`` asks for longer, up to an hour) for up to
``RETRY_WINDOW`` (3 days) from the delivery's first attempt, or from its
subscription's last re-enabling (``enabled_at``) if later, then given up: a
delivery that waited (behind an earlier one about its resource, or while its
subscription was disabled) still has its own 3 days of retries. A subscription
whose deliveries have failed without a success for that whole window is
disabled, with an audit event (``webhook.disabled``), the reason on the
subscription (the admin API and the CLI show it) and a mail to its alert
address, if it has one.
At least once: a worker that dies after the POST but before recording it
leaves the lease to expire, and the message goes again with the same
``webhook-id`` (receivers deduplicate on it); after ``MAX_LOST_LEASES`` such
claims the delivery is failed, with the reason in its log, rather than sent for
ever. Each outcome is recorded in a savepoint of its own, so one that cannot be
stored loses only itself, not the batch's others.

The subscription's secrets are stored sealed (``services.webhook_secrets``) and opened
here, just before signing, with the server secret the worker was given. One that does
not open (SCIM_SECRET_KEY changed, or a value copied from another subscription) sends
nothing: the attempt is a failure saying why, retried like any other (an operator's
``encrypt-secrets`` with the previous key, or a rotation, lets it go out), so a
subscription left so for the retry window is disabled and its alert address told.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, literal_column, or_, select
from sqlalchemy.orm import Session, aliased, object_session, sessionmaker

from scim_server import jsonfast
from scim_server.audit import AuditContext, record, use_context
from scim_server.db import DATABASE_UNAVAILABLE
from scim_server.events import feed
from scim_server.models import Event, WebhookAttempt, WebhookDelivery, WebhookSubscription
from scim_server.sealing import SealedSecretError
from scim_server.services import leases, mail, webhook_secrets, webhooks
from scim_server.webhook_http import Answer, OutboundPolicy, post, printable, signed_headers

log = logging.getLogger(__name__)

# At most BATCH deliveries a claim (fewer with a long timeout: ``batch_for``).
BATCH = 10
LEASE = timedelta(minutes=5)
RETRY_WINDOW = timedelta(days=3)
# Claims whose worker stopped before recording the outcome (its lease expired), as mail's
# MAX_ATTEMPTS: past this many, the delivery is failed instead of sent again.
MAX_LOST_LEASES = 5
OPEN = ("pending", "sending")
RESPONSE_KEPT = 1000
# The sign-in link in the mail to an alert address, when the worker is given no SCIM_BASE_URL.
DEFAULT_BASE_URL = "http://localhost:8000"


def due_statement(now: datetime) -> object:
    """Due deliveries of enabled subscriptions whose resource has no earlier open delivery."""
    earlier = aliased(WebhookDelivery)
    enabled = select(WebhookSubscription.id).where(WebhookSubscription.enabled.is_(True))
    blocked = exists().where(
        earlier.subscription_id == WebhookDelivery.subscription_id,
        earlier.resource_key == WebhookDelivery.resource_key,
        earlier.id < WebhookDelivery.id,
        earlier.state.in_(OPEN),
    )
    due = or_(
        and_(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now),
        and_(WebhookDelivery.state == "sending", WebhookDelivery.lease_expires_at < now),
    )
    return (
        select(WebhookDelivery)
        .where(
            due,
            # A test message goes out even to a disabled subscription: how an admin checks
            # that the receiver works again before enabling it.
            or_(
                WebhookDelivery.subscription_id.in_(enabled),
                WebhookDelivery.event_type == webhooks.TEST_TYPE,
            ),
            ~blocked,
        )
        .order_by(WebhookDelivery.id)
    )


def batch_for(policy: OutboundPolicy) -> tuple[int, timedelta]:
    """How many deliveries one claim takes, and their lease.

    A batch is recorded only once all of it is sent, so its POSTs, each ended by the
    policy's deadline, must end well within the lease: they take at most half of it, the
    rest left to name lookups (the deadline does not bound them), the claim and the record.
    The default 10 s gives BATCH (10) deliveries, 100 s of a 5-minute lease; 60 s gives 2;
    past 150 s a batch is one delivery and its lease twice the timeout.
    """
    per = max(policy.timeout, 1.0)
    size = max(1, min(BATCH, int(LEASE.total_seconds() / 2 // per)))
    return size, max(LEASE, timedelta(seconds=2 * size * per))


@dataclass(frozen=True)
class Claimed:
    """A claimed delivery with what sending it needs, read in the claim's transaction."""

    delivery: WebhookDelivery
    subscription: WebhookSubscription | None  # None: deleted since
    message: dict[str, Any] | None  # None: its event is past retention
    lost_leases: int = 0  # earlier claims whose outcome was never recorded


def claim_deliveries(
    factory: sessionmaker[Session],
    worker_id: str,
    *,
    now: datetime,
    limit: int = BATCH,
    lease: timedelta = LEASE,
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries (never two about one resource) and commit the lease."""
    loaded: dict[int, tuple[WebhookSubscription | None, dict[str, Any] | None, int]] = {}

    def take(delivery: WebhookDelivery) -> None:
        session = object_session(delivery)
        assert session is not None
        lost = 0
        if delivery.state == "sending":
            log.warning("delivery %s: lease of %s expired", delivery.id, delivery.claimed_by)
            # Each claim counts an attempt; each recorded outcome logs one.
            lost = delivery.attempts - _recorded_attempts(session, delivery.id)
        delivery.state = "sending"
        delivery.claimed_by = worker_id
        delivery.lease_expires_at = now + lease
        delivery.attempts += 1
        sub = session.get(WebhookSubscription, (delivery.org_id, delivery.subscription_id))
        message = _message(session, delivery) if sub is not None else None
        loaded[delivery.id] = (sub, message, lost)

    # Leases run out first (a worker died mid-batch), then the organizations in turn: an
    # equal share of the batch each, the one whose oldest due delivery waited longest
    # first, so one organization's receiver that never answers (each attempt its whole
    # timeout) holds back no other's webhooks (as mail and credentials sends do).
    base: Any = due_statement(now)
    rows: list[WebhookDelivery] = leases.claim_many(
        factory, base.where(WebhookDelivery.state == "sending"), take, limit
    )
    orgs = due_orgs(factory, now)
    share = max(1, -(-(limit - len(rows)) // max(1, len(orgs))))
    for org_id in orgs:
        if len(rows) >= limit:
            break
        wanted = min(share, limit - len(rows))
        rows += leases.claim_many(
            factory,
            base.where(WebhookDelivery.org_id == org_id, WebhookDelivery.state == "pending"),
            take,
            wanted,
        )
    return [Claimed(d, *loaded[d.id]) for d in rows]


def _pending(columns: Any) -> Any:
    """A delivery still to send, in the words of the partial index (a literal: a parameter
    would keep SQLite, and PostgreSQL's generic plans, from using it)."""
    return columns.state == literal_column("'pending'")


def due_orgs(factory: sessionmaker[Session], now: datetime) -> list[str]:
    """The organizations with a pending delivery due, the one whose oldest waited longest
    first (on ``ix_webhook_deliveries_pending_org_id_next_attempt_at``)."""
    with factory() as session:
        return leases.orgs_in_turn(
            session, WebhookDelivery.__table__, _pending, "next_attempt_at", now
        )


def deliver_due(
    factory: sessionmaker[Session],
    policy: OutboundPolicy,
    worker_id: str,
    clock: Callable[[], datetime],
    *,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    base_url: str = DEFAULT_BASE_URL,
    server_secret: bytes,
) -> int:
    """Send due deliveries until none is left (or ``limit``); returns how many were handled.

    A batch is claimed in one transaction, sent one by one, and its outcomes recorded in one
    transaction: two commits per batch, not per delivery. ``server_secret`` (the app's
    ``scim_server.sealing.encryption_secret``) opens the subscriptions' signing secrets.
    """
    handled = 0
    batch_size, lease = batch_for(policy)
    while (limit is None or handled < limit) and not should_stop():
        size = batch_size if limit is None else min(batch_size, limit - handled)
        batch = claim_deliveries(factory, worker_id, now=clock(), limit=size, lease=lease)
        if not batch:
            break
        outcomes = [
            (claimed.delivery, send(policy, claimed, clock, server_secret)) for claimed in batch
        ]
        record_outcomes(factory, worker_id, clock(), outcomes, base_url=base_url)
        handled += len(batch)
    return handled


GAP_TYPE = "webhook.gap"


def gap_text(first: int, last: int) -> str:
    """What was lost and how to recover, for the delivery log and the mail."""
    span = f"event {first} was" if first == last else f"events {first} to {last} were"
    return (
        f"{span} deleted by event retention (SCIM_EVENTS_RETENTION_DAYS) before this "
        "webhook sent them (it was disabled, or behind): they cannot be sent or replayed. "
        "Resync your product from the current state (GET /api/v1/users, GET /scim/v2/Groups), "
        f"then rely on the events after {last}, which follow as usual"
    )


def announce_gap(
    session: Session, sub: WebhookSubscription, first: int, last: int, base_url: str
) -> str:
    """Events ``first`` to ``last`` will never reach ``sub``: a ``webhook.gap`` audit event
    and a mail to its alert address, in the caller's transaction. Found at fan-out (never
    made into deliveries) or at a delivery whose event retention deleted meanwhile (its
    receiver down, or the webhook disabled, that long). Returns the text said."""
    text = gap_text(first, last)
    record(
        session,
        sub.org_id,
        GAP_TYPE,
        outcome="failure",
        resource_type="Webhook",
        resource_id=sub.id,
        detail=f"{sub.url}: {text}"[:2000],
        changes={"missed": {"from": first, "to": last}, "resumed_at": last + 1},
    )
    log.warning("webhook %s (%s): %s", sub.id, sub.url, text)
    if sub.alert_email:
        context = {"login_url": mail.login_url(base_url), "webhook_url": sub.url, "reason": text}
        mail.queue_mail(session, sub.org_id, "webhook_gap", sub.alert_email, context)
    return text


def _kept(body: str) -> str:
    """The first ``RESPONSE_KEPT`` bytes of a response (UTF-8; a character cut at the end
    dropped), as README says: characters would keep up to four times as many bytes."""
    return body.encode("utf-8")[:RESPONSE_KEPT].decode("utf-8", "ignore")


def _recorded_attempts(session: Session, delivery_id: int) -> int:
    stmt = select(func.count()).select_from(WebhookAttempt)
    return int(session.scalar(stmt.where(WebhookAttempt.delivery_id == delivery_id)) or 0)


def _first_attempt_at(session: Session, delivery_id: int) -> datetime | None:
    stmt = select(func.min(WebhookAttempt.at)).where(WebhookAttempt.delivery_id == delivery_id)
    first: datetime | None = session.scalar(stmt)
    return first


def _message(session: Session, delivery: WebhookDelivery) -> dict[str, Any] | None:
    if delivery.payload is not None:
        return delivery.payload
    event = session.scalar(
        select(Event).where(Event.org_id == delivery.org_id, Event.id == delivery.event_id)
    )
    return feed.envelope(event) if event is not None else None


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: the receiver's answer (if any) and the error (None: delivered)."""

    answer: Answer | None
    error: str | None
    give_up: bool = False
    purged: bool = False  # its event was deleted by retention first: a gap (``announce_gap``)


def send(
    policy: OutboundPolicy,
    claimed: Claimed,
    clock: Callable[[], datetime],
    server_secret: bytes,
) -> Outcome:
    """POST one claimed delivery, signed; no database work."""
    delivery, sub, message = claimed.delivery, claimed.subscription, claimed.message
    if sub is None:
        return Outcome(None, "the subscription was deleted", give_up=True)
    if message is None:
        return Outcome(None, "the event is past retention", give_up=True, purged=True)
    if claimed.lost_leases >= MAX_LOST_LEASES:
        why = f"its workers stopped before recording {claimed.lost_leases} attempts"
        log.warning("webhook delivery %s given up: %s", delivery.id, why)
        return Outcome(None, why, give_up=True)
    body = jsonfast.dumps_bytes(message)
    # The signature's timestamp is the real time of sending (receivers reject a stale one);
    # the injected clock only schedules retries.
    sent_at = int(time.time())
    try:
        secrets = webhook_secrets.secrets_in_use(sub, clock(), server_secret)
    except SealedSecretError as err:
        # Nothing to sign with: not sent, the reason in the log (never a secret).
        log.error("webhook delivery %s (webhook %s) not sent: %s", delivery.id, sub.id, err)
        return Outcome(None, str(err)[:2000])
    headers = signed_headers(secrets, str(message["id"]), sent_at, body)
    try:
        answer = post(sub.url, body, headers, policy)
    except Exception as exc:  # refused address, DNS, connection, TLS, timeout: all retried
        # The message may quote the receiver (a bad status line): printable, as its body.
        error = printable(f"{type(exc).__name__}: {exc}")[:2000]
        log.warning("webhook delivery %s to %s failed: %s", delivery.id, sub.url, error)
        return Outcome(None, error)
    if 200 <= answer.status < 300:
        return Outcome(answer, None)
    error = f"HTTP {answer.status}"
    if answer.status < 400:
        error += " (redirects are not followed)"
    return Outcome(answer, error)


def record_outcomes(
    factory: sessionmaker[Session],
    worker_id: str,
    now: datetime,
    outcomes: list[tuple[WebhookDelivery, Outcome]],
    *,
    base_url: str = DEFAULT_BASE_URL,
) -> list[str]:
    """Log each attempt: delivered, retried later or failed; disable a long-failing subscription.

    Only deliveries this worker still holds are recorded. Subscriptions are locked in one
    order (by id) whoever records, so two workers' batches never deadlock. Each outcome is
    recorded in its own savepoint: one the database refuses stays unrecorded (``sending``,
    claimed again after its lease, at most ``MAX_LOST_LEASES`` times) and the others are
    kept, so deliveries already sent are not sent again for it.
    """
    context = AuditContext(
        actor_type="system", actor_id=worker_id[:64], actor_name="scim-server worker"
    )
    ordered = sorted(outcomes, key=lambda item: (item[0].subscription_id, item[0].id))
    with use_context(context), factory() as session, session.begin():
        return [_record_apart(session, worker_id, now, c, o, base_url) for c, o in ordered]


def _record_apart(
    session: Session,
    worker_id: str,
    now: datetime,
    claimed: WebhookDelivery,
    outcome: Outcome,
    base_url: str,
) -> str:
    """``_record`` in a savepoint; "unrecorded" when it failed (logged), but for an outage."""
    try:
        with session.begin_nested():
            return _record(session, worker_id, now, claimed, outcome, base_url)
    except DATABASE_UNAVAILABLE:
        raise  # the transaction is gone: the worker's loop backs off
    except Exception:
        log.exception("webhook delivery %s: its outcome could not be recorded", claimed.id)
        return "unrecorded"


def _record(
    session: Session,
    worker_id: str,
    now: datetime,
    claimed: WebhookDelivery,
    outcome: Outcome,
    base_url: str,
) -> str:
    delivery = session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.id == claimed.id).with_for_update()
    )
    if delivery is None or delivery.state != "sending" or delivery.claimed_by != worker_id:
        log.warning("webhook delivery %s: no longer held by %s", claimed.id, worker_id)
        return delivery.state if delivery is not None else "gone"
    answer, error = outcome.answer, outcome.error
    status = answer.status if answer is not None else None
    window_start = _first_attempt_at(session, delivery.id) or now
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempt=delivery.attempts,
            at=now,
            status=status,
            latency_ms=answer.latency_ms if answer is not None else 0,
            response=_kept(answer.body) if answer is not None else None,
            error=error,
        )
    )
    delivery.claimed_by = None
    delivery.lease_expires_at = None
    delivery.last_status = status
    delivery.last_error = error
    sub = session.scalar(
        select(WebhookSubscription)
        .where(
            WebhookSubscription.org_id == delivery.org_id,
            WebhookSubscription.id == delivery.subscription_id,
        )
        .with_for_update()
    )
    if error is None:
        delivery.state = "delivered"
        delivery.delivered_at = now
        if sub is not None:
            sub.failing_since = None
        return delivery.state
    if sub is not None and sub.enabled_at is not None:
        # Enabled again since its first attempt: what it waited while off is not retrying.
        window_start = max(window_start, sub.enabled_at)
    if outcome.give_up or now - window_start >= RETRY_WINDOW:
        delivery.state = "failed"
    else:
        delivery.state = "pending"
        delivery.next_attempt_at = now + _retry_delay(delivery.attempts, answer)
    if sub is not None and not outcome.give_up:
        _note_failure(session, sub, now, base_url)
    if sub is not None and outcome.purged and delivery.position is not None:
        # Retention deleted its event while the receiver was down (or the webhook off) that
        # long: a gap, said as the fan-out says one.
        announce_gap(session, sub, delivery.position, delivery.position, base_url)
    return delivery.state


# RFC 6585 §4 (429 Too Many Requests), RFC 9110 §15.6.4 (503 Service Unavailable): the
# statuses whose Retry-After says when the receiver will take requests again.
RETRY_AFTER_STATUSES = frozenset({429, 503})


def _retry_delay(attempts: int, answer: Answer | None) -> timedelta:
    """How long until the next attempt: the backoff, or the receiver's ``Retry-After``
    on a 429 or 503 when longer (``webhook_http.retry_after``: at most an hour)."""
    delay = leases.backoff(attempts)
    if answer is not None and answer.status in RETRY_AFTER_STATUSES and answer.retry_after:
        delay = max(delay, timedelta(seconds=answer.retry_after))
    return delay


def _note_failure(session: Session, sub: WebhookSubscription, now: datetime, base_url: str) -> None:
    if sub.failing_since is None:
        sub.failing_since = now
        return
    if sub.enabled and now - sub.failing_since >= RETRY_WINDOW:
        sub.enabled = False
        sub.disabled_reason = (
            f"every delivery failed from {feed.iso(sub.failing_since)} to {feed.iso(now)}"
        )
        sub.updated_at = now
        record(
            session,
            sub.org_id,
            "webhook.disabled",
            outcome="failure",
            resource_type="Webhook",
            resource_id=sub.id,
            detail=f"{sub.url}: {sub.disabled_reason}"[:2000],
        )
        log.warning("webhook %s (%s) disabled: %s", sub.id, sub.url, sub.disabled_reason)
        webhooks.tell_disabled(session, sub, base_url)
