"""The development signing key (``audit.signing.load_signer``) on a fresh instance."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

from scim_server.audit.signing import load_signer


def _key_id(instance: str, start: Any, out: Any) -> None:
    start.wait()
    try:
        out.put(load_signer(None, instance).key_id)
    except Exception as exc:  # reported to the test
        out.put(f"error: {exc}")


def test_processes_starting_together_make_one_key(tmp_path: Path) -> None:
    """The server's workers and ``scim-server worker`` start at once on a fresh instance:
    each finds no key file. One key is made, whole, and every process signs with it (a plain
    write let another process read the file empty, a 500 at every start, or write a second
    key that made the first process's signatures unverifiable)."""
    context = multiprocessing.get_context("fork")
    for attempt in range(5):
        instance = str(tmp_path / f"instance{attempt}")
        start = context.Barrier(8)
        out = context.Queue()
        procs = [context.Process(target=_key_id, args=(instance, start, out)) for _ in range(8)]
        for proc in procs:
            proc.start()
        found = [out.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        assert len(set(found)) == 1, found
        assert not str(found[0]).startswith("error"), found
        key = Path(instance, "audit-signing.pem")
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert sorted(os.listdir(instance)) == ["audit-signing.pem"]  # no temporary left
        assert load_signer(None, instance).key_id == found[0]
