"""CPU time and SQL statements per SCIM write, in process (BENCHMARKS.md, "Write cost").

    .venv/bin/python -m bench.write_cost [--requests 200] [--rounds 2] [--profile OP] [DATABASE_URL]

Not part of ``python -m bench`` (no server, no load generator): the Flask test
client sends, in one process, ``--requests`` POST /Users (the benchmark's user
body, ``bench.dataset.user_body``), PATCH replace ``title``, PATCH replace
``active`` (each a real change: false, then true again) and DELETE /Users/{id}
of the users it created. CPU time (``time.process_time``) is the steadiest
figure on a shared machine: wall-clock rates move by up to 2x between runs of
the same code, the server's own CPU per request barely does. Each round prints
the mean CPU time per request of each kind, as "Python / PostgreSQL": this
process's, then, on a local PostgreSQL, that of the database's backends
(``bench.server_cpu``: from /proc, in ticks of 10 ms, so a figure moves by
about 0.05 ms at 200 requests; "n/a" on SQLite or a remote database). Then the
statements of one request (token lookup and representation included; ``BEGIN``
counts on SQLite, where it is a statement).

``--profile post`` (or ``patch-title``, ``patch-active``, ``delete``) runs that
operation under cProfile after the rounds and prints the functions with the most
cumulative time. Without DATABASE_URL, a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from bench.dataset import user_body
from bench.server_cpu import ServerCpu, per_request_ms, shown
from scim_server import create_app
from scim_server.db import db
from scim_server.migrate import upgrade
from scim_server.services.organizations import create_organization
from scim_server.services.tokens import create_token

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
OPERATIONS = ("post", "patch-title", "patch-active", "delete")


class Writer:
    """One organization, its token, and the users this run created."""

    def __init__(self, app: Any) -> None:
        with db.writer(app)() as s:
            org = create_organization(s, f"write-cost-{uuid.uuid4().hex[:8]}")
            _t, secret = create_token(s, org.id, "bench")
        self.client = app.test_client()
        self.headers = {
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/scim+json",
        }
        self.rng = random.Random(7)
        self.made = 0
        self.ids: list[str] = []
        self.active: dict[str, bool] = {}
        self.sent: dict[str, dict[str, Any]] = {}  # id -> the body POSTed (bench.read_cost)

    def post(self) -> None:
        self.made += 1
        body = user_body(self.rng, self.made, f"{uuid.uuid4().hex[:8]}.example.org")
        resp = self.client.post("/scim/v2/Users", json=body, headers=self.headers)
        assert resp.status_code == 201, resp.get_data(as_text=True)
        user_id = resp.get_json()["id"]
        self.ids.append(user_id)
        self.active[user_id] = True
        self.sent[user_id] = body

    def _patch(self, user_id: str, path: str, value: Any) -> None:
        ops = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": path, "value": value}]}
        resp = self.client.patch(f"/scim/v2/Users/{user_id}", json=ops, headers=self.headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)

    def patch_title(self, i: int) -> None:
        self._patch(self.ids[i % len(self.ids)], "title", f"Title {uuid.uuid4().hex[:8]}")

    def patch_active(self, i: int) -> None:
        user_id = self.ids[i % len(self.ids)]
        self.active[user_id] = not self.active[user_id]
        self._patch(user_id, "active", self.active[user_id])

    def delete(self) -> None:
        user_id = self.ids.pop()
        resp = self.client.delete(f"/scim/v2/Users/{user_id}", headers=self.headers)
        assert resp.status_code == 204, resp.get_data(as_text=True)


def timed(
    count: int, step: Callable[[int], None], server: ServerCpu | None = None
) -> tuple[float, float | None]:
    """(this process's CPU ms, the database backends' CPU ms or None) per call of ``step``."""
    server_before = server.seconds() if server is not None else None
    started = time.process_time()
    for i in range(count):
        step(i)
    python = (time.process_time() - started) / count * 1000
    server_after = server.seconds() if server is not None else None
    return python, per_request_ms(server_before, server_after, count)


def cells(figures: list[tuple[float, float | None]], digits: int = 2) -> str:
    """One round's figures as "Python / PostgreSQL" cells."""
    return " | ".join(f"{py:.{digits}f} / {shown(pg, digits)}" for py, pg in figures)


def _steps(w: Writer) -> dict[str, Callable[[int], None]]:
    return {
        "post": lambda _i: w.post(),
        "patch-title": w.patch_title,
        "patch-active": w.patch_active,
        "delete": lambda _i: w.delete(),
    }


def statements_of(
    app: Any, steps: dict[str, Callable[[int], None]], *, show: bool = False
) -> dict[str, int]:
    """The statements of one request of each kind (after the rounds: caches are warm);
    ``show`` prints them."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = db.engine(app)
    event.listen(engine, "before_cursor_execute", count)
    out = {}
    try:
        for name, step in steps.items():
            seen.clear()
            step(0)
            out[name] = len(seen)
            if show:
                print(f"-- {name}: {len(seen)} statements")
                for statement in seen:
                    print(" ".join(statement.split())[:300])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return out


def profile(count: int, step: Callable[[int], None], lines: int = 60) -> None:
    """``count`` calls of ``step`` under cProfile (CPU time); the top functions, cumulative."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for i in range(count):
        step(i)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(lines)


def setup(url: str | None, name: str) -> tuple[Any, str]:
    """The app on ``url`` (default: a SQLite file in a temporary directory), schema upgraded."""
    logging.disable(logging.INFO)  # the access log line per request is not what is measured
    url = url or f"sqlite:///{tempfile.mkdtemp()}/{name}.db"
    app = create_app({"DATABASE_URL": url})
    upgrade(db.engine(app))
    return app, url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", choices=OPERATIONS)
    args = parser.parse_args()
    app, url = setup(args.url, "write-cost")
    w = Writer(app)
    for _ in range(20):  # warm: the organization's settings, statement caches
        w.post()
    n = args.requests
    server = ServerCpu(url)
    print(f"{url.split(':', 1)[0]}: CPU ms per request ({n} of each), Python / database server")
    print("round | POST | PATCH title | PATCH active | DELETE")
    for r in range(args.rounds):
        steps = _steps(w)
        figures = [timed(n, steps[name], server) for name in OPERATIONS]
        print(f"{r + 1} | {cells(figures)}")
    counts = statements_of(app, _steps(w))
    print("statements per request: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if args.profile:
        for _ in range(n):
            w.post()  # users to patch or delete
        profile(n, _steps(w)[args.profile])


if __name__ == "__main__":
    main()
