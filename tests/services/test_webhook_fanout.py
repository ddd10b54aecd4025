"""Fan-out: a subscription's events become deliveries; events purged before it sent them are
a visible gap (audit event, a failed entry in its log, a mail), never silently skipped."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from scim_server.db import db
from scim_server.models import AuditEvent, MailOutbox, WebhookSubscription
from tests.support import Clock
from tests.support.admin_api import ok, person
from tests.support.webhooks import subscribe, webhook_receiver, webhook_worker

HOUR = 3600


def test_re_enabled_subscription_does_not_silently_lose_events_purged_while_off(app, scim, admin):
    """A subscription disabled while retention purges the events behind its cursor: enabled
    again, the purged events cannot be sent, but the gap is in its delivery log."""
    ok(admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}))
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url, ["user.deactivated"])
        url = f"/api/v1/webhooks/{sub['id']}"
        clock = Clock()
        worker = webhook_worker(app, clock, event_retention=timedelta(days=30))
        ann = person(scim, "ann@example.com")
        ok(admin.patch(url, {"enabled": False}))
        ok(
            scim.patch_ops(
                f"/scim/v2/Users/{ann['id']}", {"op": "replace", "path": "active", "value": False}
            )
        )
        person(scim, "bob@example.com")  # the newest event (kept by the purge)
        clock.advance(31 * 24 * HOUR)
        worker.run_once()  # the retention purge
        ok(admin.patch(url, {"enabled": True}))
        worker.send_webhooks()
        got = [p["type"] for p in receiver.verified(sub["secret"])]
    log = ok(admin.get(f"{url}/deliveries"))["deliveries"]
    assert got == []  # nothing it wants after the gap
    assert got == ["user.deactivated"] or log, (got, log)


def test_a_gap_is_logged_audited_and_mailed_and_the_fan_out_goes_on(app, scim, admin):
    """Events 1-3 purged behind a disabled subscription's cursor (0): on re-enabling, a
    ``webhook.gap`` audit event names positions 1-3, its log has a failed ``webhook.gap``
    entry saying how to resync, its alert address gets a ``webhook_gap`` mail, and the
    events after the gap are delivered; the next round finds no gap again."""
    ok(admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}))
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        url = f"/api/v1/webhooks/{sub['id']}"
        ok(admin.patch(url, {"enabled": False, "alert_email": "ops@acme.test"}))
        clock = Clock()
        worker = webhook_worker(app, clock, event_retention=timedelta(days=30))
        for name in ("ann", "bob", "cat", "dan"):
            person(scim, f"{name}@example.com")  # positions 1-4
        clock.advance(31 * 24 * HOUR)
        worker.run_once()  # 1-3 purged, 4 kept (the newest)
        ok(admin.patch(url, {"enabled": True}))
        person(scim, "eve@example.com")  # position 5
        worker.send_webhooks()
        got = [(p["type"], p["position"]) for p in receiver.verified(sub["secret"])]
        assert got == [("user.created", 4), ("user.created", 5)]
        person(scim, "fay@example.com")
        worker.send_webhooks()
        assert len(receiver.accepted()) == 3
    log = ok(admin.get(f"{url}/deliveries"))["deliveries"]
    gaps = [d for d in log if d["event_type"] == "webhook.gap"]
    assert len(gaps) == 1, log
    (gap,) = gaps
    assert gap["state"] == "failed" and gap["position"] == 3 and gap["attempts"] == 0
    assert "1 to 3" in gap["last_error"] and "GET /api/v1/users" in gap["last_error"]
    with db.reader(app)() as session:
        audited = session.scalars(select(AuditEvent).where(AuditEvent.action == "webhook.gap"))
        (event,) = audited.all()
        assert event.resource_type == "Webhook" and event.resource_id == sub["id"]
        assert event.outcome == "failure"
        assert event.changes == {"missed": {"from": 1, "to": 3}, "resumed_at": 4}
        (mail,) = session.scalars(select(MailOutbox).where(MailOutbox.kind == "webhook_gap"))
        assert mail.recipient == "ops@acme.test" and receiver.url in mail.body_text
        assert "1 to 3" in mail.body_text
        fanned = session.scalar(
            select(WebhookSubscription.fanned_position).where(WebhookSubscription.id == sub["id"])
        )
        assert fanned == 6


def test_no_gap_when_nothing_it_had_not_sent_was_purged(app, scim, admin):
    """A subscription up to date when retention purges: no gap event, no log entry."""
    ok(admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}))
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        clock = Clock()
        worker = webhook_worker(app, clock, event_retention=timedelta(days=30))
        for name in ("ann", "bob"):
            person(scim, f"{name}@example.com")
        worker.send_webhooks()
        clock.advance(31 * 24 * HOUR)
        worker.run_once()
        person(scim, "cat@example.com")
        worker.send_webhooks()
        assert len(receiver.accepted()) == 3
    log = ok(admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries"))["deliveries"]
    assert [d["event_type"] for d in log] == ["user.created"]  # the older ones purged with them
    with db.reader(app)() as session:
        assert (
            session.scalars(select(AuditEvent).where(AuditEvent.action == "webhook.gap")).all()
            == []
        )


def test_gap_text_names_one_event_or_a_range():
    """One missed event, or a range; both say they cannot be replayed and how to resync."""
    from scim_server.services.webhook_delivery import gap_text

    assert gap_text(7, 7).startswith("event 7 was deleted")
    assert gap_text(1, 3).startswith("events 1 to 3 were deleted")
    assert "cannot be sent or replayed" in gap_text(1, 3)
    assert "GET /api/v1/users" in gap_text(1, 3)
