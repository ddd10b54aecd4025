"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 that keeps what it gets."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What arrived, and how to answer: ``status`` (a code, or a function of the request),
    ``body`` (None: "ok", or 5,000 bytes for a 5xx)."""

    port: int = 0
    status: int | Callable[[Received], int] = 204
    body: bytes | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def accepted(self) -> list[Received]:
        """The messages answered with a 2xx, in arrival order."""
        with self.lock:
            return [r for r in self.received if getattr(r, "answered", 0) < 300]

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every accepted message, verified with the standardwebhooks package."""
        hook = Webhook(secret)
        return [hook.verify(r.body, r.headers) for r in self.accepted()]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            got = Received({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            status = receiver.status(got) if callable(receiver.status) else receiver.status
            got.answered = status  # type: ignore[attr-defined]
            with receiver.lock:
                receiver.received.append(got)
            self.send_response(status)
            body = receiver.body
            if body is None:
                body = b"x" * 5000 if status >= 500 else b"ok"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def webhook_receiver(
    status: int | Callable[[Received], int] = 204, body: bytes | None = None
) -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 (a free port) until the block ends."""
    receiver = Receiver(status=status, body=body)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def subscribe(admin: Any, url: str, events: list[str] | None = None) -> dict[str, Any]:
    """POST /api/v1/webhooks; the answer holds the secret."""
    body: dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = events
    resp = admin.post("/api/v1/webhooks", body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return dict(resp.get_json())


def webhook_worker(app: Any, clock: Any = None, **kw: Any) -> Any:
    """A worker sending webhooks to 127.0.0.1 (development policy), on the test's database,
    opening the subscriptions' secrets with the app's encryption secret."""
    from scim_server.db import db
    from scim_server.sealing import encryption_secret
    from scim_server.webhook_http import OutboundPolicy
    from scim_server.worker import Worker

    if clock is not None:
        kw["clock"] = clock
    outbound = OutboundPolicy(development=True)
    return Worker(db.writer(app), outbound=outbound, server_secret=encryption_secret(app), **kw)


def run_until_disabled(admin: Any, worker: Any, clock: Any, subscription_id: str) -> int:
    """Send and let an hour pass until the subscription disables itself: the hours it took
    (at most 80: a receiver that never recovers is given up after the 3-day window)."""
    hours = 0
    while admin.get(f"/api/v1/webhooks/{subscription_id}").get_json()["enabled"]:
        worker.send_webhooks()
        clock.advance(3600)
        hours += 1
        assert hours < 80, "never disabled"
    return hours
