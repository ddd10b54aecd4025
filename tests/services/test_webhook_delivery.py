"""Webhook delivery by the worker to a real receiver on 127.0.0.1: signed, ordered, retried."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import select

from scim_server.db import db
from scim_server.events.feed import iso
from scim_server.models import AuditEvent, MailOutbox, WebhookAttempt, WebhookDelivery
from scim_server.services import webhooks
from tests.support import Clock, Scim
from tests.support.admin_api import make_license, ok, person
from tests.support.webhooks import (
    Received,
    run_until_disabled,
    subscribe,
    webhook_receiver,
    webhook_worker,
)

HOUR = 3600


def feed(admin: Scim) -> list[dict]:
    return ok(admin.get("/api/v1/events", query_string={"limit": 1000}))["events"]


def test_every_change_is_delivered_and_verifiable(app, scim, admin):
    """SCIM and admin API changes: each event arrives once, signed, equal to the feed's."""
    make_license(admin, "Engineer")
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        ann = person(scim, "ann@example.com")
        url = f"/scim/v2/Users/{ann['id']}"
        scim.patch_ops(url, {"op": "replace", "path": "title", "value": "Engineer"})
        ok(admin.put(f"/api/v1/users/{ann['id']}/license", {"license": "Engineer"}))
        group = scim.create_group("Eng", members=[ann["id"]])
        scim.patch_ops(url, {"op": "replace", "path": "active", "value": False})
        assert scim.delete(f"/scim/v2/Groups/{group['id']}").status_code == 204
        assert webhook_worker(app).send_webhooks() == 8
        arrived = receiver.verified(sub["secret"])
        first_id = receiver.accepted()[0].headers["webhook-id"]
    assert first_id == arrived[0]["id"]
    # In order per resource (not across resources: one resource's next event waits for the
    # previous one, others go on).
    per_resource = defaultdict(list)
    for p in arrived:
        per_resource[p["data"]["resource"]["id"]].append(p["position"])
    assert all(positions == sorted(positions) for positions in per_resource.values())
    payloads = sorted(arrived, key=lambda p: p["position"])
    assert payloads == feed(admin)
    assert [p["type"] for p in payloads] == [
        "user.created",
        "user.updated",
        "user.license_changed",
        "group.created",
        "group.member_added",
        "user.deactivated",
        "group.member_removed",
        "group.deleted",
    ]


def test_subscriptions_get_only_the_types_they_want(app, scim, admin):
    """A subscription to user.deactivated gets that and nothing else; a disabled one nothing."""
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url, ["user.deactivated"])
        off = subscribe(admin, receiver.url)
        ok(admin.patch(f"/api/v1/webhooks/{off['id']}", {"enabled": False}))
        ann = person(scim, "ann@example.com")
        scim.patch_ops(
            f"/scim/v2/Users/{ann['id']}", {"op": "replace", "path": "active", "value": False}
        )
        webhook_worker(app).send_webhooks()
        assert [p["type"] for p in receiver.verified(sub["secret"])] == ["user.deactivated"]


def test_receiver_down_then_up_gets_everything_in_order_per_resource(app, scim, admin):
    """Failures are retried with backoff; after recovery every event arrives, per resource in order."""
    down = True
    with webhook_receiver(lambda _r: 503 if down else 200) as receiver:
        sub = subscribe(admin, receiver.url)
        users = [person(scim, f"{n}@example.com") for n in ("ann", "bob")]
        for user in users:
            for title in ("a", "b"):
                scim.patch_ops(
                    f"/scim/v2/Users/{user['id']}",
                    {"op": "replace", "path": "title", "value": title},
                )
        clock = Clock()
        worker = webhook_worker(app, clock)
        # One attempt per resource: each resource's later events wait for its first.
        assert worker.send_webhooks() == 2
        assert worker.send_webhooks() == 0  # backing off
        clock.advance(10)
        assert worker.send_webhooks() == 2
        clock.advance(15)
        assert worker.send_webhooks() == 0  # 20 s after the second failure
        clock.advance(10)
        assert worker.send_webhooks() == 2
        down = False
        clock.advance(HOUR)
        assert worker.send_webhooks() == 6
        payloads = receiver.verified(sub["secret"])
    assert sorted(p["id"] for p in payloads) == sorted(e["id"] for e in feed(admin))
    per_resource = defaultdict(list)
    for p in payloads:
        per_resource[p["data"]["resource"]["id"]].append(p["position"])
    assert all(positions == sorted(positions) for positions in per_resource.values())
    with db.reader(app)() as session:
        rows = session.scalars(select(WebhookDelivery)).all()
        assert {(r.state, r.attempts) for r in rows} >= {("delivered", 4), ("delivered", 1)}
        assert {r.state for r in rows} == {"delivered"}
    sub_view = ok(admin.get(f"/api/v1/webhooks/{sub['id']}"))
    assert sub_view["enabled"] is True and sub_view["failing_since"] is None


def test_a_receiver_failing_for_three_days_is_disabled(app, scim, admin):
    """500 for ever: retried for 3 days, then the delivery fails and the subscription is disabled."""
    with webhook_receiver(500) as receiver:
        sub = ok(
            admin.post("/api/v1/webhooks", {"url": receiver.url, "alert_email": "ops@acme.test"}),
            201,
        )
        person(scim, "ann@example.com")
        clock = Clock()
        worker = webhook_worker(app, clock)
        hours = run_until_disabled(admin, worker, clock, sub["id"])
        attempts = len(receiver.received)
    assert 72 <= hours < 80 and attempts > 60
    view = ok(admin.get(f"/api/v1/webhooks/{sub['id']}"))
    assert view["disabled_reason"].startswith("every delivery failed from")
    (delivery,) = ok(admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries"))["deliveries"]
    assert delivery["state"] == "failed" and delivery["last_status"] == 500
    assert all(len(a["response"]) == 1000 for a in delivery["log"])  # truncated
    with db.reader(app)() as session:
        disabled = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "webhook.disabled")
        ).all()
        assert [e.resource_id for e in disabled] == [sub["id"]]
        # The alert address is told, by mail (queued in the same transaction).
        (mail,) = session.scalars(
            select(MailOutbox).where(MailOutbox.kind == "webhook_disabled")
        ).all()
        assert mail.recipient == "ops@acme.test" and receiver.url in mail.body_text
        assert "every delivery failed from" in mail.body_text
    # Disabled: new events are not queued for it; re-enabling starts afresh.
    person(scim, "bob@example.com")
    assert worker.send_webhooks() == 0
    view = ok(admin.patch(f"/api/v1/webhooks/{sub['id']}", {"enabled": True}))
    assert view["disabled_reason"] is None and view["failing_since"] is None


def test_re_enabling_gives_a_waiting_delivery_its_retry_window_again(app, scim, admin, monkeypatch):
    """A delivery first tried before its subscription disabled itself, and older than 3 days
    when it is enabled again, is retried for 3 days from the re-enabling, not failed at once."""
    down = True
    with webhook_receiver(lambda _r: 500 if down else 200) as receiver:
        sub = subscribe(admin, receiver.url)
        url = f"/api/v1/webhooks/{sub['id']}"
        clock = Clock()
        worker = webhook_worker(app, clock)
        person(scim, "ann@example.com")
        assert worker.send_webhooks() == 1
        clock.advance(2 * HOUR)
        bob = person(scim, "bob@example.com")  # first tried 2 hours after ann's
        run_until_disabled(admin, worker, clock, sub["id"])
        deliveries = ok(admin.get(f"{url}/deliveries"))["deliveries"]
        assert [d["state"] for d in deliveries] == ["pending", "failed"]  # bob's, ann's
        clock.advance(4 * 24 * HOUR)
        # The admin API stamps the re-enabling with the worker's (the test's) clock.
        monkeypatch.setattr(webhooks, "utcnow", clock)
        view = ok(admin.patch(url, {"enabled": True}))
        assert view["enabled"] is True and view["failing_since"] is None
        tried = len(receiver.received)
        for _ in range(2):
            assert worker.send_webhooks() == 1
            latest = ok(admin.get(f"{url}/deliveries"))["deliveries"][0]
            assert latest["state"] == "pending"
            clock.advance(HOUR)
        assert len(receiver.received) == tried + 2
        # Its failure clock started afresh at the re-enabling: not disabled again at once.
        view = ok(admin.get(url))
        assert view["enabled"] is True
        assert view["failing_since"] == iso(clock.now - timedelta(hours=2))
        down = False
        assert worker.send_webhooks() == 1
        arrived = receiver.verified(sub["secret"])
    assert [p["data"]["resource"]["id"] for p in arrived] == [bob["id"]]
    latest = ok(admin.get(f"{url}/deliveries"))["deliveries"][0]
    assert latest["state"] == "delivered" and latest["attempts"] > 70
    assert ok(admin.get(url))["failing_since"] is None


def test_re_enabling_after_an_admin_disabled_retries_an_old_delivery(app, scim, admin, monkeypatch):
    """Disabled by an admin after one failure, enabled 4 days later: retried, then delivered."""
    down = True
    with webhook_receiver(lambda _r: 503 if down else 200) as receiver:
        sub = subscribe(admin, receiver.url)
        url = f"/api/v1/webhooks/{sub['id']}"
        clock = Clock()
        worker = webhook_worker(app, clock)
        person(scim, "ann@example.com")
        assert worker.send_webhooks() == 1
        ok(admin.patch(url, {"enabled": False}))
        clock.advance(4 * 24 * HOUR)
        assert worker.send_webhooks() == 0  # disabled: nothing goes
        monkeypatch.setattr(webhooks, "utcnow", clock)
        ok(admin.patch(url, {"enabled": True}))
        assert worker.send_webhooks() == 1
        assert ok(admin.get(f"{url}/deliveries"))["deliveries"][0]["state"] == "pending"
        down = False
        clock.advance(HOUR)
        assert worker.send_webhooks() == 1
    (delivery,) = ok(admin.get(f"{url}/deliveries"))["deliveries"]
    assert delivery["state"] == "delivered" and delivery["attempts"] == 3


def test_a_redirect_is_a_failure_not_followed(app, scim, admin):
    """A 302 is recorded as a failure; the Location is not visited."""
    with webhook_receiver(302) as receiver:
        sub = subscribe(admin, receiver.url)
        person(scim, "ann@example.com")
        webhook_worker(app).send_webhooks()
        assert len(receiver.received) == 1
    (delivery,) = ok(admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries"))["deliveries"]
    assert delivery["state"] == "pending" and "redirects are not followed" in delivery["last_error"]


def test_a_refused_connection_is_retried(app, scim, admin):
    """Nothing listening: the error is logged and the delivery retried later."""
    with webhook_receiver() as receiver:
        url = receiver.url
    sub = subscribe(admin, url)
    person(scim, "ann@example.com")
    webhook_worker(app).send_webhooks()
    (delivery,) = ok(admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries"))["deliveries"]
    assert delivery["state"] == "pending" and delivery["log"][0]["status"] is None
    assert "ConnectionRefusedError" in delivery["log"][0]["error"]


def test_concurrent_workers_never_deliver_one_event_twice(live):
    """PostgreSQL: four workers on real connections; each event once, none in flight twice."""
    app, scim = live
    if db.writer(app).kw["bind"].dialect.name != "postgresql":
        pytest.skip("PostgreSQL: SQLite's writers queue on the database lock")
    in_flight: set[str] = set()
    overlaps: list[str] = []
    lock = threading.Lock()

    def answer(got: Received) -> int:
        key = got.headers["webhook-id"]
        resource = got.json["data"]["resource"]["id"]
        with lock:
            if key in in_flight or resource in in_flight:
                overlaps.append(key)
            in_flight.update((key, resource))
        time.sleep(0.01)
        with lock:
            in_flight.difference_update((key, resource))
        return 200

    from scim_server.services.tokens import create_token

    with db.reader(app)() as s:
        _token, secret = create_token(s, scim.org_id, "admin", kind="admin")
    admin = Scim(app.test_client(), secret, scim.org_id)
    with webhook_receiver(answer) as receiver:
        sub = subscribe(admin, receiver.url)
        for i in range(5):
            user = scim.create_user(f"c{i}@example.com")
            for title in ("a", "b", "c"):
                scim.patch_ops(
                    f"/scim/v2/Users/{user['id']}",
                    {"op": "replace", "path": "title", "value": title},
                )
        workers = [webhook_worker(app, worker_id=f"w{i}") for i in range(4)]
        start = threading.Barrier(len(workers))
        handled: list[int] = []

        def work(worker) -> None:
            start.wait()
            handled.append(worker.send_webhooks())

        threads = [threading.Thread(target=work, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        payloads = receiver.verified(sub["secret"])
    assert overlaps == [] and sum(handled) == 20
    assert len({p["id"] for p in payloads}) == len(payloads) == 20
    per_resource = defaultdict(list)
    for p in payloads:
        per_resource[p["data"]["resource"]["id"]].append(p["position"])
    assert all(positions == sorted(positions) for positions in per_resource.values())
    with db.reader(app)() as session:
        attempts = session.scalars(
            select(WebhookAttempt.attempt)
            .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
            .where(WebhookDelivery.org_id == scim.org_id)
        ).all()
        assert attempts == [1] * 20


def test_the_worker_purges_events_past_retention(app, scim, admin):
    """With event_retention set, run_once deletes older events (keeping the newest), every 10 min."""
    from datetime import timedelta

    # SSO only: the new users get no welcome (whose status change would be events too).
    ok(admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}))
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        for name in ("ann", "bob", "cat"):
            person(scim, f"{name}@example.com")
        clock = Clock()
        worker = webhook_worker(app, clock, event_retention=timedelta(days=30))
        assert worker.run_once() == 3
    assert len(feed(admin)) == 3  # young events stay
    log = f"/api/v1/webhooks/{sub['id']}/deliveries"
    assert len(ok(admin.get(log))["deliveries"]) == 3
    clock.advance(31 * 24 * HOUR)
    worker.run_once()
    assert [e["position"] for e in feed(admin)] == [3]
    assert ok(admin.get(log))["deliveries"] == []  # delivered ones go with retention too
    person(scim, "dan@example.com")
    clock.advance(60)
    assert worker.purge_events() == 0  # not again within 10 minutes


def test_a_test_message_reaches_a_disabled_subscription(app, admin, scim):
    """An admin checks a disabled subscription's receiver with a test message; events wait."""
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        ok(admin.patch(f"/api/v1/webhooks/{sub['id']}", {"enabled": False}))
        person(scim, "ann@example.com")
        ok(admin.post(f"/api/v1/webhooks/{sub['id']}/test", None), 202)
        worker = webhook_worker(app)
        assert worker.send_webhooks() == 1
        assert [p["type"] for p in receiver.verified(sub["secret"])] == ["webhook.test"]
        # Enabled again: it resumes where it stopped, nothing lost while it was off.
        ok(admin.patch(f"/api/v1/webhooks/{sub['id']}", {"enabled": True}))
        assert worker.send_webhooks() == 1
        assert [p["type"] for p in receiver.verified(sub["secret"])] == [
            "webhook.test",
            "user.created",
        ]
