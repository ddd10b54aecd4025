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
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from scim_server.models import Event, WebhookDelivery, WebhookSubscription
from scim_server.services import webhooks

BATCH = 500


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


def fan_out_one(factory: sessionmaker[Session], now: datetime) -> int | None:
    """One batch for one subscription behind the newest event: how many deliveries it made,
    or None when no subscription is behind."""
    with factory() as session, session.begin():
        sub: WebhookSubscription | None = session.scalar(_behind())
        if sub is None:
            return None
        events = session.execute(
            select(Event.id, Event.type, Event.position, Event.resource_type, Event.resource_id)
            .where(Event.org_id == sub.org_id, Event.position > sub.fanned_position)
            .order_by(Event.position)
            .limit(BATCH)
        ).all()
        rows = [
            webhooks.delivery_row(sub.org_id, sub.id, e._mapping, now)
            for e in events
            if webhooks.wants(sub.events, e.type)
        ]
        if rows:
            session.execute(insert(WebhookDelivery), rows)
        sub.fanned_position = events[-1].position
        return len(rows)


def fan_out_due(
    factory: sessionmaker[Session],
    clock: Callable[[], datetime],
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Bring every enabled subscription up to the newest event; how many deliveries were made."""
    made = 0
    while not should_stop():
        batch = fan_out_one(factory, clock())
        if batch is None:
            break
        made += batch
    return made
