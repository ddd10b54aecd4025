"""Concurrency in tests: calls run at once, each in a thread of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_together(*calls: Callable[[], object]) -> None:
    """Start a thread for each call, then wait for all of them (a failure inside one shows
    in what the test asserts after, as with bare threads)."""
    threads = [threading.Thread(target=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
