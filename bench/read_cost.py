"""CPU time and SQL statements per SCIM read, in process (BENCHMARKS.md, "Read cost").

    .venv/bin/python -m bench.read_cost [--users 200] [--requests 500] [--rounds 2]
        [--deep-users 10000] [--only OP ...] [--profile OP] [--sql] [DATABASE_URL]

The reads of the issue-17 mixes (the 20 tenants, an Entra initial sync), measured as
``bench.write_cost`` measures writes (its ``Writer`` makes the organization, the token
and the users; the same Flask test client, ``time.process_time``, statements counted
on the engine): GET /Users/{id}, ``filter=userName eq`` of an existing user and of a
missing one (the lookup before each POST of an initial sync), ``emails[type eq
"work"].value eq`` (what Entra ID sends) and ``emails[value eq]``, and GET /Groups/{id}
of a group of 10 members. Every user is in one of the groups, so a user's
representation has its ``groups``. ``deep-page`` (with ``--deep-users N``) is the
benchmark's deep list page (``bench.measurements.deep_page``): ``GET /Users?startIndex=S
&count=100`` with S within the last 200 of a second organization of N users, bulk-loaded
as the benchmark loads and settles its own (``bench.dataset``, ``bench.loader``: half of
them in one big group, the last 200 in groups of 10); ``--only`` times only the operations named.
Each round prints the mean CPU time per request of each kind, as "Python / PostgreSQL"
(this process's, then the database backends' on a local PostgreSQL, as
``bench.write_cost`` gives them; "n/a" elsewhere); then the statements of one request
(``--sql`` prints them).

``--profile OP`` runs that read under cProfile after the rounds. ``--marks`` calls
``os.getppid()`` before each operation's first round and after it, so that valgrind's
``callgrind --dump-before='os_getppid*'`` counts each operation's ``--requests`` reads in a
dump of its own (the set-up and warm-up in the first, the rest in the last). Without
DATABASE_URL, a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from bench.dataset import build_org
from bench.loader import load_orgs, settle
from bench.measurements import deep_page
from bench.profiles import data_only
from bench.server_cpu import ServerCpu
from bench.write_cost import Writer, cells, profile, setup, statements_of, timed
from scim_server.db import db
from scim_server.services.tokens import create_token

OPERATIONS = (
    "get",
    "username-eq",
    "username-miss",
    "email-work",
    "email-value",
    "group-get",
    "deep-page",
)
GROUP_SIZE = 10
PAGE = 100


class Reader:
    """``users`` users made by a ``Writer``, in groups of ``GROUP_SIZE``; the reads to time."""

    def __init__(self, w: Writer, users: int) -> None:
        self.w = w
        for _ in range(users):
            w.post()
        self.ids = list(w.ids)
        self.names = [w.sent[i]["userName"] for i in self.ids]
        self.work = [w.sent[i]["emails"][0]["value"] for i in self.ids]
        self.groups: list[str] = []
        for start in range(0, len(self.ids), GROUP_SIZE):
            members = [{"value": i} for i in self.ids[start : start + GROUP_SIZE]]
            body = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": f"Read cost {start // GROUP_SIZE}",
                "members": members,
            }
            resp = w.client.post("/scim/v2/Groups", json=body, headers=w.headers)
            assert resp.status_code == 201, resp.get_data(as_text=True)
            self.groups.append(resp.get_json()["id"])

    def _get(self, url: str, found: int | None = None) -> None:
        resp = self.w.client.get(url, headers=self.w.headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        if found is not None:
            total = resp.get_json()["totalResults"]
            assert total == found, (url, total)

    def _filter(self, text: str, found: int) -> None:
        self._get(f"/scim/v2/Users?filter={quote(text)}", found)

    def steps(self, deep: DeepPages | None = None) -> dict[str, Callable[[int], None]]:
        n, groups = len(self.ids), self.groups
        out: dict[str, Callable[[int], None]] = {
            "get": lambda i: self._get(f"/scim/v2/Users/{self.ids[i % n]}"),
            "username-eq": lambda i: self._filter(f'userName eq "{self.names[i % n]}"', 1),
            "username-miss": lambda i: self._filter(f'userName eq "nobody{i}@example.org"', 0),
            "email-work": lambda i: self._filter(
                f'emails[type eq "work"].value eq "{self.work[i % n]}"', 1
            ),
            "email-value": lambda i: self._filter(f'emails[value eq "{self.work[i % n]}"]', 1),
            "group-get": lambda i: self._get(f"/scim/v2/Groups/{groups[i % len(groups)]}"),
        }
        if deep is not None:
            out["deep-page"] = deep.get
        return out


class DeepPages:
    """An organization of ``size`` users loaded as the benchmark loads its own, and its deep
    list pages (the benchmark's ``deep_page``: a page of 100 within the last 200 users)."""

    def __init__(self, app: Any, client: Any, size: int) -> None:
        half = size // 2
        shape = data_only(
            "read-cost", size, big_group_size=half, small_groups_per_org=20, small_group_size=10
        )
        org = build_org(shape, size, seed=17)
        load_orgs(db.engine(app), [org])
        settle(db.engine(app))  # as the benchmark: PostgreSQL's statistics, SQLite's WAL
        with db.writer(app)() as s:
            _t, secret = create_token(s, org.id, "read-cost")
        self.client = client
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.paths = deep_page(size)
        self.rng = random.Random(17)

    def get(self, _i: int) -> None:
        resp = self.client.get(self.paths(self.rng), headers=self.headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        # Not parsed (a page is ~120 KB; the test client's json would cost more than orjson's
        # dumps of it in the server): the envelope says how many resources it holds.
        assert b'"itemsPerPage":%d,' % PAGE in resp.data, resp.data[:200]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--deep-users", type=int, default=0, help="users for deep-page")
    parser.add_argument("--only", nargs="+", choices=OPERATIONS, help="time only these")
    parser.add_argument("--profile", choices=OPERATIONS)
    parser.add_argument("--sql", action="store_true", help="print the statements of each read")
    parser.add_argument("--marks", action="store_true", help="os.getppid() between operations")
    args = parser.parse_args()
    app, url = setup(args.url, "read-cost")
    writer = Writer(app)
    reader = Reader(writer, args.users)
    deep = DeepPages(app, writer.client, args.deep_users) if args.deep_users else None
    steps = reader.steps(deep)
    names = [name for name in args.only or OPERATIONS if name in steps]
    for name in names:  # warm: statement caches, the filter parser
        for i in range(20):
            steps[name](i)
    n = args.requests
    server = ServerCpu(url)
    print(f"{url.split(':', 1)[0]}: CPU ms per request ({n} of each), Python / database server")
    print("round | " + " | ".join(names))
    for r in range(args.rounds):
        figures = []
        for name in names:
            if args.marks and r == 0:
                os.getppid()  # callgrind: a dump of its own for each operation
            figures.append(timed(n, steps[name], server))
        if args.marks and r == 0:
            os.getppid()
        print(f"{r + 1} | {cells(figures, 3)}")
    steps = {name: steps[name] for name in names}
    counts = statements_of(app, steps, show=args.sql)
    print("statements per request: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if args.profile:
        profile(n, reader.steps(deep)[args.profile])


if __name__ == "__main__":
    main()
