"""Schema migrations (Alembic), run programmatically by ``scim-server db upgrade`` and ``serve``.

Every process that starts migrates first (``serve``, ``worker``, any command), so several
may start on one database at once: they take turns, the first migrates and the others
find the head. On PostgreSQL a transaction-scoped advisory lock orders them; on SQLite an
``flock`` on a file beside the database (``<database>-migrate``), then ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key: nodes starting together migrate one at a time.
MIGRATION_LOCK = 0x5C1A_0001


class MigrationError(RuntimeError):
    """The schema cannot be brought to this release's: the database cannot be reached, or a
    release this one does not know migrated it. The message is one line for the operator."""


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there (idempotent).

    Raises ``MigrationError`` when the database cannot be reached or is at a revision this
    release does not know (a newer release migrated it: running this one's code on it, or
    Alembic's "Can't locate revision" traceback, helps nobody)."""
    with _sqlite_turn(engine):
        try:
            connection = engine.connect()
        except OperationalError as exc:
            raise MigrationError(
                f"cannot connect to the database at {_shown(engine)}: {_reason(exc)}"
            ) from None
        with connection:
            if connection.dialect.name == "sqlite":
                # The write lock before alembic_version is read: a read transaction cannot
                # become a write once another process has written ("database is locked").
                connection.execution_options(sqlite_immediate=True)
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                    )
                cfg = alembic_config(engine)
                cfg.attributes["connection"] = connection
                _check_known(connection, cfg)
                command.upgrade(cfg, revision)


def _check_known(connection: Connection, cfg: Config) -> None:
    """A ``MigrationError`` when the database's revision is none of this release's."""
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        return
    script = ScriptDirectory.from_config(cfg)
    try:
        script.get_revision(current)
    except CommandError:
        raise MigrationError(
            f"the database is at revision {current}, which this release does not know (its "
            f"newest is {script.get_current_head()}): a newer release migrated it. Run that "
            "release, or restore the backup taken before the upgrade."
        ) from None


@contextlib.contextmanager
def _sqlite_turn(engine: Engine) -> Iterator[None]:
    """On a SQLite file, this process's turn to migrate: an exclusive ``flock`` on
    ``<database>-migrate``, waited for as long as the migration before takes (as
    PostgreSQL's advisory lock is); the kernel drops it if the process dies. Not the
    writers' file (``sqlite_writers``): this process's own writes queue on that one.
    Without a lock file (a read-only directory, a memory database) SQLite decides."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:" or path.startswith("file:"):
        yield
        return
    try:
        fd = os.open(path + "-migrate", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # the lock goes with the descriptor


def _shown(engine: Engine) -> str:
    """The database's URL without its password."""
    return engine.url.render_as_string(hide_password=True)


def _reason(exc: OperationalError) -> str:
    """The driver's first line (psycopg adds hints on the next ones)."""
    lines = str(exc.orig).strip().splitlines()
    return lines[0].strip() if lines else type(exc.orig).__name__


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
