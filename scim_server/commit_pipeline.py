"""PostgreSQL: a transaction's last statement sent together with its COMMIT.

A write's last statement (the audit events, the head's move and the product events:
``audit.recorder.flush``) runs while the organization's count row and audit head are
locked, and they stay locked until the COMMIT is done. Sent and waited for on its own,
then the COMMIT sent and waited for, the locks were held over two round trips and, in
between, over the thread's wait for the GIL (up to the 5 ms switch interval while the
worker's other threads run Python): under concurrent writes of one organization that
wait is the other writers' wait. In psycopg's pipeline mode the statement is queued and
goes out with the COMMIT that SQLAlchemy sends next: one round trip, and nothing of the
Python process between the statement and the commit.

``sending_with_commit`` is only for a statement after which the transaction runs nothing
but its COMMIT: in pipeline mode a statement's outcome (its error, its row count) is
known only at the next synchronisation point, here the COMMIT, which then raises the
statement's error as its own, and the transaction rolls back as for any failed commit.
The pipeline ends as the transaction does (``after_commit``, ``after_rollback``), before
the session releases the connection, or with the COMMIT's failure (``handle_error``); a
connection handed back to the pool still in pipeline mode leaves it there (``install_on``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg import pq
from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# The pool record's info: the open pipeline (psycopg's ``Pipeline``); session.info: that
# record's info, for the session's end of transaction.
_OPEN = "scim_commit_pipeline"


@contextmanager
def sending_with_commit(session: Session, connection: Connection) -> Iterator[None]:
    """The statements run on ``connection`` in this block (the transaction's last) are sent
    in pipeline mode: they go out with the COMMIT that follows."""
    driver = connection.connection.driver_connection
    pipeline = driver.pipeline()  # type: ignore[union-attr]
    pipeline.__enter__()
    connection.info[_OPEN] = (pipeline, driver)
    session.info[_OPEN] = connection.info
    try:
        yield
    except BaseException:
        _leave(session)
        raise


def sent_with_commit(session: Session) -> bool:
    """Whether this session's transaction has a statement waiting for its COMMIT."""
    return _OPEN in session.info


def _finish(record_info: dict[Any, Any]) -> None:
    """Out of pipeline mode, the transaction ended: a COMMIT that failed in pipeline mode
    (its statement's error) leaves the transaction open and aborted, not ended as a failed
    COMMIT otherwise does, so it is rolled back here."""
    opened = record_info.pop(_OPEN, None)
    if opened is None:
        return
    pipeline, dbapi_connection = opened
    try:
        pipeline.__exit__(None, None, None)
        status = dbapi_connection.info.transaction_status
        if status in (pq.TransactionStatus.INERROR, pq.TransactionStatus.INTRANS):
            dbapi_connection.rollback()
    except Exception:  # never over the transaction's own error: the COMMIT raised it already
        # A lost connection: the pool's disconnect handling discards it.
        log.debug("leaving psycopg's pipeline mode", exc_info=True)


def _leave(session: Session, *_args: Any) -> None:
    """The session's transaction ended (committed or rolled back)."""
    record_info = session.info.pop(_OPEN, None)
    if record_info is not None:
        _finish(record_info)


def _on_error(context: Any) -> None:
    """A failed COMMIT (or anything else failing) on a connection in pipeline mode: leave
    it, the transaction rolled back, before the error reaches the caller."""
    connection = context.connection
    if connection is not None and not connection.invalidated:
        record_info = connection.info
        if _OPEN in record_info:
            _finish(record_info)


def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
    if _OPEN in record.info:
        _finish(record.info)


def install() -> None:
    """End the pipeline with the session's transaction; idempotent."""
    for name in ("after_commit", "after_rollback"):
        if not event.contains(Session, name, _leave):
            event.listen(Session, name, _leave)


def install_on(engine: Engine) -> None:
    """A PostgreSQL engine: a failed COMMIT, or a connection checked in still in pipeline
    mode, leaves it (``_finish``)."""
    for name, listener in (("handle_error", _on_error), ("checkin", _on_checkin)):
        if not event.contains(engine, name, listener):
            event.listen(engine, name, listener)


install()
