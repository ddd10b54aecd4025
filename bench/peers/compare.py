"""Ours next to the peers, same data, same operations, same run (``python -m bench --peers``).

For each backend: our server on a fresh database loaded by the bulk loader,
django-scim2 on the same kind of database, and scim2-server (in memory), each
loaded with the same users and one big group. Then, at each concurrency, each
server in turn: GET by id, ``userName eq``, PATCH replace ``active``, PATCH add
one member to the big group (and remove it again), POST, DELETE.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import labels
from bench.backends import PG_DATABASE, database, recreate_database
from bench.dataset import OrgData, build_dataset
from bench.loader import add_leavers, loaded_engine
from bench.loadgen import Target
from bench.measurements import Bench, log
from bench.peers.load import PeerData, load_peer, post_leavers
from bench.peers.servers import (
    DJANGO,
    OURS,
    SCIM2,
    Dialect,
    django_argv,
    django_prepare,
    django_project,
    scim2_server_argv,
)
from bench.profiles import Profile
from bench.report import Row
from bench.scenarios import (
    Creates,
    Deletes,
    MemberChurn,
    PatchActive,
    Reads,
    filter_path,
)
from bench.servers import HOST, free_port, running, scim_server_argv

PATCH_ACTIVE = "PATCH replace active"
ADD_MEMBER = labels.ADD_BIG
REMOVE_MEMBER = labels.REMOVE_BIG
OPERATIONS = (
    labels.CREATE,
    PATCH_ACTIVE,
    labels.DELETE,
    labels.GET_BY_ID,
    labels.FILTER_USERNAME,
    ADD_MEMBER,
)
WRITES = (labels.CREATE, PATCH_ACTIVE, labels.DELETE)

PEERS = Profile(
    name="peers",
    org_sizes=(11_000,),  # 10,000 in the big group, the rest free to be added
    big_group_size=10_000,
    small_groups_per_org=20,
    small_group_size=10,
    concurrencies=(1, 8, 32),
    warmup_s=0.4,
    duration_s=2.0,
    max_requests=20_000,
    leavers=1_500,
    ascii_only=True,
)
PEERS_QUICK = Profile(
    name="peers-quick",
    org_sizes=(3_000,),
    big_group_size=2_000,
    small_groups_per_org=20,
    small_group_size=10,
    concurrencies=(1, 8, 32),
    warmup_s=0.2,
    duration_s=0.6,
    max_requests=5_000,
    leavers=300,
    ascii_only=True,
)


@dataclass
class Contender:
    """One server under comparison and its copy of the organization."""

    name: str  # as in the table: "ours", "django-scim2", "scim2-server"
    dialect: Dialect
    target: Target
    data: PeerData
    ours: OrgData | None = None  # ours: leavers come from the bulk loader


def _peer_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIM_", "PEER_"))}
    env.update(extra)
    return env


def _django_database(backend: str, pg_admin_url: str, stack: ExitStack) -> dict[str, str]:
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="scim-bench-django-"))
        stack.callback(shutil.rmtree, folder, True)
        return {"PEER_SQLITE_PATH": str(folder / "django.db")}
    name = f"{PG_DATABASE}_django"
    recreate_database(pg_admin_url, name)
    base = pg_admin_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
    return {"PEER_PG_URL": f"{base}/{name}"}


def measure_at(
    benches: dict[str, Bench], contenders: list[Contender], c: int, size: int, leavers: int
) -> list[Row]:
    """Each operation at concurrency ``c`` on each server in turn, back to back.

    Operation by operation rather than server by server, so that the servers
    measured for one operation see the (shared, noisy) machine in the same state.
    """
    rows: list[Row] = []
    created: dict[str, list[str]] = {}

    def each(label: str, scenario_for: Any) -> None:
        for who in contenders:
            bench = benches[who.name]
            rows.extend(bench.run(who.target, scenario_for(who), c, size, label))

    def by_id(who: Contender) -> Reads:
        base, ids = who.dialect.base, who.data.user_ids
        return Reads(labels.GET_BY_ID, lambda rng: f"{base}/Users/{rng.choice(ids)}")

    def by_name(who: Contender) -> Reads:
        base, names = who.dialect.base, who.data.user_names

        def path(rng: Any) -> str:
            plain = filter_path(f'userName eq "{rng.choice(names)}"')
            return plain.replace("/scim/v2", base, 1)

        return Reads(labels.FILTER_USERNAME, path)

    def patch(who: Contender) -> PatchActive:
        d = who.dialect
        return PatchActive(who.data.user_ids, PATCH_ACTIVE, base=d.base, expect=d.patch_user)

    def churn(who: Contender) -> MemberChurn:
        d, data = who.dialect, who.data
        labels_ = (ADD_MEMBER, REMOVE_MEMBER)
        return MemberChurn(
            data.group_id, data.free_user_ids, c, labels_,
            base=d.base, expect=d.patch_group, remove_by_value=d.remove_by_value,
        )  # fmt: skip

    def creates(who: Contender) -> Creates:
        scenario = Creates(tag=f"{who.name}-post-c{c}", base=who.dialect.base, ascii_only=True)
        created[who.name] = scenario.created
        return scenario

    def deletes(who: Contender) -> Deletes:
        bench, d = benches[who.name], who.dialect
        if who.ours is not None:
            extra = add_leavers(bench.engine, who.ours, leavers, first=size * (c + 1))
        else:
            extra = post_leavers(who.target, d, leavers, f"{who.name}-leavers-c{c}")
        return Deletes(created[who.name] + extra, base=d.base)

    each(labels.GET_BY_ID, by_id)
    each(labels.FILTER_USERNAME, by_name)
    each(PATCH_ACTIVE, patch)
    each(ADD_MEMBER, churn)
    each(labels.CREATE, creates)
    each(labels.DELETE, deletes)
    return rows


def compare_backend(
    backend: str, profile: Profile, key: str, pg_admin_url: str, logs: Path
) -> dict[str, Any]:
    """Every contender on ``backend``: rows per server and the ratio table."""
    from bench.run import server_env

    (org,) = build_dataset(profile)
    token = secrets.token_urlsafe(24)
    rows: list[Row] = []
    with ExitStack() as stack:
        url = stack.enter_context(database(backend, pg_admin_url))
        env = server_env(url, key)
        engine, ours_token = loaded_engine(stack, url, env, org)
        port = free_port()
        stack.enter_context(
            running(f"peers-{backend}-ours", scim_server_argv(port), port, env, logs, "/readyz")
        )
        ours_data = PeerData(
            org.user_ids, org.user_names, org.big_group_id or "", org.free_user_ids
        )
        auth = {"Authorization": f"Bearer {ours_token}"}
        contenders = [Contender("ours", OURS, Target(HOST, port, auth), ours_data, org)]

        peer_auth = {"Authorization": f"Bearer {token}"}
        dj_env = _peer_env({"PEER_TOKEN": token, **_django_database(backend, pg_admin_url, stack)})
        work = django_project(backend)
        django_prepare(work, dj_env)
        dj_port = free_port()
        stack.enter_context(
            running(f"peers-{backend}-django", django_argv(dj_port), dj_port, dj_env, logs,
                    "/healthz", cwd=work)
        )  # fmt: skip
        s2_port = free_port()
        stack.enter_context(
            running(f"peers-{backend}-scim2-server", scim2_server_argv(s2_port, token), s2_port,
                    _peer_env({}), logs, "/v2/ServiceProviderConfig", ready_statuses=(200, 401))
        )  # fmt: skip
        for dialect, p in ((DJANGO, dj_port), (SCIM2, s2_port)):
            target = Target(HOST, p, peer_auth)
            log(f"[{backend}] loading {org.size:,} users into {dialect.name} over HTTP ...")
            data = load_peer(target, dialect, org, profile.big_group_size)
            contenders.append(Contender(dialect.name, dialect, target, data))

        benches = {
            who.name: Bench(f"{backend}/{who.name}", profile, engine, port, port)
            for who in contenders
        }
        for c in profile.concurrencies:
            rows += measure_at(benches, contenders, c, org.size, profile.leavers)
    return {"rows": rows, "ratios": ratios(rows, backend, profile.concurrencies)}


@dataclass
class Ratio:
    operation: str
    concurrency: int
    ours: float
    peers: dict[str, float | str]
    best_peer: str
    ratio: float | None


def _rps(rows: list[Row], server: str, op: str, c: int) -> float | str:
    # A member add and its remove share one rate (the run counts both halves): a
    # server so slow that only a remove finished in the window still has one.
    for name in (op, REMOVE_MEMBER) if op == ADD_MEMBER else (op,):
        for r in rows:
            if r.backend.endswith("/" + server) and r.operation == name and r.concurrency == c:
                if r.note:
                    return r.note
                if r.requests and r.errors == r.requests:
                    return f"cannot ({r.errors} errors)"
                return r.rps
    return "not run"


def ratios(rows: list[Row], backend: str, concurrencies: Any) -> list[Ratio]:
    out = []
    for op in OPERATIONS:
        for c in concurrencies:
            ours = _rps(rows, "ours", op, c)
            peers = {p: _rps(rows, p, op, c) for p in (DJANGO.name, SCIM2.name)}
            numbers = {p: v for p, v in peers.items() if isinstance(v, float) and v > 0}
            best = max(numbers, key=lambda p: numbers[p]) if numbers else ""
            ratio = ours / numbers[best] if best and isinstance(ours, float) and ours > 0 else None
            out.append(Ratio(op, c, ours if isinstance(ours, float) else math.nan, peers, best,
                             ratio))  # fmt: skip
    return out


def _cell(value: float | str) -> str:
    if not isinstance(value, float):
        return value
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def ratio_table(items: list[Ratio]) -> str:
    """Ours ÷ django-scim2 (same database: the target) and ÷ the best peer (a Markdown table)."""
    lines = [
        f"| operation | c | ours req/s | {DJANGO.name} | {SCIM2.name} (memory) "
        f"| ours ÷ {DJANGO.name} | ours ÷ best peer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in items:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        django = r.peers[DJANGO.name]
        same_db = (
            f"**{r.ours / django:.2f}**"
            if isinstance(django, float) and django > 0 and r.ours == r.ours
            else "-"
        )
        lines.append(
            f"| {r.operation} | {r.concurrency} | {_cell(r.ours)} "
            f"| {_cell(django)} | {_cell(r.peers[SCIM2.name])} | {same_db} | {ratio} |"
        )
    notes = [f"- {n}" for d in (DJANGO, SCIM2) for n in d.notes]
    return "\n".join([*lines, "", *notes])


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.peers.compare FILE``: the tables again, from a run's JSON."""
    import json
    import sys

    from bench.report import table

    path = (argv or sys.argv[1:] or [str(Path(__file__).parent.parent / "results/peers.json")])[0]
    doc = json.loads(Path(path).read_text())
    for backend, result in doc["backends"].items():
        nan = float("nan")
        rows = [
            Row(**{**r, "p50_ms": r["p50_ms"] if r["p50_ms"] is not None else nan,
                   "p99_ms": r["p99_ms"] if r["p99_ms"] is not None else nan})
            for r in result["rows"]
        ]  # fmt: skip
        items = ratios(rows, backend, doc["profile"]["concurrencies"])
        print(f"\n## {backend}\n\n{ratio_table(items)}")
        print(f"\n{table(rows, show_backend=True)}")


if __name__ == "__main__":
    main()
