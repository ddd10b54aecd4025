"""``--scale 1m`` (issue 17): lookups in an organization of 1,000,000 users.

An IdP finds each user by ``userName eq`` (and by e-mail) before it writes: those
lookups must not slow down with the size of the organization. The target is
p99 at 1M users within 2 x of p99 at 1k users, both organizations in one
database, measured in one run against the server the rest of the bench runs
(gunicorn, ``scim-server serve --production``).

Loading a million users through the API would take hours, and even the
bench's usual loader (``bench.loader``) builds every row in memory first. Here
the rows are made by the same functions (``bench.dataset.people``: the
services' own document, keys and index rows), ten thousand users at a time,
and streamed into PostgreSQL with ``COPY``, with the secondary indexes and the
search index's primary key built once at the end. The database is kept
(``<SCIM_BENCH_PG_DATABASE>_1m``, ``scim_bench_1m`` by default) with a marker
in its comment, and reused by the next run when the marker says it is complete
and of the current schema; ``--rebuild`` loads it again, and
``DROP DATABASE scim_bench_1m`` frees the disk.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine, event, text
from sqlalchemy.engine import Connection, Engine

from bench.backends import PG_DATABASE, recreate_database
from bench.conformance import check_loader_matches_services
from bench.dataset import EPOCH, OrgData, new_id, people
from bench.loader import complete_rows, create_tokens, insert_tables, recount, secondary_indexes
from bench.loadgen import Target
from bench.measurements import Bench, log
from bench.profiles import Profile
from bench.report import Row
from bench.sanity import get_json
from bench.scenarios import Reads, filter_path
from bench.servers import free_port, running, scim_server_argv
from scim_server import bulk_rows
from scim_server.db import Base, make_engine
from scim_server.migrate import alembic_config, current_revision, upgrade

LARGE, SMALL = 1_000_000, 1_000
CHUNK = 10_000  # users built and streamed at a time
# What the marker must say for a kept database to be reused; bump it when the rows change.
DATASET_VERSION = 1
MISS_SHARE = 0.1  # lookups of users that do not exist (an IdP's first sync is all misses)
SAMPLE = 20_000  # existing users the lookups draw from, at random
CONCURRENCIES = (1, 8)
TARGET_RATIO = 2.0
# Each run long enough for a p99 from hundreds of samples at c=1.
PROFILE = Profile(
    name="scale",
    org_sizes=(SMALL, LARGE),
    big_group_size=0,
    small_groups_per_org=0,
    small_group_size=0,
    concurrencies=CONCURRENCIES,
    warmup_s=0.5,
    duration_s=5.0,
    max_requests=20_000,
    leavers=0,
)

# The filter forms measured, with {v} for the looked-up value. Entra ID sends the
# first and the last; the middle two are the value-path forms RFC 7644 allows.
FORMS: dict[str, str] = {
    'userName eq "..."': 'userName eq "{v}"',
    'emails[value eq "..."]': 'emails[value eq "{v}"]',
    'emails[type eq "work" and value eq "..."]': 'emails[type eq "work" and value eq "{v}"]',
    'emails[type eq "work"].value eq "..."': 'emails[type eq "work"].value eq "{v}"',
}


def scale_database() -> str:
    """The kept database: beside the bench's own, which every other run drops."""
    return f"{PG_DATABASE}_1m"


# -- the marker ------------------------------------------------------------------------


def marker_text(revision: str, orgs: dict[str, str], load_s: float, size_bytes: int) -> str:
    """The database comment written once the load is complete."""
    return json.dumps(
        {
            "dataset": DATASET_VERSION,
            "revision": revision,
            "orgs": orgs,  # users (as a string) -> organization id
            "load_s": round(load_s, 1),
            "bytes": size_bytes,
        },
        sort_keys=True,
    )


def read_marker(comment: str | None, revision: str) -> dict[str, Any] | None:
    """The marker if it says the load is complete, of this data set and this schema."""
    try:
        marker = json.loads(comment or "")
    except ValueError:
        return None
    if not isinstance(marker, dict):
        return None
    orgs = marker.get("orgs")
    if (
        marker.get("dataset") != DATASET_VERSION
        or marker.get("revision") != revision
        or not isinstance(orgs, dict)
        or set(orgs) != {str(SMALL), str(LARGE)}
    ):
        return None
    return marker


# -- the load --------------------------------------------------------------------------


def _copy(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY ``rows`` into ``table``: the columns they name, server defaults for the rest."""
    if not rows:
        return
    rows = complete_rows(table, rows)
    bulk_rows.copy_rows(conn, table, rows, [c.name for c in table.columns if c.name in rows[0]])


def _organization(name: str, seed: int) -> dict[str, Any]:
    return {"id": new_id(random.Random(seed)), "name": name, "created_at": EPOCH}


def _stream_users(conn: Connection, org_id: str, size: int, seed: int) -> None:
    """``size`` users of ``org_id``, ``CHUNK`` at a time, as ``bench.dataset`` builds them."""
    tables = Base.metadata.tables
    rng = random.Random(seed)
    started = time.perf_counter()
    for first in range(0, size, CHUNK):
        built, _bodies = people(org_id, rng, range(first, min(first + CHUNK, size)))
        for name in ("contacts", "users", "attribute_values"):
            _copy(conn, tables[name], built[name])
        done = min(first + CHUNK, size)
        if done % 100_000 == 0:
            log(f"  {done:,} users in {time.perf_counter() - started:.0f} s")


def _primary_key(conn: Connection, table: str) -> tuple[str, str]:
    """(name, definition) of ``table``'s primary key constraint."""
    row = conn.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype = 'p'"
        ),
        {"t": table},
    ).one()
    return str(row[0]), str(row[1])


def load(engine: Engine) -> dict[str, str]:
    """Both organizations into an empty, migrated database; users (as a string) -> org id.

    Foreign keys are not checked row by row (``session_replication_role``):
    every row comes from the same builder the conformance check verifies, and
    fifteen million trigger calls would double the load.
    """
    orgs = {
        str(SMALL): _organization("scale-1k", 1701),
        str(LARGE): _organization("scale-1m", 1702),
    }
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        indexes = secondary_indexes(conn)
        for name, _ddl in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        # The search index's primary key too: thirteen million random keys inserted one
        # by one into a B-tree larger than shared_buffers is most of the load otherwise.
        pk_name, pk_def = _primary_key(conn, "attribute_values")
        conn.execute(text(f'ALTER TABLE attribute_values DROP CONSTRAINT "{pk_name}"'))
        insert_tables(conn, {"organizations": list(orgs.values())})
        for users, seed in ((SMALL, 1711), (LARGE, 1712)):
            log(f"  organization of {users:,} users ...")
            _stream_users(conn, orgs[str(users)]["id"], users, seed)
            recount(conn, orgs[str(users)]["id"])
        log("  building the indexes ...")
        conn.execute(text(f'ALTER TABLE attribute_values ADD CONSTRAINT "{pk_name}" {pk_def}'))
        for _name, ddl in indexes:
            conn.execute(text(ddl))
    return {users: org["id"] for users, org in orgs.items()}


def _admin(admin_url: str) -> Engine:
    return create_engine(admin_url, isolation_level="AUTOCOMMIT")


def _comment(admin_url: str, name: str) -> tuple[bool, str | None]:
    """Whether database ``name`` exists, and its comment."""
    admin = _admin(admin_url)
    try:
        with admin.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname = :n"
                ),
                {"n": name},
            ).one_or_none()
    finally:
        admin.dispose()
    return row is not None, (row[0] if row else None)


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    return str(head)


def ensure_loaded(admin_url: str, env: dict[str, str], rebuild: bool) -> dict[str, Any]:
    """The kept database, loaded now unless a complete one is there; its URL and marker."""
    name = scale_database()
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    exists, comment = _comment(admin_url, name)
    if exists and not rebuild:
        engine = make_engine(url)
        try:
            marker = read_marker(comment, head_revision(engine))
            if marker is not None and current_revision(engine) == marker["revision"]:
                log(f"[postgresql] reusing {name} (loaded in {marker['load_s']} s)")
                return {"url": url, "reused": True, **marker}
        finally:
            engine.dispose()
        log(f"[postgresql] {name} is incomplete or of another schema: loading it again")
    recreate_database(admin_url, name)
    os.environ.update(env)
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        upgrade(engine)
        check_loader_matches_services(engine)
        log(f"[postgresql] loading {LARGE + SMALL:,} users into {name} ...")
        orgs = load(engine)
        log("[postgresql] VACUUM ANALYZE ...")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            conn.execute(text("CHECKPOINT"))
            size = int(conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
        load_s = time.perf_counter() - started
        revision = current_revision(engine) or ""
    finally:
        engine.dispose()
    marker = marker_text(revision, orgs, load_s, size)
    admin = _admin(admin_url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f"COMMENT ON DATABASE {name} IS :m".replace(":m", _quote(marker))))
    finally:
        admin.dispose()
    log(f"[postgresql] loaded in {load_s:.0f} s, {size / 2**30:.1f} GiB")
    return {"url": url, "reused": False, **json.loads(marker)}


def _quote(value: str) -> str:
    """A SQL string literal (COMMENT takes no bind parameter)."""
    return "'" + value.replace("'", "''") + "'"


# -- lookups -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """Existing users' names and work e-mails to look up, of one organization."""

    user_names: list[str]
    emails: list[str]


def sample_users(engine: Engine, org_id: str, size: int) -> Sample:
    """Up to ``SAMPLE`` users drawn at random (a fixed seed) from the organization."""
    percent = min(100.0, 100.0 * SAMPLE * 1.2 / size)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT user_name, data->'emails'->0->>'value' FROM users "
                f"TABLESAMPLE BERNOULLI ({percent:.4f}) REPEATABLE (17) "
                "WHERE org_id = :o LIMIT :n"
            ),
            {"o": org_id, "n": SAMPLE},
        ).all()
    return Sample([r[0] for r in rows], [r[1] for r in rows])


def miss_value(rng: random.Random, kind: str) -> str:
    """A value no loaded user has (the loaded ones end in @example.com)."""
    return f"nobody.{rng.randrange(10**9)}@{kind}.missing.example.org"


def lookup_path(
    form: str, sample: Sample, miss_share: float = MISS_SHARE
) -> Callable[[random.Random], str]:
    """A path maker: ``form`` (a ``FORMS`` value) of a random sampled user, or a miss."""
    template = FORMS[form]
    values = sample.user_names if form.startswith("userName") else sample.emails

    def make(rng: random.Random) -> str:
        if rng.random() < miss_share:
            value = miss_value(rng, "name" if values is sample.user_names else "mail")
        else:
            value = rng.choice(values)
        return filter_path(template.format(v=value))

    return make


# -- checks: right answers, and the plans -------------------------------------------------


def check_answers(target: Target, sample: Sample) -> None:
    """Each form finds the sampled user once, and a miss finds nothing."""
    name, email = sample.user_names[0], sample.emails[0]
    for form, template in FORMS.items():
        value = name if form.startswith("userName") else email
        doc = get_json(target, filter_path(template.format(v=value)))
        found = [r.get("userName") for r in doc.get("Resources", [])]
        if doc.get("totalResults") != 1 or found != [name]:
            raise RuntimeError(f"{form} of {value!r} answered {json.dumps(doc)[:400]}")
        doc = get_json(target, filter_path(template.format(v=miss_value(random.Random(0), "x"))))
        if doc.get("totalResults") != 0:
            raise RuntimeError(f"{form} of a missing user answered {json.dumps(doc)[:400]}")


def explain_lookups(url: str, env: dict[str, str], token: str, sample: Sample) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the statements the server runs for each form (in-process app).

    The statements are captured as the app sends them, so the plans are of the
    real queries, not of a hand-written copy.
    """
    from scim_server import create_app

    os.environ.update(env)
    app = create_app({"DATABASE_URL": url})
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, params))

    plans: dict[str, Any] = {}
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    engine = make_engine(url)
    try:
        for form, template in FORMS.items():
            value = sample.user_names[1] if form.startswith("userName") else sample.emails[1]
            captured.clear()
            event.listen(Engine, "before_cursor_execute", capture)
            try:
                resp = client.get(filter_path(template.format(v=value)), headers=headers)
            finally:
                event.remove(Engine, "before_cursor_execute", capture)
            if resp.status_code != 200:
                raise RuntimeError(f"{form}: {resp.status_code} {resp.data[:300]!r}")
            plans[form] = [_explain(engine, s, p) for s, p in captured if _touches_users(s)]
    finally:
        engine.dispose()
    return plans


def _touches_users(statement: str) -> bool:
    lowered = statement.lower()
    return "from users" in lowered or "attribute_values" in lowered


def _explain(engine: Engine, statement: str, params: Any) -> dict[str, Any]:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
        plan = [str(r[0]) for r in cursor.fetchall()]
        raw.rollback()
    finally:
        raw.close()
    return {"statement": " ".join(statement.split())[:600], "plan": plan}


def seq_scans(plans: dict[str, Any]) -> list[str]:
    """The forms whose plan reads a big table from end to end (a missing index)."""
    bad = []
    for form, statements in plans.items():
        for s in statements:
            if any("Seq Scan on users" in line or "Seq Scan on attribute_values" in line
                   for line in s["plan"]):  # fmt: skip
                bad.append(form)
                break
    return bad


# -- the run -------------------------------------------------------------------------------


def ratios(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """p99 (and p50) at 1M over 1k, per form and concurrency, with the 2 x target."""
    by_key = {(r.operation, r.concurrency, r.org_size): r for r in rows}
    out = []
    order = list(FORMS)

    def rank(key: tuple[str, int, int]) -> tuple[int, str, int]:
        form, c, _size = key
        return (order.index(form) if form in order else len(order), form, c)

    for (form, c, size), large in sorted(by_key.items(), key=lambda kv: rank(kv[0])):
        if size != LARGE:
            continue
        small = by_key.get((form, c, SMALL))
        if small is None:
            continue
        p99 = large.p99_ms / small.p99_ms if small.p99_ms > 0 else math.nan
        p50 = large.p50_ms / small.p50_ms if small.p50_ms > 0 else math.nan
        out.append(
            {
                "operation": form,
                "concurrency": c,
                "p50_1k_ms": small.p50_ms,
                "p99_1k_ms": small.p99_ms,
                "p50_1m_ms": large.p50_ms,
                "p99_1m_ms": large.p99_ms,
                "p50_ratio": round(p50, 2),
                "p99_ratio": round(p99, 2),
                "met": p99 <= TARGET_RATIO,
                "errors": small.errors + large.errors,
            }
        )
    return out


def measure(
    bench: Bench, tokens: dict[str, str], orgs: dict[str, str], samples: dict[str, Sample]
) -> list[Row]:
    """Each form at each concurrency, 1k then 1M back to back (same machine state)."""
    rows: list[Row] = []
    for form in FORMS:
        for c in CONCURRENCIES:
            for users in (SMALL, LARGE):
                org_id = orgs[str(users)]
                scenario = Reads(form, lookup_path(form, samples[org_id]), seed=users + c)
                rows += bench.run(bench.scim(tokens[org_id]), scenario, c, users, form)
    return rows


def run_scale(
    key: str, pg_admin_url: str, logs: Path, rebuild: bool, extra_env: dict[str, str]
) -> dict[str, Any]:
    """Load (or reuse) the 1M database, check, explain, measure; the results."""
    from bench.run import server_env

    started, load_before = time.perf_counter(), os.getloadavg()[0]
    name = scale_database()
    url = f"{pg_admin_url.rsplit('/', 1)[0]}/{name}"
    env = server_env(url, key, extra_env)
    loaded = ensure_loaded(pg_admin_url, env, rebuild)
    orgs: dict[str, str] = loaded["orgs"]
    os.environ.update(env)
    engine = make_engine(url)
    try:
        org_rows = [OrgData(id=o, name=users, size=int(users)) for users, o in orgs.items()]
        tokens = create_tokens(engine, org_rows)
        samples = {o: sample_users(engine, o, int(users)) for users, o in orgs.items()}
        with engine.connect() as conn:
            counts = {
                users: int(
                    conn.execute(
                        text("SELECT count(*) FROM users WHERE org_id = :o"), {"o": org_id}
                    ).scalar_one()
                )
                for users, org_id in orgs.items()
            }
        if counts != {str(SMALL): SMALL, str(LARGE): LARGE}:
            raise RuntimeError(f"{name} holds {counts} users: run again with --rebuild")
        plans = {
            users: explain_lookups(url, env, tokens[org_id], samples[org_id])
            for users, org_id in orgs.items()
        }
        port = free_port()
        measure_before = os.getloadavg()[0]
        with running("postgresql-scale-1m", scim_server_argv(port), port, env, logs, "/readyz"):
            bench = Bench("postgresql", PROFILE, engine, port, port)
            for org_id in orgs.values():
                check_answers(bench.scim(tokens[org_id]), samples[org_id])
            rows = measure(bench, tokens, orgs, samples)
        measure_after = os.getloadavg()[0]
    finally:
        engine.dispose()
    return {
        "database": name,
        "reused": loaded["reused"],
        "load_s": loaded["load_s"],
        "bytes": loaded["bytes"],
        "users": counts,
        "samples": {users: len(samples[o].user_names) for users, o in orgs.items()},
        "miss_share": MISS_SHARE,
        "plans": plans,
        "seq_scans": {users: seq_scans(p) for users, p in plans.items()},
        "rows": rows,
        "ratios": ratios(rows),
        "loadavg": [round(load_before, 2), round(measure_before, 2), round(measure_after, 2)],
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def report(result: dict[str, Any]) -> str:
    """Markdown for BENCHMARKS.md."""
    gib = result["bytes"] / 2**30
    how = "reused" if result["reused"] else "loaded now"
    lines = [
        f"Database `{result['database']}` ({how}): users {result['users']}, load "
        f"{result['load_s']} s, {gib:.1f} GiB; load average {result['loadavg'][1]} before the "
        f"measurements, {result['loadavg'][2]} after; {int(result['miss_share'] * 100)} % misses.",
        "",
        "| filter | c | p50 1k | p99 1k | p50 1M | p99 1M | p99 1M ÷ 1k | target ≤ 2 x | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in result["ratios"]:
        lines.append(
            f"| `{r['operation']}` | {r['concurrency']} | {r['p50_1k_ms']:.1f} | "
            f"{r['p99_1k_ms']:.1f} | {r['p50_1m_ms']:.1f} | {r['p99_1m_ms']:.1f} | "
            f"**{r['p99_ratio']}** | {'met' if r['met'] else 'NOT met'} | {r['errors']} |"
        )
    for users, forms in result["seq_scans"].items():
        if forms:
            lines.append(f"\nSequential scan at {users} users: {', '.join(forms)}")
    return "\n".join(lines)
