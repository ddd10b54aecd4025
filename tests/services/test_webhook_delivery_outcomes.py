"""Recording what a webhook delivery gave: a receiver's answer cannot break the worker.

A subscription URL is an organization admin's choice, so a receiver's answer is untrusted
input the worker stores (the delivery log). One answer the database would refuse must not
lose the batch's other outcomes (those deliveries, already sent, would go again), end the
worker, or have the same batch claimed and sent again after every lease."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from scim_server.services import webhook_delivery, webhook_fanout
from scim_server.webhook_http import OutboundPolicy
from tests.support import Clock
from tests.support.admin_api import ok, person
from tests.support.raw_http import raw_receiver
from tests.support.webhooks import (
    run_until_disabled,
    subscribe,
    webhook_receiver,
    webhook_worker,
)

HOUR = 3600


def _rows(app, sub_id: str) -> list[WebhookDelivery]:
    with db.reader(app)() as session:
        stmt = select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub_id)
        return list(session.scalars(stmt.order_by(WebhookDelivery.id)))


def _log(admin, sub_id: str) -> list[dict]:
    return ok(admin.get(f"/api/v1/webhooks/{sub_id}/deliveries"))["deliveries"]


def test_a_nul_in_a_receivers_answer_is_stored_as_a_replacement_character(app, scim, admin):
    """A 500 whose body holds a NUL (PostgreSQL refuses it in text): its log keeps the body
    with U+FFFD in its place, and the batch's other delivery is recorded as delivered."""

    def nul_body(conn: socket.socket) -> None:
        body = b"upstream said \x00 nothing\x1b[31m"
        conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    with raw_receiver(nul_body) as bad, webhook_receiver() as good:
        bad_sub = subscribe(admin, bad.url)
        good_sub = subscribe(admin, good.url)
        person(scim, "ann@example.com")
        assert webhook_worker(app).send_webhooks() == 2
        arrived = len(good.received)
    assert arrived == 1
    (good_row,) = _rows(app, good_sub["id"])
    assert good_row.state == "delivered"
    (entry,) = _log(admin, bad_sub["id"])
    assert (entry["state"], entry["last_status"]) == ("pending", 500)
    assert entry["log"][0]["response"] == "upstream said \ufffd nothing\ufffd[31m"


def test_a_bad_status_line_holding_a_nul_is_logged_printable(app, scim, admin):
    """http.client quotes a bad status line in its error: the error logged is printable."""

    def bad_status(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 2\x000 OK\r\nContent-Length: 0\r\n\r\n")

    with raw_receiver(bad_status) as receiver:
        sub = subscribe(admin, receiver.url)
        person(scim, "ann@example.com")
        webhook_worker(app).send_webhooks()
    (entry,) = _log(admin, sub["id"])
    assert entry["state"] == "pending" and entry["last_status"] is None
    assert entry["last_error"].startswith("BadStatusLine: HTTP/1.1 2\ufffd0 OK")
    assert entry["log"][0]["error"] == entry["last_error"]


def test_an_outcome_the_database_refuses_loses_only_itself(app, scim, admin, monkeypatch):
    """Each outcome is recorded in its own savepoint: one that fails (here after writing
    its rows) leaves its delivery as it was, ``sending`` until its lease ends, then sent
    again; the batch's others are kept, and the worker goes on."""
    real = webhook_delivery._record
    refused: list[int] = []

    def record(session, worker_id, now, claimed, outcome, base_url):
        state = real(session, worker_id, now, claimed, outcome, base_url)
        if claimed.subscription_id == bad_sub["id"] and not refused:
            refused.append(claimed.id)
            session.flush()
            raise ValueError("refused by the database")
        return state

    monkeypatch.setattr(webhook_delivery, "_record", record)
    with webhook_receiver() as receiver:
        bad_sub = subscribe(admin, receiver.url)
        good_sub = subscribe(admin, receiver.url)
        person(scim, "ann@example.com")
        clock = Clock()
        worker = webhook_worker(app, clock)
        assert worker.send_webhooks() == 2
        (bad_row,) = _rows(app, bad_sub["id"])
        (good_row,) = _rows(app, good_sub["id"])
        assert good_row.state == "delivered"
        assert (bad_row.state, bad_row.attempts) == ("sending", 1)
        assert _log(admin, bad_sub["id"])[0]["log"] == []  # its attempt rolled back
        clock.advance(webhook_delivery.LEASE.total_seconds() + 1)
        assert worker.send_webhooks() == 1  # at least once: sent again after the lease
        sent = len(receiver.received)
    assert sent == 3
    (bad_row,) = _rows(app, bad_sub["id"])
    assert (bad_row.state, bad_row.attempts) == ("delivered", 2)


def test_a_delivery_whose_workers_keep_dying_is_failed_with_a_record(app, scim, admin):
    """Claimed ``MAX_LOST_LEASES`` times by workers that stopped before recording (each
    lease expired): the next claim fails it, says why in its log, and sends nothing."""
    with webhook_receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        person(scim, "ann@example.com")
        writer, clock = db.writer(app), Clock()
        webhook_fanout.fan_out_due(writer, clock)
        for n in range(webhook_delivery.MAX_LOST_LEASES):
            assert len(webhook_delivery.claim_deliveries(writer, f"dead-{n}", now=clock())) == 1
            clock.advance(webhook_delivery.LEASE.total_seconds() + 1)
        assert webhook_worker(app, clock).send_webhooks() == 1
        sent = len(receiver.received)
    assert sent == 0
    (entry,) = _log(admin, sub["id"])
    assert (entry["state"], entry["attempts"]) == ("failed", 6)
    (attempt,) = entry["log"]
    assert attempt["attempt"] == 6 and attempt["status"] is None
    assert attempt["error"] == "its workers stopped before recording 5 attempts"
    with db.reader(app)() as session:
        row = session.scalar(select(WebhookSubscription).where(WebhookSubscription.id == sub["id"]))
        assert row is not None and row.enabled and row.failing_since is None


def test_a_lease_lost_now_and_then_does_not_end_a_delivery(app, scim, admin):
    """Only claims whose outcome was never recorded count: a delivery with many recorded
    attempts and one lost lease is still retried."""
    with webhook_receiver(503) as receiver:
        sub = subscribe(admin, receiver.url)
        person(scim, "ann@example.com")
        writer, clock = db.writer(app), Clock()
        worker = webhook_worker(app, clock)
        for _ in range(webhook_delivery.MAX_LOST_LEASES + 2):
            worker.send_webhooks()
            clock.advance(HOUR)
        webhook_delivery.claim_deliveries(writer, "dead", now=clock())
        clock.advance(webhook_delivery.LEASE.total_seconds() + 1)
        worker.send_webhooks()
    (entry,) = _log(admin, sub["id"])
    assert entry["state"] == "pending" and entry["attempts"] == webhook_delivery.MAX_LOST_LEASES + 4
    with db.reader(app)() as session:
        stmt = select(WebhookAttempt).where(WebhookAttempt.delivery_id == entry["id"])
        assert len(session.scalars(stmt).all()) == webhook_delivery.MAX_LOST_LEASES + 3


def test_a_delivery_that_waited_gets_its_own_retries_after_re_enabling(app, scim, admin):
    """README: "enabling it again resumes where it stopped". The retry window counts from a
    delivery's first attempt: a user's second event, waiting (in order per resource) behind
    a first that failed for 3 days until the subscription was disabled, is retried when the
    fixed receiver first answers 503 (a restart), and arrives."""
    state = {"mode": "down", "hiccups": 1}

    def answer(_got) -> int:
        if state["mode"] == "down":
            return 500
        if state["hiccups"]:
            state["hiccups"] -= 1
            return 503
        return 204

    with webhook_receiver(answer) as receiver:
        sub = subscribe(admin, receiver.url)
        ann = person(scim, "ann@example.com")
        scim.patch_ops(
            f"/scim/v2/Users/{ann['id']}", {"op": "replace", "path": "title", "value": "Chef"}
        )
        clock = Clock()
        worker = webhook_worker(app, clock)
        run_until_disabled(admin, worker, clock, sub["id"])
        first, second = sorted(_log(admin, sub["id"]), key=lambda e: e["id"])
        assert first["state"] == "failed"
        assert (second["state"], second["attempts"]) == ("pending", 0)  # never tried
        state["mode"] = "up"
        ok(admin.patch(f"/api/v1/webhooks/{sub['id']}", {"enabled": True}))
        for _ in range(12):  # an hour of worker passes, 5 minutes apart
            worker.send_webhooks()
            clock.advance(300)
        types = [m.json["type"] for m in receiver.accepted()]
    assert types == ["user.updated"]
    second = next(e for e in _log(admin, sub["id"]) if e["id"] == second["id"])
    assert (second["state"], [a["status"] for a in second["log"]]) == ("delivered", [503, 204])


@pytest.mark.parametrize(
    ("timeout", "size", "lease_seconds"),
    [
        (10, 10, 300),  # the default: 10 x 10 s = 100 s of a 5-minute lease
        (0.5, 10, 300),
        (60, 2, 300),  # 2 x 60 s = 120 s: at most half the lease
        (150, 1, 300),
        (200, 1, 400),  # one delivery past half the lease: the lease grows to twice it
    ],
)
def test_a_batchs_deadlines_take_at_most_half_its_lease(timeout, size, lease_seconds):
    """A batch is recorded once all of it is sent: its POSTs, each ended at the timeout,
    leave the lease's other half to name lookups, the claim and the record, so no other
    worker takes (and sends again) a batch still being sent."""
    got = webhook_delivery.batch_for(OutboundPolicy(timeout=timeout))
    assert got == (size, timedelta(seconds=lease_seconds))
    assert got[0] * timeout <= got[1].total_seconds() / 2
