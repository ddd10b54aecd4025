"""CPU time and SQL statements per SCIM read, in process (BENCHMARKS.md, "Read cost").

    .venv/bin/python -m bench.read_cost [--users 200] [--requests 500] [--rounds 2]
        [--profile OP] [--sql] [DATABASE_URL]

The reads of the issue-17 mixes (the 20 tenants, an Entra initial sync), measured as
``bench.write_cost`` measures writes (its ``Writer`` makes the organization, the token
and the users; the same Flask test client, ``time.process_time``, statements counted
on the engine): GET /Users/{id}, ``filter=userName eq`` of an existing user and of a
missing one (the lookup before each POST of an initial sync), ``emails[type eq
"work"].value eq`` (what Entra ID sends) and ``emails[value eq]``, and GET /Groups/{id}
of a group of 10 members. Every user is in one of the groups, so a user's
representation has its ``groups``. Each round prints the mean CPU time per request of
each kind, as "Python / PostgreSQL" (this process's, then the database backends' on a
local PostgreSQL, as ``bench.write_cost`` gives them; "n/a" elsewhere); then the
statements of one request (``--sql`` prints them).

``--profile OP`` runs that read under cProfile after the rounds. Without DATABASE_URL,
a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from urllib.parse import quote

from bench.server_cpu import ServerCpu
from bench.write_cost import Writer, cells, profile, setup, statements_of, timed

OPERATIONS = ("get", "username-eq", "username-miss", "email-work", "email-value", "group-get")
GROUP_SIZE = 10


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

    def steps(self) -> dict[str, Callable[[int], None]]:
        n, groups = len(self.ids), self.groups
        return {
            "get": lambda i: self._get(f"/scim/v2/Users/{self.ids[i % n]}"),
            "username-eq": lambda i: self._filter(f'userName eq "{self.names[i % n]}"', 1),
            "username-miss": lambda i: self._filter(f'userName eq "nobody{i}@example.org"', 0),
            "email-work": lambda i: self._filter(
                f'emails[type eq "work"].value eq "{self.work[i % n]}"', 1
            ),
            "email-value": lambda i: self._filter(f'emails[value eq "{self.work[i % n]}"]', 1),
            "group-get": lambda i: self._get(f"/scim/v2/Groups/{groups[i % len(groups)]}"),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", choices=OPERATIONS)
    parser.add_argument("--sql", action="store_true", help="print the statements of each read")
    args = parser.parse_args()
    app, url = setup(args.url, "read-cost")
    reader = Reader(Writer(app), args.users)
    steps = reader.steps()
    for name in OPERATIONS:  # warm: statement caches, the filter parser
        for i in range(20):
            steps[name](i)
    n = args.requests
    server = ServerCpu(url)
    print(f"{url.split(':', 1)[0]}: CPU ms per request ({n} of each), Python / database server")
    print("round | " + " | ".join(OPERATIONS))
    for r in range(args.rounds):
        figures = [timed(n, steps[name], server) for name in OPERATIONS]
        print(f"{r + 1} | {cells(figures, 3)}")
    counts = statements_of(app, steps, show=args.sql)
    print("statements per request: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if args.profile:
        profile(n, steps[args.profile])


if __name__ == "__main__":
    main()
