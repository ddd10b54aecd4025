"""The ``sitecustomize`` of ``bench.worker_profile --phases``: thread CPU per request phase.

Imported by the server's processes (the tool puts a ``sitecustomize`` that imports this
module first on their path, as ``bench.sqlite_lock`` does). It wraps gunicorn's gthread
worker (the main loop's callbacks, ``handle``, the HTTP parser, the WSGI environ, the
response, the access log), Flask's request context and dispatch, and every hook and view
Flask calls through ``ensure_sync``, and adds each one's thread CPU (``time.thread_time``:
user + system of the calling thread, none of its waits) exclusive of the wrapped calls
inside it. Each process writes its totals, with every thread's CPU and context switches
from ``/proc``, to ``$PHASE_DIR/PID.json`` twice a second. Diagnostics only: not part of
the server.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

_DIR = os.environ.get("PHASE_DIR")
_clock = time.thread_time
_local = threading.local()
# Per-thread totals {name: [exclusive s, inclusive s, calls]}, merged when written.
_tables: list[dict[str, list[float]]] = []
_tables_lock = threading.Lock()


def _table() -> dict[str, list[float]]:
    table = getattr(_local, "table", None)
    if table is None:
        table = _local.table = {}
        _local.stack = []
        with _tables_lock:
            _tables.append(table)
    return table


def timed(name: str, func: Any) -> Any:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        table = _table()
        stack = _local.stack
        frame = [0.0]  # the children's inclusive time
        stack.append(frame)
        start = _clock()
        try:
            return func(*args, **kwargs)
        finally:
            spent = _clock() - start
            stack.pop()
            if stack:
                stack[-1][0] += spent
            row = table.get(name)
            if row is None:
                row = table[name] = [0.0, 0.0, 0]
            row[0] += spent - frame[0]
            row[1] += spent
            row[2] += 1

    wrapper.__wrapped_phase__ = name  # type: ignore[attr-defined]
    return wrapper


def _wrap(owner: Any, attr: str, name: str) -> None:
    setattr(owner, attr, timed(name, getattr(owner, attr)))


def _threads() -> dict[str, Any]:
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc/self/task").iterdir():
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        switches = {}
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                switches[key] = int(value)
        out[entry.name] = {
            "utime": int(fields[11]) / tick,
            "stime": int(fields[12]) / tick,
            "comm": stat.split("(", 1)[1].rsplit(")", 1)[0],
            **switches,
        }
    return out


def merged() -> dict[str, list[float]]:
    """Every thread's totals so far, added up."""
    out: dict[str, list[float]] = {}
    with _tables_lock:
        tables = list(_tables)
    for table in tables:
        for name, row in list(table.items()):
            acc = out.setdefault(name, [0.0, 0.0, 0])
            acc[0] += row[0]
            acc[1] += row[1]
            acc[2] += row[2]
    return out


def _dump_forever(main: int) -> None:
    path = Path(_DIR) / f"{os.getpid()}.json"  # type: ignore[arg-type]
    tmp = path.with_suffix(".tmp")
    while True:
        time.sleep(0.5)
        doc = {
            "phases": merged(),
            "threads": _threads(),
            "main": main,
            "dumper": threading.get_native_id(),
        }
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)


def _start_dumper() -> None:
    # Called in the process's main thread (at import, and in a forked child): its id.
    # threading.main_thread().native_id keeps the parent's after a fork.
    main = threading.get_native_id()
    threading.Thread(target=_dump_forever, args=(main,), name="phase-dump", daemon=True).start()


def install() -> None:
    if not _DIR:
        return
    from flask import app as flask_app
    from flask import ctx as flask_ctx
    from gunicorn import glogging
    from gunicorn.http import parser as gparser
    from gunicorn.http import wsgi as gwsgi
    from gunicorn.workers import base as gbase
    from gunicorn.workers import gthread

    worker = gthread.ThreadWorker
    for attr in (
        "accept",
        "on_client_socket_readable",
        "finish_request",
        "murder_keepalived",
        "murder_pending",
        "is_parent_alive",
    ):
        _wrap(worker, attr, f"gthread main: {attr}")
    _wrap(gbase.Worker, "notify", "gthread main: notify")
    _wrap(gthread.PollableMethodQueue, "run_callbacks", "gthread main: run_callbacks")
    _wrap(gthread.PollableMethodQueue, "defer", "gthread: defer (pipe write)")
    _wrap(worker, "wait_for_and_dispatch_events", "gthread main: select + dispatch")
    _wrap(worker, "enqueue_req", "gthread main: enqueue_req (submit)")
    _wrap(worker, "handle", "gthread thread: handle")
    _wrap(worker, "_keepalive_after", "gthread thread: finish_body")
    _wrap(worker, "handle_request", "gthread thread: handle_request")
    _wrap(gthread.TConn, "init", "gthread thread: conn init")
    _wrap(gthread.TConn, "wait_for_data", "gthread thread: wait_for_data (new conn)")
    _wrap(gparser.Parser, "__next__", "gunicorn: HTTP parser")
    _wrap(gwsgi, "create", "gunicorn: WSGI environ")
    for attr in ("start_response", "write", "close", "write_file"):
        _wrap(gwsgi.Response, attr, f"gunicorn: response {attr}")
    _wrap(glogging.Logger, "access", "gunicorn: access log")
    # Flask
    _wrap(flask_app.Flask, "__call__", "flask: wsgi_app")
    _wrap(flask_app.Flask, "request_context", "flask: request_context")
    _wrap(flask_ctx.RequestContext, "push", "flask: ctx push")
    _wrap(flask_ctx.RequestContext, "pop", "flask: ctx pop")
    _wrap(flask_app.Flask, "full_dispatch_request", "flask: full_dispatch_request")
    _wrap(flask_app.Flask, "preprocess_request", "flask: preprocess_request")
    _wrap(flask_app.Flask, "dispatch_request", "flask: dispatch_request")
    _wrap(flask_app.Flask, "finalize_request", "flask: finalize_request")
    _wrap(flask_app.Flask, "process_response", "flask: process_response")
    _wrap(flask_app.Flask, "do_teardown_request", "flask: do_teardown_request")
    _wrap(flask_app.Flask, "do_teardown_appcontext", "flask: do_teardown_appcontext")
    _wrap(flask_app.Flask, "handle_user_exception", "flask: handle_user_exception")

    import logging

    _wrap(logging.Logger, "handle", "logging: a record handled (format, write)")
    ensure_sync = flask_app.Flask.ensure_sync
    late: list[bool] = []

    def timed_ensure_sync(self: Any, func: Any) -> Any:
        if not late:
            # Imported once the app exists: prometheus_client picks its multiprocess mode at
            # import, after ``serve`` has set its directory.
            late.append(True)
            from scim_server import observability

            _wrap(observability, "_observe", "observability: metrics (prometheus)")
        made = ensure_sync(self, func)
        name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)}"
        return timed(f"hook/view: {name}", made)

    flask_app.Flask.ensure_sync = timed_ensure_sync  # type: ignore[method-assign]
    if os.environ.get("PHASE_DUMP", "1") == "1":
        os.register_at_fork(after_in_child=_start_dumper)
        _start_dumper()


install()
