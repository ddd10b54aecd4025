"""The worker's side of webhooks: claim a due delivery, POST it outside the claim, record it.

The claim is the shared lease helper (``services.leases``: ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so two workers never send one delivery at once. A
delivery is due only when no earlier delivery about the same resource, to the
same subscription, is still open: deliveries go out in order per resource.
A failure is retried with exponential backoff (``leases.backoff``) for up to
``RETRY_WINDOW`` (3 days) from the delivery's creation, then given up; a
subscription whose deliveries have failed without a success for that whole
window is disabled, with an audit event (``webhook.disabled``), the reason on
the subscription (the admin API and the CLI show it) and a mail to its alert
address, if it has one.
At least once: a worker that dies after the POST but before recording it
leaves the lease to expire, and the message goes again with the same
``webhook-id`` (receivers deduplicate on it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session, aliased, object_session, sessionmaker

from scim_server import jsonfast
from scim_server.audit import AuditContext, record, use_context
from scim_server.events import feed
from scim_server.models import Event, WebhookAttempt, WebhookDelivery, WebhookSubscription
from scim_server.services import leases, webhooks
from scim_server.webhook_http import Answer, OutboundPolicy, post, signed_headers

log = logging.getLogger(__name__)

# A batch of BATCH deliveries at 10 s each at worst fits in the lease.
BATCH = 10
LEASE = timedelta(minutes=5)
RETRY_WINDOW = timedelta(days=3)
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


@dataclass(frozen=True)
class Claimed:
    """A claimed delivery with what sending it needs, read in the claim's transaction."""

    delivery: WebhookDelivery
    subscription: WebhookSubscription | None  # None: deleted since
    message: dict[str, Any] | None  # None: its event is past retention


def claim_deliveries(
    factory: sessionmaker[Session],
    worker_id: str,
    *,
    now: datetime,
    limit: int = BATCH,
    lease: timedelta = LEASE,
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries (never two about one resource) and commit the lease."""
    loaded: dict[int, tuple[WebhookSubscription | None, dict[str, Any] | None]] = {}

    def take(delivery: WebhookDelivery) -> None:
        if delivery.state == "sending":
            log.warning("delivery %s: lease of %s expired", delivery.id, delivery.claimed_by)
        delivery.state = "sending"
        delivery.claimed_by = worker_id
        delivery.lease_expires_at = now + lease
        delivery.attempts += 1
        session = object_session(delivery)
        assert session is not None
        sub = session.get(WebhookSubscription, (delivery.org_id, delivery.subscription_id))
        loaded[delivery.id] = (sub, _message(session, delivery) if sub is not None else None)

    rows: list[WebhookDelivery] = leases.claim_many(
        factory,
        due_statement(now),  # type: ignore[arg-type]
        take,
        limit,
    )
    return [Claimed(d, *loaded[d.id]) for d in rows]


def deliver_due(
    factory: sessionmaker[Session],
    policy: OutboundPolicy,
    worker_id: str,
    clock: Callable[[], datetime],
    *,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    base_url: str = DEFAULT_BASE_URL,
) -> int:
    """Send due deliveries until none is left (or ``limit``); returns how many were handled.

    A batch is claimed in one transaction, sent one by one, and its outcomes recorded in one
    transaction: two commits per batch, not per delivery.
    """
    handled = 0
    while (limit is None or handled < limit) and not should_stop():
        size = BATCH if limit is None else min(BATCH, limit - handled)
        batch = claim_deliveries(factory, worker_id, now=clock(), limit=size)
        if not batch:
            break
        outcomes = [(claimed.delivery, send(policy, claimed, clock)) for claimed in batch]
        record_outcomes(factory, worker_id, clock(), outcomes, base_url=base_url)
        handled += len(batch)
    return handled


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


def send(policy: OutboundPolicy, claimed: Claimed, clock: Callable[[], datetime]) -> Outcome:
    """POST one claimed delivery, signed; no database work."""
    delivery, sub, message = claimed.delivery, claimed.subscription, claimed.message
    if sub is None or message is None:
        why = "the subscription was deleted" if sub is None else "the event is past retention"
        return Outcome(None, why, give_up=True)
    body = jsonfast.dumps_bytes(message)
    # The signature's timestamp is the real time of sending (receivers reject a stale one);
    # the injected clock only schedules retries.
    sent_at = int(time.time())
    headers = signed_headers(
        webhooks.secrets_in_use(sub, clock()), str(message["id"]), sent_at, body
    )
    try:
        answer = post(sub.url, body, headers, policy)
    except Exception as exc:  # refused address, DNS, connection, TLS, timeout: all retried
        error = f"{type(exc).__name__}: {exc}"[:2000]
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
    order (by id) whoever records, so two workers' batches never deadlock.
    """
    context = AuditContext(
        actor_type="system", actor_id=worker_id[:64], actor_name="scim-server worker"
    )
    ordered = sorted(outcomes, key=lambda item: (item[0].subscription_id, item[0].id))
    with use_context(context), factory() as session, session.begin():
        return [_record(session, worker_id, now, c, o, base_url) for c, o in ordered]


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
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempt=delivery.attempts,
            at=now,
            status=status,
            latency_ms=answer.latency_ms if answer is not None else 0,
            response=answer.body[:RESPONSE_KEPT] if answer is not None else None,
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
    if outcome.give_up or now - delivery.created_at >= RETRY_WINDOW:
        delivery.state = "failed"
    else:
        delivery.state = "pending"
        delivery.next_attempt_at = now + leases.backoff(delivery.attempts)
    if sub is not None and not outcome.give_up:
        _note_failure(session, sub, now, base_url)
    return delivery.state


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
