"""The measurement plan: which operation runs against which data, at which concurrency.

Everything runs on the largest organization, with the baseline measured just
before the SCIM operations at each concurrency so that both see the machine
in the same state. Writes come after reads, and DELETE last, so that reads
always find the loaded data set.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable

from sqlalchemy.engine import Engine

from bench import labels
from bench.dataset import OrgData
from bench.loader import add_leavers, remove_users
from bench.loadgen import Target, measure
from bench.profiles import Profile
from bench.report import Row, add_baseline_ratios, rows_from, skipped_row
from bench.scenarios import (
    Creates,
    Deletes,
    MemberChurn,
    PatchTitle,
    Reads,
    Scenario,
    filter_path,
)
from bench.servers import HOST

PathMaker = Callable[[random.Random], str]
# An operation this slow at c=1 is not run at higher concurrency: with two
# workers, 32 clients would each wait 16 times as long, for minutes, to learn
# that the throughput is two divided by this latency.
SLOW_AT_C1_MS = 500.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def by_id(ids: list[str]) -> PathMaker:
    return lambda rng: f"/scim/v2/Users/{rng.choice(ids)}"


def baseline_row(org_id: str, ids: list[str]) -> PathMaker:
    return lambda rng: f"/users/{org_id}/{rng.choice(ids)}"


def by_user_name(names: list[str]) -> PathMaker:
    return lambda rng: filter_path(f'userName eq "{rng.choice(names)}"')


def by_work_email(emails: list[str]) -> PathMaker:
    return lambda rng: filter_path(f'emails[type eq "work"].value eq "{rng.choice(emails)}"')


def deep_page(size: int) -> PathMaker:
    """A page of 100 starting within the last 200 users: OFFSET near the end of the set."""
    return lambda rng: f"/scim/v2/Users?startIndex={size - 199 + rng.randrange(100)}&count=100"


class Bench:
    """Measurements against one pair of running servers."""

    def __init__(
        self, backend: str, profile: Profile, engine: Engine, scim_port: int, baseline_port: int
    ) -> None:
        self.backend = backend
        self.profile = profile
        self.engine = engine  # to add the users each DELETE run removes
        self.scim_port = scim_port
        self.baseline = Target(HOST, baseline_port)
        self.p50_at_c1: dict[str, float] = {}

    def scim(self, token: str) -> Target:
        return Target(HOST, self.scim_port, {"Authorization": f"Bearer {token}"})

    def run(
        self, target: Target, scenario: Scenario, c: int, org_size: int, label: str
    ) -> list[Row]:
        """Measure ``scenario``, whose first request type is ``label``."""
        slow = self.p50_at_c1.get(label, 0.0)
        if c > 1 and slow >= SLOW_AT_C1_MS:
            why = f"p50 at c=1 was {slow:.0f} ms"
            log(f"  {self.backend:10} c={c:<3} {label:50} {why}: skipped")
            return [skipped_row(self.backend, label, c, org_size, why)]
        p = self.profile
        outcome = measure(target, scenario, c, p.warmup_s, p.duration_s, p.max_requests)
        rows = rows_from(self.backend, outcome, c, org_size)
        if c == 1 and org_size == max(p.org_sizes):
            self.p50_at_c1.update((r.operation, r.p50_ms) for r in rows)
            # A run so slow that its first request type never completed within the
            # window (only the other half of a pair did) is as slow as its slowest row.
            measured = [r.p50_ms for r in rows if r.p50_ms == r.p50_ms]
            if label not in self.p50_at_c1 and measured:
                self.p50_at_c1[label] = max(measured)
        for r in rows:
            log(
                f"  {self.backend:10} c={c:<3} {r.operation:50} {r.rps:6.0f} req/s "
                f"p50 {r.p50_ms:7.1f} ms  p99 {r.p99_ms:7.1f} ms  errors {r.errors}"
            )
        for failure in outcome.failures:
            log(f"    failure: {failure}")
        return rows

    def matrix(self, org: OrgData, token: str) -> list[Row]:
        """Every operation at every concurrency, on ``org`` (the largest organization)."""
        rows: list[Row] = []
        for c in self.profile.concurrencies:
            rows += self.reads(org, self.scim(token), c)
            rows += self.writes(org, self.scim(token), c)
        add_baseline_ratios(rows)
        return rows

    def reads(self, org: OrgData, target: Target, c: int) -> list[Row]:
        n = org.size
        baseline = Reads(labels.BASELINE, baseline_row(org.id, org.user_ids))
        rows = self.run(self.baseline, baseline, c, n, labels.BASELINE)
        for label, paths in (
            (labels.GET_BY_ID, by_id(org.user_ids)),
            (labels.FILTER_USERNAME, by_user_name(org.user_names)),
            (labels.FILTER_WORK_EMAIL, by_work_email(org.work_emails)),
            (labels.DEEP_LIST, deep_page(n)),
        ):
            rows += self.run(target, Reads(label, paths), c, n, label)
        return rows

    def writes(self, org: OrgData, target: Target, c: int) -> list[Row]:
        n = org.size
        rows = self.run(target, PatchTitle(org.user_ids), c, n, labels.PATCH_TITLE)
        assert org.big_group_id is not None, "the largest organization has the big group"
        for group_id, names in (
            (org.big_group_id, (labels.ADD_BIG, labels.REMOVE_BIG)),
            (org.small_group_ids[0], (labels.ADD_SMALL, labels.REMOVE_SMALL)),
        ):
            churn = MemberChurn(group_id, org.free_user_ids, c, names)
            rows += self.run(target, churn, c, n, names[0])
        creates = Creates(tag=f"post-c{c}")
        rows += self.run(target, creates, c, n, labels.CREATE)
        leavers = add_leavers(self.engine, org, self.profile.leavers, first=n * (c + 1))
        deletes = Deletes(creates.created + leavers)
        rows += self.run(target, deletes, c, n, labels.DELETE)
        remove_users(self.engine, org.id, deletes.pending)
        return rows

    def growth(self, orgs: list[OrgData], tokens: dict[str, str]) -> list[Row]:
        """``userName eq`` and member-add latency (c=1) in each organization."""
        rows: list[Row] = []
        names = (labels.ADD_SMALL, labels.REMOVE_SMALL)
        for org in sorted(orgs, key=lambda o: o.size):
            target = self.scim(tokens[org.id])
            lookup = Reads(labels.FILTER_USERNAME, by_user_name(org.user_names))
            rows += self.run(target, lookup, 1, org.size, labels.FILTER_USERNAME)
            churn = MemberChurn(org.small_group_ids[0], org.free_user_ids, 1, names)
            measured = self.run(target, churn, 1, org.size, names[0])
            rows += [r for r in measured if r.operation != names[1]]
        return rows
