"""The database server's CPU time, for the in-process cost tools (``bench.write_cost``,
``bench.read_cost``): what a request costs PostgreSQL, beside the Python process's own CPU.

Read from /proc: user + system time of each live server process whose title names the
database (``postgres: [CLUSTER: ]USER DATABASE HOST(PORT) STATE``), that is the backends
serving it. Only that database's: the server is shared (other databases' tests and
benchmarks run on it, and would count), and the tools hold their connections open
through a measurement (a pool), so no CPU is lost to a backend that exits. The server's
background processes (WAL writer, checkpointer) are left out. None ("n/a") where it
cannot be read: SQLite, a database on another host, no /proc.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy import make_url

LOCAL_HOSTS = (None, "", "localhost", "127.0.0.1", "::1")
# The process title of a backend: "postgres: " [cluster name ": "] user database ...
_TITLE = re.compile(r"postgres: (?:\S+: )?(?P<user>\S+) (?P<database>\S+) ")


class ServerCpu:
    """CPU seconds of the backends of one local PostgreSQL database (``seconds``)."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        local = parsed.get_backend_name() == "postgresql" and parsed.host in LOCAL_HOSTS
        self.database = parsed.database if local and Path("/proc").is_dir() else None
        self.tick = os.sysconf("SC_CLK_TCK")

    def seconds(self) -> float | None:
        """The CPU time so far of the database's live backends; None when not measurable."""
        if self.database is None:
            return None
        ticks, found = 0, False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                title = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
                match = _TITLE.match(title.decode(errors="replace"))
                if match is None or match["database"] != self.database:
                    continue
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # ended meanwhile, or not ours to read
            # After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
            found = True
        return ticks / self.tick if found else None


def per_request_ms(before: float | None, after: float | None, count: int) -> float | None:
    """Milliseconds per request between two ``seconds`` readings, or None."""
    if before is None or after is None:
        return None
    return (after - before) / count * 1000


def shown(ms: float | None, digits: int = 2) -> str:
    return "n/a" if ms is None else f"{ms:.{digits}f}"
