"""gunicorn settings from the environment, and the hooks that make several workers behave as one.

Used by ``scim-server serve --production`` and usable directly:
``gunicorn -c python:scim_server.gunicorn_conf wsgi:app``. ``/metrics`` must add
up every worker, so Prometheus runs in multiprocess mode: its directory is set
before any worker imports ``prometheus_client`` and dead workers are marked so
their live gauges stop counting. SIGTERM is gunicorn's graceful stop: workers
finish their requests (up to ``graceful_timeout``) and close their database pools.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from scim_server.config import env_int

bind = os.environ.get("SCIM_BIND", "127.0.0.1:8000")
workers = env_int("SCIM_WORKERS", 2)
# gthread, even with one thread: its main loop tells the arbiter it is alive
# while a request runs, so a long response (an audit export streamed to a slow
# client) is not killed at `timeout` as a sync worker's would be, cut short.
worker_class = os.environ.get("SCIM_WORKER_CLASS", "gthread")
threads = env_int("SCIM_THREADS", 1)
timeout = env_int("SCIM_TIMEOUT", 30)
graceful_timeout = env_int("SCIM_GRACEFUL_TIMEOUT", 30)
keepalive = env_int("SCIM_KEEPALIVE", 5)
accesslog = os.environ.get("SCIM_ACCESS_LOG") or None
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


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


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
    "child_exit",
    "worker_exit",
    "on_exit",
)


def settings() -> dict[str, Any]:
    """This module's settings, for a programmatic gunicorn application (skip unknown ones)."""
    return {name: globals()[name] for name in SETTINGS}
