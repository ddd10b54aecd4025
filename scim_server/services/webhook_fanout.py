"""The worker turns committed events into webhook deliveries, per subscription, from a cursor.

Nothing of this runs in the request that changes something: a write costs the
same with no subscription or with ten. Positions are assigned under the
organization's audit head lock and committed in that order, so the events a
worker sees are always a prefix of the organization's: reading after
``fanned_position`` never skips an event that commits later.

A subscription behind the newest event is locked (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so two workers take different ones; SQLite's writers queue), its
next events (up to ``BATCH``) become deliveries of the types it wants, in
position order, and its cursor moves past them, in one transaction.

Retention (``feed.purge``) does not wait for a subscription: one disabled (or
left behind) longer than ``SCIM_EVENTS_RETENTION_DAYS`` finds the events after its
cursor gone. They cannot be sent any more, so the gap is made visible where an
admin looks, in the same transaction as the fan-out that finds it: a
``webhook.gap`` audit event with the missed positions, a failed ``webhook.gap``
entry in the subscription's delivery log saying how to resync, and a mail to its
alert address; then the events after the gap are fanned out as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from scim_server.audit import AuditContext, use_context
from scim_server.models import Event, WebhookDelivery, WebhookSubscription
from scim_server.services import webhooks
from scim_server.services.webhook_delivery import (
    DEFAULT_BASE_URL,
    GAP_TYPE,
    announce_gap,
)

log = logging.getLogger(__name__)

BATCH = 500
_CONTEXT = AuditContext(actor_type="system", actor_name="scim-server worker")


def _behind() -> Select[Any]:
    newest = aliased(Event)
    last = (
        select(func.max(newest.position))
        .where(newest.org_id == WebhookSubscription.org_id)
        .scalar_subquery()
    )
    return (
        select(WebhookSubscription)
        .where(WebhookSubscription.enabled.is_(True), WebhookSubscription.fanned_position < last)
        .order_by(WebhookSubscription.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


def fan_out_one(
    factory: sessionmaker[Session], now: datetime, *, base_url: str = DEFAULT_BASE_URL
) -> int | None:
    """One batch for one subscription behind the newest event: how many deliveries it made,
    or None when no subscription is behind. Events purged before it fanned them out are
    recorded as a gap (``_record_gap``) first."""
    with use_context(_CONTEXT), factory() as session, session.begin():
        sub: WebhookSubscription | None = session.scalar(_behind())
        if sub is None:
            return None
        events = session.execute(
            select(Event.id, Event.type, Event.position, Event.resource_type, Event.resource_id)
            .where(Event.org_id == sub.org_id, Event.position > sub.fanned_position)
            .order_by(Event.position)
            .limit(BATCH)
        ).all()
        # Positions are gap-free and commit in order: the first one after the cursor is the
        # next one, unless retention deleted those before it.
        if events[0].position > sub.fanned_position + 1:
            _record_gap(session, sub, events[0].position - 1, now, base_url)
        rows = [
            webhooks.delivery_row(sub.org_id, sub.id, e._mapping, now)
            for e in events
            if webhooks.wants(sub.events, e.type)
        ]
        if rows:
            session.execute(insert(WebhookDelivery), rows)
        sub.fanned_position = events[-1].position
        return len(rows)


def _record_gap(
    session: Session, sub: WebhookSubscription, last: int, now: datetime, base_url: str
) -> None:
    """Positions ``sub.fanned_position + 1`` to ``last`` are gone: said where an admin looks
    (``webhook_delivery.announce_gap``: audit, the alert address), and in the delivery log,
    in the fan-out's transaction.

    The log entry is a delivery born failed (no attempt, never claimed: ``due_statement``
    takes pending ones) about no event, so the log's purge ages it out like the others."""
    first = sub.fanned_position + 1
    text = announce_gap(session, sub, first, last, base_url)
    session.execute(
        insert(WebhookDelivery),
        [
            {
                "org_id": sub.org_id,
                "subscription_id": sub.id,
                "event_id": None,
                "event_type": GAP_TYPE,
                "position": last,
                "resource_key": f"{GAP_TYPE}:{first}-{last}",
                "state": "failed",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "last_error": f"{text}.",
            }
        ],
    )


def fan_out_due(
    factory: sessionmaker[Session],
    clock: Callable[[], datetime],
    *,
    should_stop: Callable[[], bool] = lambda: False,
    base_url: str = DEFAULT_BASE_URL,
) -> int:
    """Bring every enabled subscription up to the newest event; how many deliveries were made.
    ``base_url``: the server's public URL, for the sign-in link of a gap's mail."""
    made = 0
    while not should_stop():
        batch = fan_out_one(factory, clock(), base_url=base_url)
        if batch is None:
            break
        made += batch
    return made
