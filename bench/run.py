"""Run the whole benchmark: ``.venv/bin/python -m bench [--quick] [--backend NAME ...]``.

For each backend: migrate an empty database, check the loader against the
services, bulk-load the organizations, start the SCIM server and the baseline
under gunicorn, check that each request answers what it should, measure every
operation at every concurrency next to the baseline, measure growth with the
organization's size, and check the targets. Prints Markdown tables and writes
``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.backends import BACKENDS, PG_ADMIN_URL, database
from bench.conformance import check_loader_matches_services
from bench.console_pages import measure_console
from bench.dataset import OrgData, build_dataset
from bench.loader import create_tokens, load_orgs, settle
from bench.machine import machine_info
from bench.measurements import Bench, log
from bench.profiles import FULL, QUICK, Profile
from bench.report import (
    Row,
    check_targets,
    growth_table,
    table,
    targets_table,
    write_json,
)
from bench.sanity import check_answers
from bench.servers import baseline_argv, free_port, running, scim_server_argv
from bench.signin import measure_sign_ins, summary_lines
from scim_server.audit.signing import new_private_pem
from scim_server.db import make_engine
from scim_server.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results"
MACHINE_LOCK = Path(tempfile.gettempdir()) / "scim-bench.lock"
BULK = ("rules-apply", "sync", "tenants")  # issue 17's scenarios (bench.bulk)
# Above this 1-minute load average (on 2 cores) something else is running.
BUSY_LOADAVG = 1.0


# The Ed25519 key of audit checkpoints, required outside development; one per bench run.
AUDIT_SIGNING_KEY = new_private_pem().decode()


def server_env(database_url: str, key: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment both servers run with (and this process, for the services).

    ``extra`` (``--server-env``) is applied last: another server configuration
    measured with the same run, e.g. ``SCIM_THREADS=1 SCIM_ARGON2_CONCURRENCY=0``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_")}
    env.update(
        SCIM_DATABASE_URL=database_url,
        SCIM_ENV="production",
        # Required in production (the root of mailed links); every server here is local.
        SCIM_BASE_URL="http://127.0.0.1",
        SCIM_SECRET_KEY=key,
        SCIM_AUDIT_KEY=key,
        SCIM_AUDIT_SIGNING_KEY=AUDIT_SIGNING_KEY,
        SCIM_WORKERS="2",  # SCIM_THREADS and SCIM_ARGON2_CONCURRENCY: the defaults
        SCIM_RATE_LIMIT_PER_MINUTE="0",
        # Every sign-in comes from 127.0.0.1: the per-address throttle would refuse
        # all but 30 a minute (the per-account lockout stays on).
        SCIM_SIGNIN_ATTEMPTS_PER_MINUTE="0",
    )
    env.update(extra or {})
    return env


def prepare_database(url: str, env: dict[str, str], orgs: list[OrgData]) -> dict[str, Any]:
    """Schema, conformance check, bulk load; returns timings and a token per org."""
    os.environ.update(env)

    engine = make_engine(url)
    try:
        upgrade(engine)
        check_loader_matches_services(engine)
        load_s = load_orgs(engine, orgs)
        started = time.perf_counter()
        settle(engine)
        settle_s = time.perf_counter() - started
        tokens = create_tokens(engine, orgs)
    finally:
        engine.dispose()
    return {"load_s": round(load_s, 1), "settle_s": round(settle_s, 1), "tokens": tokens}


def bench_backend(
    backend: str,
    profile: Profile,
    orgs: list[OrgData],
    key: str,
    pg_admin_url: str,
    only: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    if load_before > BUSY_LOADAVG:
        log(f"[{backend}] warning: load average {load_before:.2f} before starting: figures noisy")
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with database(backend, pg_admin_url) as url:
        env = server_env(url, key, extra_env)
        log(f"[{backend}] loading {sum(o.size for o in orgs):,} users ...")
        prepared = prepare_database(url, env, orgs)
        tokens = prepared.pop("tokens")
        log(f"[{backend}] loaded in {prepared['load_s']} s; starting servers")
        scim_port, baseline_port = free_port(), free_port()
        scim_argv, base_argv = scim_server_argv(scim_port), baseline_argv(baseline_port)
        with (
            running(f"{backend}-scim", scim_argv, scim_port, env, logs, "/readyz"),
            running(f"{backend}-baseline", base_argv, baseline_port, env, logs, "/healthz"),
        ):
            largest = max(orgs, key=lambda o: o.size)
            engine = make_engine(url)
            try:
                bench = Bench(backend, profile, engine, scim_port, baseline_port)
                check_answers(bench.scim(tokens[largest.id]), bench.baseline, largest)
                rows: list[Row] = []
                growth: list[Row] = []
                sign_in: dict[str, Any] | None = None
                console: list[Row] = []
                if only is None:
                    rows = bench.matrix(largest, tokens[largest.id])
                    growth = bench.growth(orgs, tokens)
                if only in (None, "signin"):
                    sign_in = measure_sign_ins(bench, largest, tokens[largest.id])
                if only in (None, "console"):
                    console = measure_console(bench, largest, tokens[largest.id])
            finally:
                engine.dispose()
    targets = []
    if only is None:
        targets = check_targets(backend, rows, growth, profile.concurrencies, largest.size)
    machine = {
        "loadavg_before": round(load_before, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    return {
        "database": prepared,
        "machine": machine,
        "rows": rows,
        "growth": growth,
        "targets": targets,
        "sign_in": sign_in,
        "console": console,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small data set, short runs")
    parser.add_argument(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="backend to run (repeatable; default: all)",
    )
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="where to create scim_bench")
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON results (default: bench/results/latest.json, latest-quick.json with --quick)",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="compare with django-scim2 and scim2-server instead (installed on first use)",
    )
    parser.add_argument(
        "--only",
        choices=("signin", "console", *BULK),
        help=(
            "run only this scenario (signin: password sign-ins and SCIM reads beside them; "
            "console: the users dashboard's pages at the largest organization; "
            "rules-apply: `scim-server rules apply` on the 100k organization, twice; "
            "sync: an Entra-style initial sync on PostgreSQL; tenants: 20 paced tenants "
            "at once on PostgreSQL)"
        ),
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        type=_server_setting,
        metavar="SCIM_NAME=VALUE",
        help="a setting of the measured servers (repeatable), e.g. SCIM_THREADS=1",
    )
    parser.add_argument(
        "--sync-users",
        type=int,
        default=100_000,
        help="users in --only sync (default 100,000)",
    )
    parser.add_argument(
        "--tenant-seconds",
        type=float,
        default=60.0,
        help="how long --only tenants runs (default 60 s)",
    )
    parser.add_argument(
        "--scale",
        choices=("1m",),
        help=(
            "1m: userName and e-mail lookups in an organization of 1,000,000 users next to "
            "one of 1,000, on PostgreSQL; the 1M database (SCIM_BENCH_PG_DATABASE + _1m) is "
            "loaded once and kept for the next run (issue 17)"
        ),
    )
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="with --scale: load the kept database again even if it is complete",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target is not met"
    )
    return parser.parse_args(argv)


def _server_setting(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition("=")
    if not sep or not name.startswith("SCIM_"):
        raise argparse.ArgumentTypeError(f"expected SCIM_NAME=VALUE, got {raw!r}")
    return name, value


def one_run_at_a_time() -> Any:
    """An exclusive lock on ``/tmp/scim-bench.lock``, waited for: runs share the ``scim_bench``
    database, the ports and the cores, and a second run would drop the first one's database
    under it (and measure its load). A run started beside another queues behind it."""
    import fcntl

    RESULTS.mkdir(parents=True, exist_ok=True)
    # Machine-wide, not per checkout: runs from two worktrees share the database and cores.
    handle = MACHINE_LOCK.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("another benchmark run is in progress on this machine: waiting for it to finish")
        fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _lock = one_run_at_a_time()  # held until the process exits
    if args.peers:
        return run_peers(args)
    if args.only in BULK:
        return run_bulk(args)
    if args.scale:
        return run_scale(args)
    profile = QUICK if args.quick else FULL
    # A smoke run must not overwrite the full run's figures.
    name = f"latest-{args.only}" if args.only else "latest"
    output = args.output or RESULTS / (f"{name}-quick.json" if args.quick else f"{name}.json")
    started = time.perf_counter()
    info = machine_info()
    log(f"building the data set ({profile.name}: {', '.join(map(str, profile.org_sizes))} users)")
    # The data set is millions of objects that live to the end: keep the cyclic
    # GC from scanning them, in build and (frozen) during the measurements.
    gc.disable()
    orgs = build_dataset(profile)
    gc.freeze()
    gc.enable()
    key = secrets.token_hex(32)
    results: dict[str, Any] = {}
    for backend in args.backend or list(BACKENDS):
        results[backend] = bench_backend(
            backend, profile, orgs, key, args.pg_admin_url, args.only, dict(args.server_env)
        )
    info.update(machine_info(final=True))
    elapsed = time.perf_counter() - started
    doc = {
        "profile": asdict(profile),
        "server_env": dict(args.server_env),
        "machine": info,
        "elapsed_s": round(elapsed, 1),
        "backends": results,
    }
    write_json(output, doc)
    print_report(doc)
    log(f"done in {elapsed:.0f} s; JSON in {output}")
    unmet = [t for r in results.values() for t in r["targets"] if not t.met]
    return 1 if args.strict and unmet else 0


def run_bulk(args: argparse.Namespace) -> int:
    """``--only rules-apply|sync|tenants`` (issue 17): each alone, its own data."""
    from bench import bulk

    name = f"latest-{args.only}" + ("-quick" if args.quick else "")
    output = args.output or RESULTS / f"{name}.json"
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    info = machine_info()
    key = secrets.token_hex(32)
    results: dict[str, Any] = {}
    if args.only == "rules-apply":
        profile = bulk.rules_apply_profile(args.quick)
        log(f"building the {profile.largest:,}-user organization")
        gc.disable()
        (org,) = build_dataset(profile)
        gc.freeze()
        gc.enable()
        for backend in args.backend or list(BACKENDS):
            results[backend] = bulk.run_rules_apply(backend, org, key, args.pg_admin_url, logs)
    elif args.only == "sync":
        users = min(args.sync_users, 2_000) if args.quick else args.sync_users
        results["postgresql"] = bulk.run_sync(users, key, args.pg_admin_url, logs)
    else:
        seconds = min(args.tenant_seconds, 10.0) if args.quick else args.tenant_seconds
        results["postgresql"] = bulk.run_tenants(key, args.pg_admin_url, logs, seconds=seconds)
    info.update(machine_info(final=True))
    elapsed = time.perf_counter() - started
    write_json(output, {"only": args.only, "machine": info,
                        "elapsed_s": round(elapsed, 1), "backends": results})  # fmt: skip
    print(f"\n## {args.only}\n\n{bulk.report(args.only, results)}\n")
    log(f"done in {elapsed:.0f} s; JSON in {output}")
    return 0


def run_scale(args: argparse.Namespace) -> int:
    """``--scale 1m`` (issue 17): lookups at 1M users next to 1k, on PostgreSQL only."""
    from bench import scale

    if args.backend and "postgresql" not in args.backend:
        raise SystemExit("--scale 1m runs on PostgreSQL only")
    output = args.output or RESULTS / "latest-scale-1m.json"
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    info = machine_info()
    key = secrets.token_hex(32)
    result = scale.run_scale(key, args.pg_admin_url, logs, args.rebuild, dict(args.server_env))
    info.update(machine_info(final=True))
    elapsed = time.perf_counter() - started
    write_json(output, {"scale": args.scale, "machine": info, "elapsed_s": round(elapsed, 1),
                        "backends": {"postgresql": result}})  # fmt: skip
    print(f"\n## --scale 1m\n\n{scale.report(result)}\n")
    log(f"done in {elapsed:.0f} s; JSON in {output}")
    unmet = [r for r in result["ratios"] if not r["met"]]
    return 1 if args.strict and unmet else 0


def run_peers(args: argparse.Namespace) -> int:
    """``--peers``: ours next to the peers on each backend; ours ÷ best peer per operation."""
    from bench.peers.compare import PEERS, PEERS_QUICK, compare_backend, ratio_table

    profile = PEERS_QUICK if args.quick else PEERS
    name = "peers-quick.json" if args.quick else "peers.json"
    output = args.output or RESULTS / name
    started = time.perf_counter()
    info = machine_info()
    key = secrets.token_hex(32)
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for backend in args.backend or list(BACKENDS):
        load_before = os.getloadavg()[0]
        results[backend] = compare_backend(backend, profile, key, args.pg_admin_url, logs)
        results[backend]["loadavg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    info.update(machine_info(final=True))
    elapsed = time.perf_counter() - started
    write_json(output, {"profile": asdict(profile), "machine": info,
                        "elapsed_s": round(elapsed, 1), "backends": results})  # fmt: skip
    for backend, result in results.items():
        before, after = result["loadavg"]
        print(f"\n## {backend}: ours and the peers (load average {before} before, {after} after)")
        print(f"\n{ratio_table(result['ratios'])}\n\n{table(result['rows'], show_backend=True)}\n")
    log(f"done in {elapsed:.0f} s; JSON in {output}")
    return 0


def print_report(doc: dict[str, Any]) -> None:
    for backend, result in doc["backends"].items():
        m = result["machine"]
        print(
            f"\n## {backend}\n\nload {result['database']['load_s']} s; measured in "
            f"{m['elapsed_s']} s; load average {m['loadavg_before']} before, "
            f"{m['loadavg_after']} after\n"
        )
        if result["rows"]:
            print(f"{table(result['rows'])}\n")
            print(f"Growth (c=1):\n\n{growth_table(result['growth'])}\n")
            print(f"Targets:\n\n{targets_table(result['targets'])}\n")
        sign_in = result["sign_in"]
        if sign_in:
            print(f"Sign-in (issue 12):\n\n{table(sign_in['rows'])}\n")
            print(summary_lines(sign_in["summary"]))
        if result["console"]:
            print(f"\nConsole users dashboard (issue 13):\n\n{table(result['console'])}\n")


if __name__ == "__main__":
    sys.exit(main())
