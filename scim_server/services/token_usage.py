"""When each token was last used: ``scim_tokens.last_used_at``, to the minute.

Every request authenticates its token, and most are SCIM reads, which never write.
So the use is written only when the token row read at authentication shows it is
stale (older than ``WRITE_EVERY``): at most one write a minute per token, on a
session of its own (never the request's transaction), by a conditional UPDATE
that a concurrent request's write makes a no-op. It must never slow or fail the
request: a row another transaction has locked is skipped (``SKIP LOCKED`` on
PostgreSQL), a busy SQLite database is not waited for (``busy_timeout`` 0 for
that statement), and any database error is logged and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from scim_server.db import utcnow
from scim_server.models import ScimToken

log = logging.getLogger(__name__)

WRITE_EVERY = timedelta(seconds=60)

_STALE = (ScimToken.org_id == bindparam("b_org_id")) & (ScimToken.id == bindparam("b_token_id"))
# Built once. The inner SELECT takes the row only if no other transaction holds it.
_NOTE_USE = (
    update(ScimToken)
    .where(
        _STALE,
        ScimToken.id.in_(
            select(ScimToken.id)
            .where(
                _STALE,
                or_(
                    ScimToken.last_used_at.is_(None),
                    ScimToken.last_used_at < bindparam("stale_before"),
                ),
            )
            .with_for_update(skip_locked=True)
        ),
    )
    .values(last_used_at=bindparam("b_now"))
    .execution_options(synchronize_session=False)
)


def is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    """True when the use should be written (never written, or longer ago than WRITE_EVERY)."""
    return last_used_at is None or last_used_at < now - WRITE_EVERY


def note_use(
    factory: Callable[[], Session],
    org_id: str,
    token_id: str,
    last_used_at: datetime | None,
    now: datetime | None = None,
) -> bool:
    """Write the token's use if the row read at authentication is stale; True if written.

    ``factory``: sessions apart from the request's transaction (a reader's deferred BEGIN
    on SQLite; statement sessions on PostgreSQL, where the UPDATE is its own transaction),
    on the request's connection when it shares one (``Database.side_sessions``).
    """
    now = now or utcnow()
    if not is_stale(last_used_at, now):
        return False
    params = {
        "b_org_id": org_id,
        "b_token_id": token_id,
        "b_now": now,
        "stale_before": now - WRITE_EVERY,
    }
    session = factory()
    try:
        connection = session.connection()
        if connection.dialect.name == "sqlite":
            # Not worth waiting for: another writer holds the database, the next use writes.
            busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
            connection.exec_driver_sql("PRAGMA busy_timeout=0")
            try:
                written = bool(connection.execute(_NOTE_USE, params).rowcount)
            finally:
                connection.exec_driver_sql(f"PRAGMA busy_timeout={int(busy or 0)}")
        else:
            written = bool(connection.execute(_NOTE_USE, params).rowcount)
        session.commit()
        return written
    except SQLAlchemyError as exc:
        log.info("token %s: last use not recorded (%s)", token_id, type(exc).__name__)
        session.rollback()
        return False
    finally:
        session.close()
