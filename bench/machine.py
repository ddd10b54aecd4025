"""What the figures were measured on: they mean little without it."""

from __future__ import annotations

import os
import platform
import sqlite3
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.backends import PG_VERSIONS


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def machine_info(final: bool = False) -> dict[str, Any]:
    """The machine and versions; ``final`` adds what is only known at the end."""
    load = [round(x, 2) for x in os.getloadavg()]
    if final:
        return {"loadavg_end": load, "postgresql": PG_VERSIONS[-1] if PG_VERSIONS else None}
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {
            name: metadata.version(name)
            for name in ("flask", "sqlalchemy", "gunicorn", "psycopg", "werkzeug")
        },
        "loadavg_start": load,
    }
