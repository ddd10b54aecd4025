"""Development keys made on first use (``config.development_key``) on a fresh instance."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

from scim_server.config import development_key


def _key(instance: str, start: Any, out: Any) -> None:
    start.wait()
    try:
        out.put(development_key(instance, "audit.key"))
    except Exception as exc:  # reported to the test
        out.put(f"error: {exc}".encode())


def test_processes_starting_together_share_one_whole_key(tmp_path: Path) -> None:
    """The HMAC key of the audit chain (and the secrets' sealing key) is made by whichever
    process starts first; one starting at the same moment read it empty, or made another:
    the chain would be keyed differently by each process."""
    context = multiprocessing.get_context("fork")
    for attempt in range(5):
        instance = str(tmp_path / f"instance{attempt}")
        start = context.Barrier(8)
        out = context.Queue()
        procs = [context.Process(target=_key, args=(instance, start, out)) for _ in range(8)]
        for proc in procs:
            proc.start()
        found = [out.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        assert len(set(found)) == 1, found
        assert len(found[0]) == 64, found  # 32 bytes in hex, never empty
        path = Path(instance, "audit.key")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert os.listdir(instance) == ["audit.key"]
