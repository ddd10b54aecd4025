"""Where a SQLite write's time goes under concurrency: ``python -m bench.sqlite_lock``.

Our server under gunicorn (as ``--peers`` runs it: two workers, 11,000 users on a
fresh SQLite file), POST, PATCH ``active`` and DELETE at c = 8 and 32. The server
runs with a ``sitecustomize`` that notes every write transaction's times (from
``BEGIN IMMEDIATE`` asked, to the lock got, to COMMIT done, on the machine-wide
monotonic clock, with the thread's CPU inside the lock and the statements in it),
so the run reports, next to req/s:

- wait: how long a writer waited for the lock;
- hold: how long it held it (and how much of that was its own CPU);
- idle: of the time writers were waiting, how much the lock was free (a waiter
  asleep in SQLite's busy handler while nobody holds it);
- busy: the share of the run's wall time the lock was held.

Takes the machine's benchmark lock (``/tmp/scim-bench.lock``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

SITECUSTOMIZE = """
import os, threading, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.engine import base as _base

_fd = os.open(os.environ["SQLITE_LOCK_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
_t = threading.local()


def _before(conn, cursor, statement, params, context, many):
    if getattr(_t, "t1", None) is not None:
        _t.n += 1


def _after(conn, cursor, statement, params, context, many):
    if statement.startswith("BEGIN IMMEDIATE"):
        _t.t1 = time.perf_counter()
        _t.c1 = time.thread_time()
        _t.n = 0


def _start_end():
    if getattr(_t, "t1", None) is not None:
        _t.tc = time.perf_counter()
        _t.cpu = time.thread_time() - _t.c1


def _end(kind):
    t1 = getattr(_t, "t1", None)
    if t1 is None:
        return
    t2 = time.perf_counter()
    line = f"{kind} {_t.t0:.6f} {t1:.6f} {_t.tc:.6f} {t2:.6f} {_t.cpu:.6f} {_t.n}\\n"
    os.write(_fd, line.encode())
    _t.t1 = None


_commit, _rollback = _base.Connection._commit_impl, _base.Connection._rollback_impl
_begin = _base.Connection._begin_impl


def _begin_impl(self, transaction):
    # Asked here, before the engine's ``begin`` listeners (any queue of ours) run.
    _t.t0 = time.perf_counter()
    return _begin(self, transaction)


def _commit_impl(self):
    _start_end()
    try:
        return _commit(self)
    finally:
        _end("C")


def _rollback_impl(self):
    _start_end()
    try:
        return _rollback(self)
    finally:
        _end("R")


if os.environ.get("SQLITE_LOCK_PRAGMAS"):
    from sqlalchemy.pool import Pool

    def _pragmas(dbapi_connection, _record):
        for pragma in os.environ["SQLITE_LOCK_PRAGMAS"].split(";"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    event.listen(Pool, "connect", _pragmas)

_base.Connection._begin_impl = _begin_impl
_base.Connection._commit_impl = _commit_impl
_base.Connection._rollback_impl = _rollback_impl
event.listen(Engine, "before_cursor_execute", _before)
event.listen(Engine, "after_cursor_execute", _after)
"""


def lock_stats(lines: list[str], since: float, until: float) -> dict[str, Any]:
    """Wait, hold, CPU in the lock, idle-while-waited and busy share of the transactions
    that got the lock between ``since`` and ``until``. The lock is taken as released when
    the COMMIT is asked (``tc``): SQLite lets it go inside the COMMIT, after writing the
    WAL frames; what follows (an automatic checkpoint, the GIL again) is ``commit``."""
    txs = []
    for line in lines:
        kind, *nums = line.split()
        t0, t1, tc, t2, cpu = map(float, nums[:5])
        if since <= t1 <= until:
            txs.append((t0, t1, tc, t2, cpu, int(nums[5]), kind))
    if not txs:
        return {}
    txs.sort(key=lambda tx: tx[1])
    idle = 0.0
    released = txs[0][1]
    for t0, t1, tc, *_ in txs:
        # The lock was free from the last release to this grant, and this writer waited
        # through part of that: time the lock sat idle with a writer waiting for it.
        idle += max(0.0, t1 - max(t0, released))
        released = max(released, tc)
    wall = txs[-1][2] - txs[0][1]
    waits = [(tx[1] - tx[0]) * 1000 for tx in txs]
    holds = [(tx[2] - tx[1]) * 1000 for tx in txs]
    commits = [(tx[3] - tx[2]) * 1000 for tx in txs]
    return {
        "transactions": len(txs),
        "wait_p50_ms": statistics.median(waits),
        "wait_mean_ms": statistics.fmean(waits),
        "hold_p50_ms": statistics.median(holds),
        "hold_mean_ms": statistics.fmean(holds),
        "commit_mean_ms": statistics.fmean(commits),
        "commit_max_ms": max(commits),
        "cpu_in_lock_mean_ms": statistics.fmean(tx[4] * 1000 for tx in txs),
        "statements_mean": statistics.fmean(tx[5] for tx in txs),
        "busy_share": sum(h / 1000 for h in holds) / wall if wall > 0 else 0.0,
        "idle_while_waited_ms_per_tx": idle * 1000 / len(txs),
        "rollbacks": sum(1 for tx in txs if tx[6] == "R"),
    }


def server_cpu_s(port: int) -> float:
    """CPU seconds used so far by the processes serving ``port`` (gunicorn and workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if str(port).encode() not in argv:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_lock", description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="per operation and c")
    parser.add_argument("--concurrency", type=int, action="append", help="default: 8 and 32")
    parser.add_argument("--server-env", action="append", default=[], metavar="SCIM_NAME=VALUE")
    parser.add_argument(
        "--pragma", action="append", default=[], help="e.g. wal_autocheckpoint=0 (diagnostics)"
    )
    args = parser.parse_args(argv)

    from bench import labels
    from bench.dataset import build_dataset
    from bench.loader import add_leavers, loaded_engine
    from bench.loadgen import Target, measure
    from bench.peers.compare import PEERS
    from bench.run import one_run_at_a_time, server_env
    from bench.scenarios import Creates, Deletes, PatchActive
    from bench.servers import HOST, free_port, running, scim_server_argv

    _lock = one_run_at_a_time()
    concurrencies = args.concurrency or [8, 32]
    (org,) = build_dataset(PEERS)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sqlite-lock-")))
        (work / "site").mkdir()
        (work / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
        log_path = work / "locks.log"
        url = f"sqlite:///{work / 'bench.db'}"
        key = secrets.token_hex(32)
        extra = dict(item.split("=", 1) for item in args.server_env)
        env = server_env(url, key, extra)
        engine, token = loaded_engine(stack, url, env, org)
        server_env_ = {
            **env,
            "SQLITE_LOCK_LOG": str(log_path),
            "SQLITE_LOCK_PRAGMAS": ";".join(args.pragma),
            # The server imports our ``sitecustomize`` first (and finds the rest as before).
            "PYTHONPATH": os.pathsep.join(
                [str(work / "site"), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        port = free_port()
        logs = work / "logs"
        logs.mkdir()
        stack.enter_context(
            running("sqlite-lock-ours", scim_server_argv(port), port, server_env_, logs, "/readyz")
        )
        target = Target(HOST, port, {"Authorization": f"Bearer {token}"})
        print(
            "| operation | c | req/s | wait p50 / mean ms | hold p50 / mean ms | CPU in lock ms "
            "| commit mean / max ms | statements | lock busy | idle while waited ms/tx "
            "| server CPU ms/req | client cores | load |",
            flush=True,
        )
        print("| --- |" + " ---: |" * 12)
        for c in concurrencies:
            creates = Creates(tag=f"lock-post-c{c}", ascii_only=True)
            leavers = add_leavers(engine, org, 1500, first=org.size * (c + 1))
            runs: list[tuple[str, Any]] = [
                (labels.CREATE, creates),
                ("PATCH replace active", PatchActive(org.user_ids, "PATCH replace active")),
                (labels.DELETE, None),
            ]
            for label, scenario in runs:
                cpu_before = server_cpu_s(port)
                if scenario is None:
                    scenario = Deletes(creates.created + leavers)
                outcome = measure(target, scenario, c, 0.4, args.seconds, 20_000)
                end = time.perf_counter()
                # Includes the warm-up's requests (at most ``loadgen.WARMUP_MAX``): 1-3 %.
                cpu = server_cpu_s(port) - cpu_before
                ok = sum(1 for s in outcome.samples if s.ok)
                lines = log_path.read_text().splitlines() if log_path.exists() else []
                # The measured phase is the last ``elapsed_s`` before the cleanup ended.
                st = lock_stats(lines, end - outcome.elapsed_s - 0.05, end)
                print(
                    f"| {label} | {c} | {ok / outcome.elapsed_s:.0f} "
                    f"| {st.get('wait_p50_ms', 0):.1f} / {st.get('wait_mean_ms', 0):.1f} "
                    f"| {st.get('hold_p50_ms', 0):.2f} / {st.get('hold_mean_ms', 0):.2f} "
                    f"| {st.get('cpu_in_lock_mean_ms', 0):.2f} "
                    f"| {st.get('commit_mean_ms', 0):.2f} / {st.get('commit_max_ms', 0):.1f} "
                    f"| {st.get('statements_mean', 0):.1f} "
                    f"| {st.get('busy_share', 0):.0%} "
                    f"| {st.get('idle_while_waited_ms_per_tx', 0):.2f} "
                    f"| {cpu * 1000 / max(ok, 1):.2f} | {outcome.client_cpu:.2f} "
                    f"| {os.getloadavg()[0]:.2f} |",
                    flush=True,
                )
                if outcome.failures:
                    print(f"  failures: {outcome.failures[:2]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
