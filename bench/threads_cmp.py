"""Our server under gunicorn in several configurations, alternated on one loaded database.

``python -m bench.threads_cmp --backend sqlite --rounds 2 --seconds 3 1 2 4 4:1000``

Each CONFIG is ``THREADS[:SWITCH_US][+NAME=VALUE...]``: ``SCIM_THREADS``, when given
``SCIM_SWITCH_INTERVAL_US`` (only meaningful on a branch whose gunicorn_conf reads it; the
main line ignores it), and any other server settings, e.g. ``4+SCIM_API_CONCURRENCY=0``
(4 threads, no SCIM gate) against ``4`` (4 threads, the default gate), or
``4+PYTHONPATH=/path/to/a/main/checkout`` (the server's code from another tree: an A/B of
two branches in one run, alternated). One organization
of 11,000 users (as ``--peers`` and ``bench.sqlite_lock``) is loaded once; then, for each
round and each configuration in turn, the server is started (two workers) and GET by id,
PATCH ``active``, POST and DELETE are measured at c = 8 and 32 (``--clients 1,8`` for
others). Prints each cell as it goes (with its p50, the load average and the CPU per
request of the workers and of PostgreSQL's backends) and a table of every round's req/s
with their mean. Takes the machine's benchmark lock. Issue 17, branch ``threads``
(BENCHMARKS.md, "Threads per worker").
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.threads_cmp", description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="per operation and c")
    parser.add_argument(
        "--pg-admin-url",
        help="where to create the database (default: the local server); e.g. through a "
        "proxy that adds a remote database's round trip",
    )
    parser.add_argument(
        "--clients",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[8, 32],
        help="concurrencies, comma-separated (default 8,32)",
    )
    parser.add_argument(
        "--ops",
        type=lambda text: text.split(","),
        default=["get", "patch", "post", "delete"],
        help="operations, comma-separated, from " + ",".join(_LABELS) + " (default: the "
        "first four; delete removes what post created, and the leavers)",
    )
    parser.add_argument("configs", nargs="+", metavar="THREADS[:SWITCH_US][+NAME=VALUE...]")
    args = parser.parse_args(argv)
    if not set(args.ops) <= _LABELS.keys():
        parser.error(f"--ops: one of {', '.join(_LABELS)}")

    from bench.backends import PG_ADMIN_URL, postgres_database, sqlite_database
    from bench.dataset import build_dataset
    from bench.loader import add_leavers, create_tokens, load_orgs, settle
    from bench.loadgen import Target, measure
    from bench.measurements import deep_page
    from bench.peers.compare import PEERS
    from bench.run import one_run_at_a_time, server_env
    from bench.scenarios import SCIM, Creates, Deletes, PatchActive, Reads
    from bench.server_cpu import ServerCpu, per_request_ms, shown
    from bench.servers import HOST, free_port, running, scim_server_argv
    from bench.sqlite_lock import server_cpu_s
    from scim_server.db import make_engine
    from scim_server.migrate import upgrade

    _lock = one_run_at_a_time()
    (org,) = build_dataset(PEERS)
    ids = org.user_ids
    results: dict[tuple[str, str, int], list[float]] = {}
    labels = tuple(_LABELS[op] for op in args.ops)
    n = 0
    with ExitStack() as stack:
        if args.backend == "sqlite":
            database = sqlite_database()
        else:
            database = postgres_database(args.pg_admin_url or PG_ADMIN_URL)
        url = stack.enter_context(database)
        key = secrets.token_hex(32)
        os.environ.update(server_env(url, key, {}))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        upgrade(engine)
        load_orgs(engine, [org])
        settle(engine)
        token = create_tokens(engine, [org])[org.id]
        database_cpu = ServerCpu(url)
        logs = Path(stack.enter_context(_tempdir()))
        for round_ in range(args.rounds):
            for config in args.configs:
                head, *settings = config.split("+")
                threads, _, switch_us = head.partition(":")
                extra = {"SCIM_THREADS": threads, **dict(x.split("=", 1) for x in settings)}
                if switch_us:
                    extra["SCIM_SWITCH_INTERVAL_US"] = switch_us
                env = server_env(url, key, extra)
                port = free_port()
                # The log's name: the configuration, without what a file name cannot hold
                # (a PYTHONPATH=... setting runs another tree's code: an A/B with main).
                name = "threads-" + "".join(ch if ch.isalnum() or ch in "+=:-_." else "_"
                                            for ch in config)  # fmt: skip
                with running(name, scim_server_argv(port), port, env, logs, "/readyz"):
                    target = Target(HOST, port, {"Authorization": f"Bearer {token}"})
                    for c in args.clients:
                        n += 1
                        creates = Creates(tag=f"threads{n}", ascii_only=True)
                        leavers = add_leavers(engine, org, 1500, first=org.size * (n + 1))
                        scenarios: dict[str, Any] = {
                            "get": Reads(
                                _LABELS["get"], lambda rng: f"{SCIM}/Users/{rng.choice(ids)}"
                            ),
                            "patch": PatchActive(ids, "PATCH replace active"),
                            "post": creates,
                            "delete": None,  # the users just created, and the leavers
                            "deep-page": Reads("deep page", deep_page(org.size)),
                        }
                        for op, label in zip(args.ops, labels, strict=True):
                            scenario = scenarios[op]
                            if scenario is None:
                                scenario = Deletes(creates.created + leavers)
                            cpu_before = server_cpu_s(port), database_cpu.seconds()
                            out = measure(target, scenario, c, 0.4, args.seconds, 20_000)
                            ok = sum(1 for s in out.samples if s.ok)
                            times = sorted(s.seconds for s in out.samples if s.ok)
                            p50 = times[len(times) // 2] * 1000 if times else float("nan")
                            rate = ok / out.elapsed_s
                            results.setdefault((config, label, c), []).append(rate)
                            # CPU per request (warm-up included, 1-3 %): steadier than req/s
                            # on a shared machine. The workers', then PostgreSQL's backends'.
                            ours = (server_cpu_s(port) - cpu_before[0]) * 1000 / max(ok, 1)
                            pg = per_request_ms(cpu_before[1], database_cpu.seconds(), max(ok, 1))
                            print(
                                f"{args.backend} round {round_} {config:>8} c={c:<2} {label:<13} "
                                f"{rate:7.0f} req/s  p50 {p50:.2f} ms  "
                                f"CPU ms/req {ours:.2f} / {shown(pg)}  "
                                f"failures={len(out.failures)} load={os.getloadavg()[0]:.2f}",
                                flush=True,
                            )
    print(f"\n## {args.backend}: req/s in each round (mean)")
    print("| operation | c | " + " | ".join(args.configs) + " |")
    for label in labels:
        for c in args.clients:
            cells = []
            for config in args.configs:
                rates = results[(config, label, c)]
                mean = sum(rates) / len(rates)
                cells.append(" / ".join(f"{r:.0f}" for r in rates) + f" ({mean:.0f})")
            print(f"| {label} | {c} | " + " | ".join(cells) + " |")
    return 0


# The operations --ops may name, and their labels in the printed tables.
_LABELS = {
    "get": "GET by id",
    "patch": "PATCH active",
    "post": "POST",
    "delete": "DELETE",
    "deep-page": "deep page",
}


def _tempdir() -> Any:
    import tempfile

    return tempfile.TemporaryDirectory(prefix="threads-cmp-")


if __name__ == "__main__":
    sys.exit(main())
