"""Webhooks and the events feed as an integrator relies on them: organizations take turns, a
purge leaves no hole and says what a receiver missed, the log keeps what it says. Each test
failed before its fix (found by a probe of the webhooks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from scim_server.db import db
from scim_server.models import AuditEvent, MailOutbox
from tests.support import Clock, Scim
from tests.support.admin_api import admin_of, ok, person
from tests.support.webhooks import subscribe, webhook_receiver, webhook_worker

HOUR = 3600


def feed(admin: Scim, **params: Any) -> list[dict]:
    return ok(admin.get("/api/v1/events", query_string={"limit": 1000, **params}))["events"]


# --- Events content -------------------------------------------------------------------


@contextmanager
def black_hole() -> Iterator[str]:
    """A TCP port on 127.0.0.1 that takes connections (the backlog) and never answers."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
    finally:
        sock.close()


def test_pending_deliveries_purged_while_disabled_are_a_visible_gap(app, scim, admin):
    """README: events deleted by retention while a subscription was disabled cannot be
    sent, "and the worker says so: a webhook.gap audit event ..., and a mail to its
    alert_email". Here the events were already fanned out (pending deliveries, the
    receiver was down) when the subscription was disabled."""
    ok(admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}))
    with webhook_receiver(500) as receiver:
        sub = ok(
            admin.post("/api/v1/webhooks", {"url": receiver.url, "alert_email": "ops@acme.test"}),
            201,
        )
        url = f"/api/v1/webhooks/{sub['id']}"
        clock = Clock()
        worker = webhook_worker(app, clock, event_retention=timedelta(days=30))
        person(scim, "ann@example.com")  # position 1: fanned out, fails
        worker.send_webhooks()
        ok(admin.patch(url, {"enabled": False}))
        person(scim, "bob@example.com")  # position 2 (the newest: kept by the purge)
        clock.advance(31 * 24 * HOUR)
        worker.run_once()  # purges position 1
        assert [e["position"] for e in feed(admin)] == [2]
        receiver.status = 200
        ok(admin.patch(url, {"enabled": True}))
        worker.send_webhooks()
        got = [p["position"] for p in receiver.verified(sub["secret"])]
    assert got == [2]
    with db.reader(app)() as session:
        gaps = session.scalars(select(AuditEvent).where(AuditEvent.action == "webhook.gap")).all()
        mails = session.scalars(select(MailOutbox).where(MailOutbox.kind == "webhook_gap")).all()
    assert len(gaps) == 1 and len(mails) == 1, (gaps, mails)


def test_the_log_keeps_the_first_1000_bytes_of_a_response(app, scim, admin):
    """README: the log has "the first 1,000 bytes of each response"."""
    with webhook_receiver(200, body="é".encode() * 1500) as receiver:
        sub = subscribe(admin, receiver.url)
        person(scim, "ann@example.com")
        webhook_worker(app).send_webhooks()
    (delivery,) = ok(admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries"))["deliveries"]
    kept = delivery["log"][0]["response"]
    assert len(kept.encode()) <= 1000, len(kept.encode())


def test_a_connection_created_disabled_is_not_an_activation(scim, admin):
    """POST /api/v1/sso/connections with "enabled": false: the connection is off, so no
    connection.activated event claiming it is enabled (state enabled: true)."""
    conn = ok(
        admin.post(
            "/api/v1/sso/connections",
            {
                "name": "Okta",
                "protocol": "oidc",
                "issuer": "https://idp.example.com",
                "client_id": "abc",
                "client_secret": "s3cret",
                "enabled": False,
            },
        ),
        201,
    )
    assert conn["enabled"] is False
    events = [e for e in feed(admin) if e["type"].startswith("connection.")]
    assert [e["data"]["state"]["enabled"] for e in events] in ([], [False]), events
    assert "connection.activated" not in [e["type"] for e in events]


def test_retention_purges_a_prefix_of_positions_never_a_hole(app, scim, admin):
    """Positions are given at commit, occurred_at when the change was recorded: a
    transaction recorded 2 s before another but committed after it has the later position
    and the earlier time (PostgreSQL, concurrent writers; a rules-apply batch and a SCIM
    write). A purge whose cutoff falls in those 2 s must not delete position 3 and keep 2:
    a reader at cursor 1 would then read 2 and 4, missing 3 without a 410."""
    from scim_server.events.feed import purge
    from scim_server.models import Event

    ok(admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}))
    for name in ("ann", "bob", "cat", "dan"):
        person(scim, f"{name}@example.com")  # positions 1-4
    clock = Clock()
    cutoff = clock.now - timedelta(days=30)
    times = {
        1: cutoff - timedelta(seconds=10),
        2: cutoff + timedelta(seconds=1),  # committed first
        3: cutoff - timedelta(seconds=1),  # recorded first, committed second
        4: clock.now,
    }
    with db.writer(app)() as s, s.begin():
        for row in s.scalars(select(Event).where(Event.org_id == scim.org_id)):
            row.occurred_at = times[row.position]
    with db.writer(app)() as s, s.begin():
        purge(s, clock.now, timedelta(days=30))
    kept = [e["position"] for e in feed(admin)]
    assert kept == list(range(kept[0], 5)), kept
    # A reader that had read up to 1 is told it missed something, or reads 2, 3 and 4.
    resp = admin.get("/api/v1/events", query_string={"after": "1"})
    if resp.status_code == 200:
        assert [e["position"] for e in resp.get_json()["events"]] == [2, 3, 4]
    else:
        assert resp.status_code == 410


def test_one_organizations_slow_receiver_does_not_hold_back_anothers_webhooks(
    app, scim, other_scim, admin
):
    """Organization A's receiver never answers (each attempt ends at the timeout) and A has
    a backlog (12 deliveries, as a rules apply over 1,000 users would make 1,000);
    organization B has one event just after. A worker round (here of 10 deliveries, as
    serve's rounds of 50) must not spend itself on A alone: B's webhook goes in it, as the
    worker takes organizations in turn for mail and credentials. Before the fix: B waits behind
    every one of A's timeouts (1,000 x 10 s: close to 3 hours)."""
    from scim_server.sealing import encryption_secret
    from scim_server.webhook_http import OutboundPolicy
    from scim_server.worker import Worker

    other_admin = admin_of(other_scim)
    with black_hole() as slow, webhook_receiver() as receiver:
        subscribe(admin, slow, ["user.created"])
        sub_b = subscribe(other_admin, receiver.url, ["user.created"])
        for i in range(12):
            person(scim, f"a{i}@example.com")
        person(other_scim, "b@example.com")
        clock = Clock()
        worker = Worker(
            db.writer(app),
            clock=clock,
            outbound=OutboundPolicy(development=True, timeout=0.2),
            server_secret=encryption_secret(app),
        )
        rounds = 0
        # A's backlog is due again after its backoff (at most an hour) before a pass over it
        # ends (1,000 x 10 s): each round takes A's oldest due deliveries first, again.
        for _ in range(3):
            assert worker.send_webhooks(limit=10) == 10
            rounds += 1
            if receiver.received:
                break
            clock.advance(HOUR)
        got = receiver.verified(sub_b["secret"])
    assert [p["organization"] for p in got] == [other_scim.org_id] and rounds == 1, rounds


def test_pending_deliveries_purged_while_the_receiver_lagged_are_a_visible_gap(app, scim, admin):
    """README: events deleted by retention "while it lagged that long" cannot be sent, and
    the worker says so (webhook.gap audit event, mail). Retention 1 day (allowed), the
    receiver down for 2 days: the delivery being retried loses its event."""
    ok(admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}))
    with webhook_receiver(503) as receiver:
        sub = ok(
            admin.post("/api/v1/webhooks", {"url": receiver.url, "alert_email": "ops@acme.test"}),
            201,
        )
        clock = Clock()
        worker = webhook_worker(app, clock, event_retention=timedelta(days=1))
        person(scim, "ann@example.com")  # position 1
        worker.send_webhooks()
        person(scim, "bob@example.com")  # position 2, the newest
        worker.send_webhooks()
        clock.advance(2 * 24 * HOUR)
        receiver.status = 200
        assert worker.purge_events() == 1  # purges position 1
        worker.send_webhooks()
        got = [p["position"] for p in receiver.verified(sub["secret"])]
    log = ok(admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries"))["deliveries"]
    assert got == [2], (got, [(d["position"], d["state"], d["last_error"]) for d in log])
    with db.reader(app)() as session:
        gaps = session.scalars(select(AuditEvent).where(AuditEvent.action == "webhook.gap")).all()
        mails = session.scalars(select(MailOutbox).where(MailOutbox.kind == "webhook_gap")).all()
    assert len(gaps) == 1 and len(mails) == 1, (
        gaps,
        mails,
        [(d["position"], d["state"], d["last_error"]) for d in log],
    )
