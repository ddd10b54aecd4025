"""The databases under test: a SQLite file in a temporary directory, and PostgreSQL.

Each run starts from an empty database so that results never depend on what
an earlier run left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# SCIM_BENCH_PG_DATABASE: another name, for a run beside someone else's on one server
# (each run drops and re-creates its database; the peers' is this name + "_django").
PG_DATABASE = os.environ.get("SCIM_BENCH_PG_DATABASE", "scim_bench")
if not re.fullmatch(r"[a-z_][a-z0-9_]*", PG_DATABASE):
    raise SystemExit("SCIM_BENCH_PG_DATABASE: lower-case letters, digits and _ only")
BACKENDS = ("sqlite", "postgresql")


@contextmanager
def sqlite_database() -> Iterator[str]:
    """A fresh SQLite file, removed (with its WAL) afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="scim-bench-"))
    try:
        yield f"sqlite:///{folder / 'scim.db'}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def recreate_database(admin_url: str, name: str) -> str:
    """Drop database ``name`` (closing its sessions) and create it empty; the server's version."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {name}"))
            return str(conn.execute(text("SHOW server_version")).scalar_one())
    finally:
        admin.dispose()


@contextmanager
def postgres_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """Drop and create ``scim_bench``; it is kept afterwards for inspection."""
    version = recreate_database(admin_url, PG_DATABASE)
    base = admin_url.rsplit("/", 1)[0]
    PG_VERSIONS.append(str(version))
    yield f"{base}/{PG_DATABASE}"


# The server version seen by the last postgres_database(), for the report.
PG_VERSIONS: list[str] = []


@contextmanager
def database(backend: str, pg_admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A SQLAlchemy URL to an empty database of ``backend``."""
    if backend == "sqlite":
        with sqlite_database() as url:
            yield url
    elif backend == "postgresql":
        with postgres_database(pg_admin_url) as url:
            yield url
    else:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
