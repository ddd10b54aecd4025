"""Per-write cost of writing product events (and webhook deliveries), in process.

    .venv/bin/python -m bench.events_overhead [--writes 200] [--rounds 5] [DATABASE_URL]

Not part of ``python -m bench`` (no server, no load generator): SCIM POST
/Users and PATCH /Users through the Flask test client, alternating three modes
round by round so that the machine's noise falls on all of them alike:

- ``off``: the commit hook removed (no events written; the recorder's note stays);
- ``events``: events written, no subscription;
- ``events+3 subs``: events and three subscriptions to every type (no worker running:
  fan-out and sending are the worker's, outside the request).

Prints the mean time per write (each round starts with another mode) and the SQL
statements per write of each mode.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import uuid
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from scim_server import create_app
from scim_server.db import db
from scim_server.events.writer import write_pending
from scim_server.migrate import upgrade
from scim_server.sealing import encryption_secret
from scim_server.services.organizations import create_organization
from scim_server.services.tokens import create_token
from scim_server.services.webhooks import create_subscription
from scim_server.webhook_http import OutboundPolicy

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _org(app: Any, subscriptions: int) -> str:
    with db.writer(app)() as s:
        org = create_organization(s, f"bench-{uuid.uuid4().hex[:8]}")
        _t, secret = create_token(s, org.id, "bench")
        for i in range(subscriptions):
            fields = {"url": f"http://127.0.0.1:9/hook{i}", "events": ["*"]}
            create_subscription(
                s,
                org.id,
                fields,
                OutboundPolicy(development=True),
                server_secret=encryption_secret(app),
            )
    return secret


def _writes(client: Any, secret: str, count: int) -> float:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/scim+json"}
    started = time.perf_counter()
    for _ in range(count):
        name = f"{uuid.uuid4().hex[:12]}@example.com"
        resp = client.post(
            "/scim/v2/Users", json={"schemas": [USER], "userName": name}, headers=headers
        )
        assert resp.status_code == 201, resp.get_data(as_text=True)
        ops = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "x"}]}
        resp = client.patch(f"/scim/v2/Users/{resp.get_json()['id']}", json=ops, headers=headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)
    return (time.perf_counter() - started) / (2 * count)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the access log line per request is not what is measured
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/events-overhead.db"
    app = create_app({"DATABASE_URL": url})
    upgrade(db.engine(app))
    client = app.test_client()
    modes = {"off": (False, 0), "events": (True, 0), "events+3 subs": (True, 3)}
    secrets = {mode: _org(app, subs) for mode, (_on, subs) in modes.items()}
    statements = {"n": 0}

    def count(*_args: Any) -> None:
        statements["n"] += 1

    event.listen(db.engine(app), "before_cursor_execute", count)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    per_write: dict[str, float] = {}
    _writes(client, secrets["events"], 20)  # warm-up
    names = list(modes)
    for round_no in range(args.rounds):
        # Each round starts with another mode: no mode always runs first (or last).
        for mode in names[round_no % 3 :] + names[: round_no % 3]:
            on = modes[mode][0]
            if not on:
                event.remove(Session, "before_commit", write_pending)
            statements["n"] = 0
            times[mode].append(_writes(client, secrets[mode], args.writes))
            per_write[mode] = statements["n"] / (2 * args.writes)
            if not on:
                event.listen(Session, "before_commit", write_pending)
    base = statistics.mean(times["off"])
    print(f"{db.engine(app).dialect.name}: {args.rounds} rounds x {args.writes} (POST + PATCH)")
    for mode in modes:
        mean = statistics.mean(times[mode])
        print(
            f"  {mode:14} {mean * 1000:7.3f} ms/write  {per_write[mode]:5.1f} statements/write"
            f"  throughput ratio vs off {base / mean:5.3f}"
        )


if __name__ == "__main__":
    main()
