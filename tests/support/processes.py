"""Concurrency across processes in tests: what several processes starting at the same
moment each got (the server's workers and ``scim-server worker`` on a fresh instance)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any


def _run(call: Callable[..., Any], args: tuple[Any, ...], start: Any, out: Any) -> None:
    start.wait()
    try:
        out.put(call(*args))
    except Exception as exc:  # reported to the test
        out.put(f"error: {exc}")


def started_together(call: Callable[..., Any], *args: Any, count: int = 8) -> list[Any]:
    """``call(*args)`` in ``count`` forked processes released by one barrier; each one's
    result (a picklable value), or ``"error: ..."`` for one that raised."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(count)
    out = context.Queue()
    procs = [context.Process(target=_run, args=(call, args, start, out)) for _ in range(count)]
    for proc in procs:
        proc.start()
    found = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    return found
