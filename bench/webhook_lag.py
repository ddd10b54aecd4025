"""Webhook delivery lag under a write load, in process: how long from a change to its webhook.

    .venv/bin/python -m bench.webhook_lag [--writes 300] [--subscriptions 3] [--poll 0.2] [URL]

Not part of ``python -m bench``: a writer thread creates users over SCIM (Flask
test client) while one ``Worker`` thread (``send_webhooks`` then a ``poll`` wait,
as ``scim-server worker --poll-interval`` does) delivers to receivers on
127.0.0.1. Lag = arrival at the receiver - the event's ``occurred_at``. Prints
p50/p99/max and the write rate with and without the worker running.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import threading
import time
from datetime import datetime
from typing import Any

from bench.events_overhead import _org, _writes
from scim_server import create_app
from scim_server.db import db
from scim_server.migrate import upgrade
from scim_server.webhook_http import OutboundPolicy
from scim_server.worker import Worker


def _receiver(arrivals: list[float]) -> Any:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            occurred = datetime.fromisoformat(
                json.loads(body)["occurred_at"].replace("Z", "+00:00")
            )
            arrivals.append(time.time() - occurred.timestamp())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--subscriptions", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.2)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/webhook-lag.db"
    app = create_app({"DATABASE_URL": url})
    upgrade(db.engine(app))
    arrivals: list[float] = []
    server = _receiver(arrivals)
    secret = _org(app, 0)
    from scim_server.sealing import encryption_secret
    from scim_server.services.tokens import authenticate
    from scim_server.services.webhooks import create_subscription

    with db.writer(app)() as s:
        org_id = authenticate(s, secret).org_id  # type: ignore[union-attr]
    with db.writer(app)() as s:
        for i in range(args.subscriptions):
            fields = {"url": f"http://127.0.0.1:{server.server_address[1]}/h{i}", "events": ["*"]}
            create_subscription(
                s,
                org_id,
                fields,
                OutboundPolicy(development=True),
                server_secret=encryption_secret(app),
            )
    client = app.test_client()
    alone = _writes(client, _org(app, 0), args.writes // 2)
    worker = Worker(
        db.writer(app),
        outbound=OutboundPolicy(development=True),
        worker_id="lag",
        server_secret=encryption_secret(app),
    )

    def loop() -> None:
        while not worker.stop.is_set():
            worker.send_webhooks()
            worker.stop.wait(args.poll)

    thread = threading.Thread(target=loop)
    thread.start()
    loaded = _writes(client, secret, args.writes // 2)
    expected = args.writes * args.subscriptions  # a POST and a PATCH per pair: 2 events each
    deadline = time.time() + 120
    while len(arrivals) < expected and time.time() < deadline:
        time.sleep(0.1)
    worker.stop.set()
    thread.join()
    server.shutdown()
    lags = sorted(arrivals)
    name = db.engine(app).dialect.name
    print(f"{name}: {len(lags)}/{expected} deliveries, worker polling every {args.poll}s")
    print(
        f"  lag p50 {statistics.median(lags) * 1000:.0f} ms, "
        f"p99 {lags[int(len(lags) * 0.99) - 1] * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms"
    )
    print(
        f"  write {alone * 1000:.2f} ms alone, {loaded * 1000:.2f} ms with the worker delivering"
        f" (ratio {alone / loaded:.3f})"
    )


if __name__ == "__main__":
    main()
