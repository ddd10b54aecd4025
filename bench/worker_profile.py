"""Where a gunicorn worker's CPU goes under load: ``python -m bench.worker_profile``.

Our server as ``--peers``, ``bench.threads_cmp`` and ``bench.sqlite_lock`` run it
(``scim-server serve --production``: two gthread workers, the production settings, 11,000
users), one operation at a time at concurrency c, with ``py-spy record -r RATE -f raw``
attached to each worker for the measured window. Prints per operation: req/s, the
server's CPU per request (its processes' utime + stime from ``/proc``, master included)
and, for PostgreSQL, its backends'; then the workers' samples (py-spy leaves idle threads
out) split into phases of a request (``PHASES``: gunicorn's loop and thread handoff, its
HTTP parser, the WSGI environ, the response, the access log, Flask's dispatch, each of
our hooks, the view, the teardown), each as a share of the samples and as ms of CPU per
request (the share times the workers' CPU per request). ``--keep DIR`` keeps the raw
stacks (``DIR/OP-WORKERPID.txt``) for a closer look (``--top N``: the leaf functions of
each phase).

``python -m bench.worker_profile --backend sqlite --seconds 15 post patch get``
``python -m bench.worker_profile --analyse DIR`` (the phases of kept stacks again)
``python -m bench.worker_profile --backend sqlite --callgrind 100 get deep-page`` (instructions
per served request: the whole request, gunicorn and HTTP included)

py-spy's sampling (``--nonblocking`` unless ``--blocking``) costs the machine CPU and
slows the workers a little; the phases' shares are the figure to read, the CPU per
request of an unprofiled run is ``bench.threads_cmp``'s. Takes the machine's benchmark
lock. Issue 17, branch ``wsgicost``.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

PY_SPY = Path(sys.executable).parent / "py-spy"

# A phase of a request, named by the first frame (from the thread's root) that matches
# (a function-name regex and a file-path regex). Frames are "function (path:line)".
# Evaluated leaf-ward: the deepest match wins, so a hook that calls into SQLAlchemy stays
# the hook's, and the view's own frames are "view".
PHASES: list[tuple[str, str, str]] = [
    # (phase, function regex, file regex)
    ("thread pool handoff", r".*", r"concurrent/futures/|threading\.py|queue\.py"),
    ("gunicorn main loop", r".*", r"gunicorn/(workers/base|workers/workertmp|arbiter)\.py"),
    ("gunicorn main loop", r".*", r"selectors\.py"),
    (
        "gunicorn main loop",
        r"^(ThreadWorker\.)?(run|wait_for_and_dispatch_events|accept|"
        r"finish_request|on_client_socket_readable|on_pending_socket_readable|enqueue_req|"
        r"murder_keepalived|murder_pending|is_parent_alive|set_accept_enabled)$",
        r"gunicorn/workers/gthread\.py",
    ),
    ("gunicorn main loop", r"PollableMethodQueue", r"gunicorn/workers/gthread\.py"),
    (
        "gunicorn handle (thread)",
        r"(handle|_keepalive_after|TConn\..*)$",
        r"gunicorn/workers/gthread\.py",
    ),
    ("gunicorn HTTP parser", r".*", r"gunicorn/http/(parser|message|unreader|body)\.py"),
    ("gunicorn handle_request", r"handle_request$", r"gunicorn/workers/gthread\.py"),
    (
        "gunicorn WSGI environ",
        r"(create|default_environ|base_environ|proxy_environ)$",
        r"gunicorn/http/wsgi\.py",
    ),
    ("gunicorn response", r"Response\.", r"gunicorn/http/wsgi\.py"),
    ("gunicorn response", r".*", r"gunicorn/util\.py"),
    ("gunicorn access log", r"access$", r"gunicorn/glogging\.py"),
    ("Flask / werkzeug around the request", r".*", r"flask/|werkzeug/"),
    ("sessions", r".*", r"scim_server/sessions\.py"),
    (
        "observability hooks (request id, metrics, access log line)",
        r".*",
        r"scim_server/observability\.py",
    ),
    ("logging", r".*", r"logging/__init__\.py"),
    ("observability hooks (request id, metrics, access log line)", r".*", r"prometheus_client/"),
    ("audit context (audit.web)", r".*", r"scim_server/audit/web\.py"),
    ("SCIM admission gate", r".*", r"scim_server/scim/admission\.py"),
    ("SCIM auth (token lookup)", r"authenticate$", r"scim_server/scim/auth\.py"),
    ("rate limit", r".*", r"scim_server/ratelimit\.py"),
    ("view (SCIM resource work)", r".*", r"scim_server/scim/(users|groups|search|bulk)\.py"),
    ("db.release (teardown)", r"release$", r"scim_server/db\.py"),
]
_COMPILED = [(name, re.compile(f), re.compile(p)) for name, f, p in PHASES]
# Our code's phases: a sample whose stack reaches one is that phase's, whatever it calls
# (SQLAlchemy, werkzeug, logging). The others (gunicorn, Flask, the thread pool) give way
# to a deeper match.
_FINAL = {name for name, _f, path in PHASES if "scim_server" in path}
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def phase_of(frames: list[str]) -> str:
    """The phase of one sample: from the thread's root, the first frame of our code a
    ``PHASES`` rule matches, else the deepest frame any rule matches."""
    found = "other"
    for frame in frames:
        match = _FRAME.match(frame)
        if match is None:
            continue
        func, path = match["func"], match["file"]
        for name, func_re, path_re in _COMPILED:
            if path_re.search(path) and func_re.search(func):
                found = name
                break
        if found in _FINAL:
            return found
    return found


def read_raw(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw (folded) output: one ``frame;frame;... COUNT`` line per stack."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        head, _, count = line.rpartition(" ")
        if not head or not count.isdigit():
            continue
        # With --threads the first frames are the process and the thread.
        frames = [f for f in head.split(";") if f]
        stacks.append((frames, int(count)))
    return stacks


def leaf(frames: list[str]) -> str:
    match = _FRAME.match(frames[-1]) if frames else None
    if match is None:
        return frames[-1] if frames else "?"
    return f"{match['func']} ({match['file']})"


def analyse(files: list[Path], top: int = 0) -> tuple[Counter[str], dict[str, Counter[str]]]:
    phases: Counter[str] = Counter()
    leaves: dict[str, Counter[str]] = defaultdict(Counter)
    for path in files:
        for frames, count in read_raw(path):
            phase = phase_of(frames)
            phases[phase] += count
            if top:
                leaves[phase][leaf(frames)] += count
    return phases, leaves


def report(phases: Counter[str], cpu_ms: float | None, leaves: dict[str, Counter[str]],
           top: int) -> None:  # fmt: skip
    total = sum(phases.values()) or 1
    print(f"  samples {total}")
    print("  | phase | share | ms/request |")
    print("  | --- | ---: | ---: |")
    for name, count in phases.most_common():
        ms = f"{count / total * cpu_ms:.3f}" if cpu_ms is not None else "n/a"
        print(f"  | {name} | {count / total:.1%} | {ms} |")
        for leaf_name, n in leaves.get(name, Counter()).most_common(top):
            print(f"  |   {leaf_name} | {n / total:.1%} | |")


def _phase_totals(phase_dir: Path, workers: list[int]) -> dict[int, Any]:
    """Each worker's totals once they have settled (written twice a second)."""
    import json

    time.sleep(1.2)
    return {pid: json.loads((phase_dir / f"{pid}.json").read_text()) for pid in workers}


def phase_report(before: dict[int, Any], after: dict[int, Any], requests: int) -> None:
    """Per request: each phase's exclusive thread CPU, and the workers' threads from /proc."""
    excl: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    main_u = main_s = pool_u = pool_s = 0.0
    switches = {"main": [0, 0], "pool": [0, 0]}
    for pid, doc in after.items():
        old = before[pid]
        for name, row in doc["phases"].items():
            prev = old["phases"].get(name, [0.0, 0.0, 0])
            excl[name] += row[0] - prev[0]
            calls[name] += row[2] - prev[2]
        for tid, t in doc["threads"].items():
            if int(tid) == doc["dumper"]:
                continue
            p = old["threads"].get(tid, {"utime": 0, "stime": 0, "voluntary_ctxt_switches": 0,
                                         "nonvoluntary_ctxt_switches": 0})  # fmt: skip
            du, ds = t["utime"] - p["utime"], t["stime"] - p["stime"]
            kind = "main" if int(tid) == doc["main"] else "pool"
            if kind == "main":
                main_u, main_s = main_u + du, main_s + ds
            else:
                pool_u, pool_s = pool_u + du, pool_s + ds
            switches[kind][0] += t.get("voluntary_ctxt_switches", 0) - p.get(
                "voluntary_ctxt_switches", 0
            )
            switches[kind][1] += t.get("nonvoluntary_ctxt_switches", 0) - p.get(
                "nonvoluntary_ctxt_switches", 0
            )
    n = max(requests, 1)
    print(
        f"  workers' threads (/proc), ms per request: main thread user {main_u * 1000 / n:.3f}"
        f" sys {main_s * 1000 / n:.3f}; request threads user {pool_u * 1000 / n:.3f} sys "
        f"{pool_s * 1000 / n:.3f}; context switches per request (voluntary / involuntary): "
        f"main {switches['main'][0] / n:.1f} / {switches['main'][1] / n:.1f}, request threads "
        f"{switches['pool'][0] / n:.1f} / {switches['pool'][1] / n:.1f}"
    )
    total = sum(excl.values())
    print(f"  instrumented thread CPU {total * 1000 / n:.3f} ms per request (exclusive, by phase):")
    print("  | phase | ms/request | calls/request |")
    print("  | --- | ---: | ---: |")
    for name, spent in excl.most_common():
        if spent * 1000 / n < 0.001:
            continue
        print(f"  | {name} | {spent * 1000 / n:.3f} | {calls[name] / n:.2f} |")


def in_process(args: argparse.Namespace) -> int:
    """The phases of requests sent by Flask's test client in this process (no server)."""
    phase_site: Any = None
    if args.phases:
        os.environ["PHASE_DIR"] = tempfile.mkdtemp(prefix="worker-profile-")
        os.environ["PHASE_DUMP"] = "0"
        from bench import phase_site
    from bench.write_cost import Writer, setup

    url = None
    if args.backend == "postgresql":
        from bench.backends import PG_ADMIN_URL, recreate_database

        name = os.environ.get("SCIM_BENCH_PG_DATABASE", "scim_bench")
        recreate_database(PG_ADMIN_URL, name)
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    if args.dataset:
        from bench.run import AUDIT_SIGNING_KEY

        # The app's keys and the loader's: the same.
        os.environ.setdefault("SCIM_AUDIT_KEY", secrets.token_hex(32))
        os.environ.setdefault("SCIM_AUDIT_SIGNING_KEY", AUDIT_SIGNING_KEY)
    app, url = setup(url, "worker-profile")
    w = Writer(app)
    if args.dataset:
        # The servers' data: one organization of 11,000 users (bench.threads_cmp's), and
        # its token for every request.
        from bench.dataset import build_dataset
        from bench.loader import create_tokens, load_orgs, settle
        from bench.peers.compare import PEERS
        from scim_server.db import db

        (org,) = build_dataset(PEERS)
        engine = db.engine(app)
        load_orgs(engine, [org])
        settle(engine)
        w.headers["Authorization"] = "Bearer " + create_tokens(engine, [org])[org.id]
    for _ in range(50):
        w.post()
    n = args.requests

    def get(i: int) -> None:
        resp = w.client.get(f"/scim/v2/Users/{w.ids[i % len(w.ids)]}", headers=w.headers)
        assert resp.status_code == 200

    if os.environ.get("WORKER_PROFILE_CALLGRIND"):
        # Under ``valgrind --tool=callgrind --instr-atstart=no``: count from here on.
        subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], check=True)
    steps = {"post": lambda _i: w.post(), "patch": w.patch_active, "get": get,
             "delete": lambda _i: w.delete()}  # fmt: skip
    for op in args.ops:
        if op == "delete":
            for _ in range(n):
                w.post()
        steps[op](0)
        before = phase_site.merged() if phase_site else {}
        os.getppid()  # a marker: valgrind --dump-before='os_getppid*' counts each op apart
        cpu = time.process_time()
        for i in range(n):
            steps[op](i + 1)
        cpu = (time.process_time() - cpu) * 1000 / n
        os.getppid()
        print(f"## {op} in process: {cpu:.2f} ms CPU per request (with the test client)")
        if phase_site is None:
            continue
        after = phase_site.merged()
        excl: Counter[str] = Counter()
        for name, row in after.items():
            excl[name] = row[0] - before.get(name, [0.0])[0]
        print(f"  instrumented thread CPU {sum(excl.values()) * 1000 / n:.3f} ms per request")
        print("  | phase | ms/request |")
        print("  | --- | ---: |")
        for name, spent in excl.most_common():
            if spent * 1000 / n >= 0.001:
                print(f"  | {name} | {spent * 1000 / n:.3f} |")
    return 0


def callgrind_count(pid: int, target: Any, scenario: Any, args: argparse.Namespace,
                    keep: Path) -> str:  # fmt: skip
    """Instructions of the worker ``pid`` (under callgrind) per request of ``scenario``: the
    dump between two GET /metrics markers, less that of two markers back to back."""
    import http.client

    from bench.loadgen import measure

    def marker() -> int:
        before = set(keep.glob(f"cg.{pid}.*"))
        conn = http.client.HTTPConnection(target.host, target.port, timeout=600)
        conn.request("GET", "/metrics")
        conn.getresponse().read()
        conn.close()
        time.sleep(1.0)  # the dump is written before the listing
        new = sorted(set(keep.glob(f"cg.{pid}.*")) - before, key=lambda p: int(p.suffix[1:]))
        if not new:
            raise RuntimeError(f"no callgrind dump of {pid} in {keep}")
        for line in new[-1].read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
        return 0

    measure(target, scenario, args.concurrency, 0.0, 600.0, 40)  # warm
    marker()
    empty = marker()  # two markers: what a marker adds to a segment
    out = measure(target, scenario, args.concurrency, 0.0, 3600.0, args.callgrind)
    total = marker() - empty
    ok = sum(1 for s in out.samples if s.ok)
    return (f"{total / max(ok, 1) / 1e6:.3f} M instructions per request ({ok} requests, "
            f"{len(out.failures)} failures; markers {empty / 1e6:.1f} M)")  # fmt: skip


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def gunicorn_master(port: int) -> int:
    """The pid of the process listening as ``scim-server serve ... --port PORT``'s master:
    the one of the port's processes whose parent is not one of them."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(port).encode() in argv and b"serve" in argv:
            pids.append(int(entry.name))
    for pid in pids:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        if ppid not in pids:
            return pid
    raise RuntimeError(f"no server on port {port}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_profile", description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=15.0, help="per operation")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=int, default=400, help="py-spy samples per second")
    parser.add_argument("--blocking", action="store_true", help="py-spy pauses the worker")
    parser.add_argument(
        "--all-active",
        action="store_true",
        help="py-spy: every running or runnable thread (its default), not only the GIL's "
        "holder (--gil: Python's CPU; leaves out SQLite's own work, done without the GIL)",
    )
    parser.add_argument("--no-profile", action="store_true", help="CPU per request only")
    parser.add_argument(
        "--phases",
        action="store_true",
        help="instead of py-spy: thread CPU per phase, measured in the server (bench.phase_site)",
    )
    parser.add_argument("--server-env", action="append", default=[], metavar="SCIM_NAME=VALUE")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="with --phases: the same phases in process (bench.write_cost's app and test "
        "client, no gunicorn), to compare with",
    )
    parser.add_argument("--requests", type=int, default=300, help="--in-process: per op")
    parser.add_argument(
        "--dataset", action="store_true", help="--in-process: the servers' 11,000 users"
    )
    parser.add_argument(
        "--callgrind",
        type=int,
        metavar="N",
        help="instead of py-spy: the server (one worker) under valgrind's callgrind; "
        "instructions per request over N requests of each op (noise-free)",
    )
    parser.add_argument("--keep", type=Path, help="keep the raw stacks in this directory")
    parser.add_argument("--top", type=int, default=0, help="leaf functions shown per phase")
    parser.add_argument("--analyse", type=Path, help="only analyse kept stacks (a --keep DIR)")
    parser.add_argument("ops", nargs="*", default=["post", "patch", "get"],
                        choices=["post", "patch", "get", "delete", "deep-page"])  # fmt: skip
    args = parser.parse_args(argv)

    if args.analyse:
        for op in args.ops:
            files = sorted(args.analyse.glob(f"{op}-*.txt"))
            if files:
                print(f"## {op}")
                phases, leaves = analyse(files, args.top)
                report(phases, None, leaves, args.top)
        return 0

    if args.in_process:
        return in_process(args)
    if not (args.no_profile or args.phases or args.callgrind) and not PY_SPY.exists():
        parser.error(f"py-spy is not installed ({PY_SPY}): `.venv/bin/pip install py-spy`, "
                     "or --no-profile, --phases or --callgrind N")  # fmt: skip

    from bench.backends import postgres_database, sqlite_database
    from bench.dataset import build_dataset
    from bench.loader import add_leavers, loaded_engine
    from bench.loadgen import Target, measure
    from bench.measurements import deep_page
    from bench.peers.compare import PEERS
    from bench.run import one_run_at_a_time, server_env
    from bench.scenarios import SCIM, Creates, Deletes, PatchActive, Reads
    from bench.server_cpu import ServerCpu, per_request_ms, shown
    from bench.servers import HOST, free_port, running, scim_server_argv
    from bench.sqlite_lock import server_cpu_s

    _lock = one_run_at_a_time()
    (org,) = build_dataset(PEERS)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="worker-profile-")))
        keep = args.keep or work
        keep.mkdir(parents=True, exist_ok=True)
        database = sqlite_database() if args.backend == "sqlite" else postgres_database()
        url = stack.enter_context(database)
        key = secrets.token_hex(32)
        env = server_env(url, key, dict(item.split("=", 1) for item in args.server_env))
        engine, token = loaded_engine(stack, url, env, org)
        phase_dir = work / "phases"
        if args.phases:
            phase_dir.mkdir()
            (work / "site").mkdir()
            # Loaded from this file's folder by path: the server's own code may come from
            # another tree (``--server-env PYTHONPATH=...``: main, for an A/B).
            site = Path(__file__).resolve().parent / "phase_site.py"
            (work / "site" / "sitecustomize.py").write_text(
                "import importlib.util\n"
                f"_spec = importlib.util.spec_from_file_location('phase_site', {str(site)!r})\n"
                "_module = importlib.util.module_from_spec(_spec)\n"
                "_spec.loader.exec_module(_module)\n"
            )
            env = {
                **env,
                "PHASE_DIR": str(phase_dir),
                "PYTHONPATH": os.pathsep.join(
                    [str(work / "site"), *filter(None, [env.get("PYTHONPATH")])]
                ),
            }
        database_cpu = ServerCpu(url)
        port = free_port()
        argv_ = scim_server_argv(port)
        if args.callgrind:
            import bench.servers

            bench.servers.READY_TIMEOUT_S = 900.0
            env = {**env, "SCIM_WORKERS": "1", "PYTHONHASHSEED": "0"}
            # A forked worker cannot be told to dump (callgrind_control does not find it):
            # a GET /metrics (the only request that lists a directory) marks each segment.
            argv_ = ["valgrind", "--tool=callgrind", "--dump-before=os_scandir*",
                     f"--callgrind-out-file={keep}/cg.%p", *argv_]  # fmt: skip
        stack.enter_context(running("worker-profile", argv_, port, env, work, "/readyz"))
        master = gunicorn_master(port)
        workers = worker_pids(master)
        print(f"master {master}, workers {workers}, load {os.getloadavg()}", flush=True)
        target = Target(HOST, port, {"Authorization": f"Bearer {token}"})
        ids = org.user_ids
        creates = Creates(tag="wprof", ascii_only=True)
        for op in args.ops:
            if op == "post":
                scenario: Any = creates
            elif op == "patch":
                scenario = PatchActive(ids, "PATCH replace active")
            elif op == "get":
                scenario = Reads("GET by id", lambda rng: f"{SCIM}/Users/{rng.choice(ids)}")
            elif op == "deep-page":
                scenario = Reads("deep page", deep_page(org.size))
            else:
                leavers = add_leavers(engine, org, 3000, first=org.size * 2)
                scenario = Deletes(creates.created + leavers)
            if args.callgrind:
                print(f"## {op}: {callgrind_count(workers[0], target, scenario, args, keep)}",
                      flush=True)  # fmt: skip
                continue
            # Warm the caches outside the profile.
            measure(target, scenario, args.concurrency, 0.2, 1.0, 2000)
            spies = []
            phases_before = _phase_totals(phase_dir, workers) if args.phases else None
            if not args.no_profile and not args.phases:
                for pid in workers:
                    out = keep / f"{op}-{pid}.txt"
                    cmd = [str(PY_SPY), "record", "-p", str(pid), "-r", str(args.rate), "-f",
                           "raw", "-o", str(out), "-d", str(int(args.seconds) + 1)]  # fmt: skip
                    if not args.blocking:
                        cmd.append("--nonblocking")
                    if not args.all_active:
                        cmd.append("--gil")
                    spies.append((out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                        stderr=subprocess.DEVNULL)))  # fmt: skip
                time.sleep(0.5)
            cpu_before, pg_before = server_cpu_s(port), database_cpu.seconds()
            out_ = measure(target, scenario, args.concurrency, 0.0, args.seconds, 1_000_000)
            ok = sum(1 for s in out_.samples if s.ok)
            cpu_ms = (server_cpu_s(port) - cpu_before) * 1000 / max(ok, 1)
            pg_ms = per_request_ms(pg_before, database_cpu.seconds(), max(ok, 1))
            for _, proc in spies:
                proc.wait()
            print(
                f"## {op} c={args.concurrency}: {ok / out_.elapsed_s:.0f} req/s, server CPU "
                f"{cpu_ms:.2f} ms/req, PostgreSQL {shown(pg_ms)} ms/req, failures "
                f"{len(out_.failures)}, load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            if out_.failures:
                print(f"  failures: {out_.failures[:2]}")
            if spies:
                phases, leaves = analyse([path for path, _ in spies], args.top)
                report(phases, cpu_ms, leaves, args.top)
            if phases_before is not None:
                phase_report(phases_before, _phase_totals(phase_dir, workers), ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
