"""The development signing key (``audit.signing.load_signer``) on a fresh instance."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from scim_server.audit.signing import load_signer
from tests.support.processes import started_together


def _key_id(instance: str) -> str:
    return load_signer(None, instance).key_id


def test_processes_starting_together_make_one_key(tmp_path: Path) -> None:
    """The server's workers and ``scim-server worker`` start at once on a fresh instance:
    each finds no key file. One key is made, whole, and every process signs with it (a plain
    write let another process read the file empty, a 500 at every start, or write a second
    key that made the first process's signatures unverifiable)."""
    for attempt in range(5):
        instance = str(tmp_path / f"instance{attempt}")
        found = started_together(_key_id, instance)
        assert len(set(found)) == 1, found
        assert not str(found[0]).startswith("error"), found
        key = Path(instance, "audit-signing.pem")
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert sorted(os.listdir(instance)) == ["audit-signing.pem"]  # no temporary left
        assert load_signer(None, instance).key_id == found[0]
