"""Webhook subscriptions and what to send them: the admin's side and the fan-out of new events.

A subscription names a URL, the event types it wants (a list, or ``["*"]``)
and a signing secret shown once, stored sealed (``services.webhook_secrets``).
Committed events become deliveries (the webhook outbox, ``WebhookDelivery``) in
the worker (``services.webhook_fanout``), and are sent at least once
(``services.webhook_delivery``); a rolled-back change has no event, so nothing is
sent for it. An admin can also send a test message,
redeliver one event, or replay every event after a cursor.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import InvalidValueError, NotFoundError
from scim_server.events import feed
from scim_server.models import Event, WebhookAttempt, WebhookDelivery, WebhookSubscription
from scim_server.sealing import SealedSecretError
from scim_server.services import mail, webhook_secrets
from scim_server.webhook_http import OutboundPolicy, OutboundRefusedError, as_uri, new_secret

ALL = "*"
ROTATION_GRACE = timedelta(hours=24)
EDITABLE = ("url", "events", "enabled", "description", "alert_email")
TEST_TYPE = "webhook.test"
MAX_DESCRIPTION = 500  # the column's length (varchar(500) on PostgreSQL)
MAX_URL = 2000  # the admin API's limit, also on the URI an IRI becomes
log = logging.getLogger(__name__)


def _about(sub: WebhookSubscription) -> dict[str, Any]:
    return {"resource_type": "Webhook", "resource_id": sub.id, "detail": sub.url[:2000]}


def check_events(events: Sequence[str]) -> list[str]:
    """A non-empty list of known types, or exactly ``["*"]``."""
    if not events:
        raise InvalidValueError('events must name at least one event type, or be ["*"].')
    if ALL in events:
        if len(events) != 1:
            raise InvalidValueError('"*" means every event type: use it alone.')
        return [ALL]
    return sorted(set(feed.check_types(events)))


def check_description(description: str | None) -> str | None:
    """None, or text the column holds: every way in (API, console, command line) gets the
    same limit, and SQLite (which ignores varchar lengths) stores nothing longer."""
    if description is None:
        return None
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise InvalidValueError(f"description: at most {MAX_DESCRIPTION} characters.")
    if "\x00" in description:
        raise InvalidValueError("description: NUL characters are not allowed.")
    return description


def check_alert_email(address: str | None) -> str | None:
    return None if address is None else mail.check_recipient(address)


def check_url(url: str, policy: OutboundPolicy) -> str:
    """The URL to store: the URI it is sent as (an IRI's non-ASCII percent-encoded, its
    host in IDNA: ``webhook_http.as_uri``), checked against the policy."""
    try:
        uri = as_uri(url)
        policy.check_url(uri)
    except OutboundRefusedError as exc:
        raise InvalidValueError(f"url: {exc}") from None
    if len(uri) > MAX_URL:
        raise InvalidValueError(f"url: at most {MAX_URL} characters (once percent-encoded).")
    return uri


def to_dict(sub: WebhookSubscription) -> dict[str, Any]:
    """The admin view: everything but the secrets."""
    return {
        "id": sub.id,
        "url": sub.url,
        "events": sub.events,
        "enabled": sub.enabled,
        "description": sub.description,
        "alert_email": sub.alert_email,
        "failing_since": feed.iso(sub.failing_since) if sub.failing_since else None,
        "disabled_reason": sub.disabled_reason,
        "previous_secret_expires_at": (
            feed.iso(sub.previous_secret_expires_at) if sub.previous_secret_expires_at else None
        ),
        "created_at": feed.iso(sub.created_at),
        "updated_at": feed.iso(sub.updated_at),
    }


def list_subscriptions(session: Session, org_id: str) -> list[WebhookSubscription]:
    stmt = select(WebhookSubscription).where(WebhookSubscription.org_id == org_id)
    return list(session.scalars(stmt.order_by(WebhookSubscription.created_at)).all())


def get_subscription(
    session: Session, org_id: str, sub_id: str, *, for_update: bool = False
) -> WebhookSubscription:
    stmt = select(WebhookSubscription).where(
        WebhookSubscription.org_id == org_id, WebhookSubscription.id == sub_id
    )
    sub = session.scalar(stmt.with_for_update() if for_update else stmt)
    if sub is None:
        raise NotFoundError(f"Webhook {sub_id!r} not found.")
    return sub


def create_subscription(
    session: Session,
    org_id: str,
    fields: dict[str, Any],
    policy: OutboundPolicy,
    *,
    server_secret: bytes,
) -> tuple[WebhookSubscription, str]:
    """A new subscription and its secret (returned this once; only it can verify signatures).

    The secret is stored sealed with ``server_secret`` (the app's
    ``scim_server.sealing.encryption_secret``), bound to this subscription.
    """
    with session.begin():
        now = utcnow()
        secret = new_secret()
        sub = WebhookSubscription(
            org_id=org_id,
            id=str(uuid.uuid4()),
            url=check_url(fields["url"], policy),
            events=check_events(fields.get("events") or [ALL]),
            enabled=fields.get("enabled", True),
            enabled_at=now if fields.get("enabled", True) else None,
            description=check_description(fields.get("description")),
            alert_email=check_alert_email(fields.get("alert_email")),
            # From the next event on: what happened before is in the feed (or replay).
            fanned_position=feed.bounds(session, org_id)[1],
            created_at=now,
            updated_at=now,
        )
        webhook_secrets.set_secret(sub, "secret", secret, server_secret)
        session.add(sub)
        record(session, org_id, "webhook.create", **_about(sub), changes={"events": sub.events})
    return sub, secret


def update_subscription(
    session: Session,
    org_id: str,
    sub_id: str,
    fields: dict[str, Any],
    policy: OutboundPolicy,
    *,
    server_secret: bytes,
) -> WebhookSubscription:
    """Change URL, types, enabled, description or alert address; re-enabling starts the
    failure clock afresh, and the retry window of deliveries that waited while it was off.
    A secret still stored in clear (from before sealing) is sealed by this write."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise InvalidValueError(f"Unknown or read-only fields: {', '.join(sorted(unknown))}.")
    with session.begin():
        sub = get_subscription(session, org_id, sub_id, for_update=True)
        if "url" in fields:
            fields = {**fields, "url": check_url(fields["url"], policy)}
        if "events" in fields:
            fields = {**fields, "events": check_events(fields["events"])}
        if "alert_email" in fields:
            fields = {**fields, "alert_email": check_alert_email(fields["alert_email"])}
        if "description" in fields:
            check_description(fields["description"])
        changes = {
            key: {"before": getattr(sub, key), "after": value}
            for key, value in fields.items()
            if getattr(sub, key) != value
        }
        for key, value in fields.items():
            setattr(sub, key, value)
        changes |= webhook_secrets.seal_legacy(sub, server_secret)
        now = utcnow()
        if changes.get("enabled", {}).get("after"):
            sub.failing_since = None
            sub.disabled_reason = None
            sub.enabled_at = now
        if not changes:
            return sub  # a save that changed nothing: no event saying it did
        sub.updated_at = now
        record(session, org_id, "webhook.update", **_about(sub), changes=changes)
    return sub


def delete_subscription(session: Session, org_id: str, sub_id: str) -> None:
    """Remove the subscription, its pending deliveries and its log."""
    with session.begin():
        sub = get_subscription(session, org_id, sub_id, for_update=True)
        deliveries = select(WebhookDelivery.id).where(
            WebhookDelivery.org_id == org_id, WebhookDelivery.subscription_id == sub.id
        )
        session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
        session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.org_id == org_id, WebhookDelivery.subscription_id == sub.id
            )
        )
        record(session, org_id, "webhook.delete", **_about(sub))
        session.delete(sub)


def rotate_secret(session: Session, org_id: str, sub_id: str, *, server_secret: bytes) -> str:
    """A new secret (returned this once); the old one still signs (a second signature) for
    24 hours. Both are stored sealed: the old one is opened and sealed again for the
    ``previous_secret`` column (a sealed value is bound to its column). An old secret that
    does not open (SCIM_SECRET_KEY changed, or a value copied from another subscription)
    cannot sign: it is dropped, audited, and the new secret alone signs; rotating is how an
    admin recovers from it."""
    with session.begin():
        sub = get_subscription(session, org_id, sub_id, for_update=True)
        now = utcnow()
        changes: dict[str, Any] = {}
        try:
            old = webhook_secrets.open_secret(server_secret, sub, "secret")
        except SealedSecretError as err:
            log.warning("webhook %s (org %s): %s", sub.id, org_id, err)
            old = None
            changes["previous_secret"] = "(dropped: the old secret could not be decrypted)"
        webhook_secrets.set_secret(sub, "previous_secret", old, server_secret)
        sub.previous_secret_expires_at = now + ROTATION_GRACE if old else None
        secret = new_secret()
        webhook_secrets.set_secret(sub, "secret", secret, server_secret)
        sub.updated_at = now
        record(session, org_id, "webhook.rotate_secret", **_about(sub), changes=changes or None)
        return secret


def wants(events: list[str], event_type: str) -> bool:
    return ALL in events or event_type in events


def delivery_row(org_id: str, sub_id: str, row: Any, now: datetime) -> dict[str, Any]:
    """A new delivery of one event (a row or mapping with id, type, position, resource)."""
    return {
        "org_id": org_id,
        "subscription_id": sub_id,
        "event_id": row["id"],
        "event_type": row["type"],
        "position": row["position"],
        "resource_key": f"{row['resource_type']}:{row['resource_id']}",
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def send_test(session: Session, org_id: str, sub_id: str) -> WebhookDelivery:
    """A ``webhook.test`` message to this subscription (enabled or not), signed like any other."""
    with session.begin():
        sub = get_subscription(session, org_id, sub_id)
        now = utcnow()
        msg_id = f"evt_test_{uuid.uuid4().hex}"
        delivery = WebhookDelivery(
            org_id=org_id,
            subscription_id=sub.id,
            event_type=TEST_TYPE,
            resource_key=msg_id,
            payload={
                "id": msg_id,
                "type": TEST_TYPE,
                "organization": org_id,
                "occurred_at": feed.iso(now),
                "data": {"webhook": {"id": sub.id, "url": sub.url}},
            },
            next_attempt_at=now,
            created_at=now,
        )
        session.add(delivery)
        record(session, org_id, "webhook.test", **_about(sub))
    return delivery


def redeliver(session: Session, org_id: str, sub_id: str, event_id: str) -> WebhookDelivery:
    """Send one event again (a new delivery, after the resource's earlier ones)."""
    with session.begin():
        sub = get_subscription(session, org_id, sub_id)
        event = feed.find_event(session, org_id, event_id)
        if event is None:
            raise NotFoundError(f"Event {event_id!r} not found (or past retention).")
        row = {c: getattr(event, c) for c in ("id", "type", "position")}
        row |= {"resource_type": event.resource_type, "resource_id": event.resource_id}
        values = delivery_row(org_id, sub.id, row, utcnow())
        delivery = WebhookDelivery(**values)
        session.add(delivery)
        record(session, org_id, "webhook.redeliver", **_about(sub), changes={"event": event_id})
    return delivery


def replay(session: Session, org_id: str, sub_id: str, after: str | None) -> int:
    """Deliver again every event after a cursor that the subscription wants; how many."""
    with session.begin():
        sub = get_subscription(session, org_id, sub_id)
        position = feed.start_position(session, org_id, after)
        stmt = select(
            Event.id, Event.type, Event.position, Event.resource_type, Event.resource_id
        ).where(Event.org_id == org_id, Event.position > position)
        if ALL not in sub.events:
            stmt = stmt.where(Event.type.in_(sub.events))
        now = utcnow()
        rows = [
            delivery_row(org_id, sub.id, dict(r._mapping), now)
            for r in session.execute(stmt.order_by(Event.position))
        ]
        if rows:
            session.execute(insert(WebhookDelivery), rows)
        record(
            session,
            org_id,
            "webhook.replay",
            **_about(sub),
            changes={"after": str(position), "count": len(rows)},
        )
    return len(rows)


def tell_disabled(session: Session, sub: WebhookSubscription, base_url: str) -> None:
    """Mail the subscription's alert address that it was disabled (queued, in this transaction)."""
    if sub.alert_email:
        context = {
            "login_url": mail.login_url(base_url),
            "webhook_url": sub.url,
            "reason": sub.disabled_reason,
        }
        mail.queue_mail(session, sub.org_id, "webhook_disabled", sub.alert_email, context)


def purge_log(session: Session, cutoff: datetime) -> int:
    """Delete finished deliveries (delivered or failed) created before ``cutoff``, and their log."""
    old = select(WebhookDelivery.id).where(
        WebhookDelivery.created_at < cutoff, WebhookDelivery.state.in_(("delivered", "failed"))
    )
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(old)))
    result = session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(old)))
    return int(getattr(result, "rowcount", 0) or 0)


def delivery_log(
    session: Session, org_id: str, sub_id: str, *, limit: int, before: int | None = None
) -> list[dict[str, Any]]:
    """The newest deliveries first, each with its attempts (status, latency, response start)."""
    get_subscription(session, org_id, sub_id)
    stmt = select(WebhookDelivery).where(
        WebhookDelivery.org_id == org_id, WebhookDelivery.subscription_id == sub_id
    )
    if before is not None:
        stmt = stmt.where(WebhookDelivery.id < before)
    deliveries = session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit)).all()
    attempts: dict[int, list[dict[str, Any]]] = {d.id: [] for d in deliveries}
    if deliveries:
        for a in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)
        ):
            attempts[a.delivery_id].append(
                {
                    "attempt": a.attempt,
                    "at": feed.iso(a.at),
                    "status": a.status,
                    "latency_ms": a.latency_ms,
                    "response": a.response,
                    "error": a.error,
                }
            )
    return [
        {
            "id": d.id,
            "event_id": d.event_id or (d.payload or {}).get("id"),
            "event_type": d.event_type,
            "position": d.position,
            "state": d.state,
            "attempts": d.attempts,
            "created_at": feed.iso(d.created_at),
            "next_attempt_at": feed.iso(d.next_attempt_at) if d.state == "pending" else None,
            "delivered_at": feed.iso(d.delivered_at) if d.delivered_at else None,
            "last_status": d.last_status,
            "last_error": d.last_error,
            "log": attempts[d.id],
        }
        for d in deliveries
    ]
