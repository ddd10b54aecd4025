"""gunicorn settings (``config.server_config``) and the hooks that make workers behave as one.

Used by ``scim-server serve --production`` and usable directly:
``gunicorn -c python:scim_server.gunicorn_conf wsgi:app``. ``/metrics`` must add
up every worker, so Prometheus runs in multiprocess mode: its directory is set
before any worker imports ``prometheus_client`` and dead workers are marked so
their live gauges stop counting. SIGTERM is gunicorn's graceful stop: workers
finish their requests (up to ``graceful_timeout``) and close their database pools.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from scim_server.config import server_config

_server = server_config()
bind = _server["bind"]
workers = _server["workers"]
worker_class = _server["worker_class"]
threads = _server["threads"]
timeout = _server["timeout"]
graceful_timeout = _server["graceful_timeout"]
keepalive = _server["keepalive"]
accesslog = _server["accesslog"]
# gunicorn 27's control socket has one default path per user: two instances on
# one host would take it from each other, and nothing here uses it.
control_socket_disable = True

_state: dict[str, Any] = {"prepared": False, "created": None}


def prepare_metrics_dir() -> str:
    """Set PROMETHEUS_MULTIPROC_DIR (a fresh temp dir unless given) before workers fork.

    A given directory is emptied of metric files: stale ones from an earlier run
    would add dead workers' values. Idempotent within a process.
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if _state["prepared"] and path:
        return path
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        for stale in Path(path).glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = tempfile.mkdtemp(prefix="scim-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        _state["created"] = path
    _state["prepared"] = True
    return path


def on_starting(server: Any) -> None:
    prepare_metrics_dir()


def post_worker_init(worker: Any) -> None:
    """Move what the worker holds once it has loaded the app (modules, the engine, the
    compiled statements: most of the process's objects) out of the garbage collector's
    reach (``gc.freeze``): a full collection otherwise walks all of them every few hundred
    requests, a pause of tens to hundreds of milliseconds in whichever request set it off.
    Frozen objects are never collected; nothing loaded at start-up is meant to be."""
    gc.collect()
    gc.freeze()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    from scim_server import gunicorn_worker

    multiprocess.mark_process_dead(worker.pid)
    # Its running requests no longer count when the others choose who accepts.
    age = getattr(worker, "age", None)
    if age is not None:
        gunicorn_worker.LOADS[age % gunicorn_worker.SLOTS] = -1


def worker_exit(server: Any, worker: Any) -> None:
    """Close the worker's pooled connections instead of leaving the database to notice."""
    from scim_server.db import EXTENSION

    app = getattr(worker, "wsgi", None)
    state = getattr(app, "extensions", {}).get(EXTENSION)
    if state is not None:
        state.engine.dispose()


def on_exit(server: Any) -> None:
    if _state["created"]:
        shutil.rmtree(_state["created"], ignore_errors=True)


SETTINGS = (
    "bind",
    "workers",
    "worker_class",
    "threads",
    "timeout",
    "graceful_timeout",
    "keepalive",
    "accesslog",
    "control_socket_disable",
    "on_starting",
    "post_worker_init",
    "child_exit",
    "worker_exit",
    "on_exit",
)


def settings() -> dict[str, Any]:
    """This module's settings, for a programmatic gunicorn application (skip unknown ones)."""
    return {name: globals()[name] for name in SETTINGS}
