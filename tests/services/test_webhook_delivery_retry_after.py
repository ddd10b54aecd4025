"""A receiver's Retry-After on 429 and 503 (RFC 6585 §4, RFC 9110 §10.2.3, §15.6.4) delays the
next attempt, never below the worker's own backoff; other statuses keep the backoff."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support import Clock
from tests.support.admin_api import ok, person
from tests.support.webhooks import subscribe, webhook_worker


@contextmanager
def _receiver(status: int, retry_after: str | None) -> Iterator[tuple[str, list[int]]]:
    """A receiver on 127.0.0.1 answering ``status`` (and ``Retry-After``) to every POST."""
    hits: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hits.append(1)
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_retry_after_of_a_429_is_honoured(app, scim, admin):
    """``429`` with ``Retry-After: 3600``: no second request within the next ten minutes of
    the worker's rounds (its backoff alone would have tried again after 10 s, 20 s, ...)."""
    with _receiver(429, "3600") as (url, hits):
        subscribe(admin, url)
        person(scim, "ann@example.com")
        clock = Clock()
        worker = webhook_worker(app, clock)
        worker.send_webhooks()
        assert len(hits) == 1
        for _ in range(5):  # ten minutes of the worker's rounds
            clock.advance(120)
            worker.send_webhooks()
        assert len(hits) == 1, f"{len(hits)} requests within 10 minutes of Retry-After: 3600"
        clock.advance(3600 - 600)
        worker.send_webhooks()
        assert len(hits) == 2  # tried again once the hour is over


def _next_attempt(admin, sub_id: str) -> tuple[dict[str, Any], datetime]:
    (delivery,) = ok(admin.get(f"/api/v1/webhooks/{sub_id}/deliveries"))["deliveries"]
    when = datetime.fromisoformat(delivery["next_attempt_at"].replace("Z", "+00:00"))
    return delivery, when


@pytest.mark.parametrize(
    ("status", "header", "delay"),
    [
        (503, "120", 120),  # longer than the first backoff (10 s): the receiver's
        (429, "2", 10),  # shorter: the backoff
        (503, None, 10),  # none: the backoff
        (500, "120", 10),  # not a 429 or 503: ignored
        (429, "86400", 3600),  # at most an hour
    ],
)
def test_the_next_attempt_waits_for_the_longer_of_retry_after_and_backoff(
    app, scim, admin, status, header, delay
):
    """next_attempt_at = now + max(backoff, Retry-After) for 429 and 503, the backoff else."""
    with _receiver(status, header) as (url, hits):
        sub = subscribe(admin, url)
        person(scim, "ann@example.com")
        clock = Clock()
        worker = webhook_worker(app, clock)
        sent_at = clock()
        worker.send_webhooks()
        assert len(hits) == 1
    delivery, when = _next_attempt(admin, sub["id"])
    assert delivery["state"] == "pending" and delivery["last_status"] == status
    assert (when - sent_at).total_seconds() == pytest.approx(delay, abs=1)
