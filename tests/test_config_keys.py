"""Development keys made on first use (``config.development_key``) on a fresh instance."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from scim_server.config import development_key
from tests.support.processes import started_together


def test_processes_starting_together_share_one_whole_key(tmp_path: Path) -> None:
    """The HMAC key of the audit chain (and the secrets' sealing key) is made by whichever
    process starts first; one starting at the same moment read it empty, or made another:
    the chain would be keyed differently by each process."""
    for attempt in range(5):
        instance = str(tmp_path / f"instance{attempt}")
        found = started_together(development_key, instance, "audit.key")
        assert len(set(found)) == 1, found
        assert len(found[0]) == 64, found  # 32 bytes in hex, never empty
        path = Path(instance, "audit.key")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert os.listdir(instance) == ["audit.key"]
