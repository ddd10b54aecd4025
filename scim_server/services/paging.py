"""List pages (RFC 7644 §3.4.2.4): ``startIndex`` and ``count`` without reading the whole table.

A page is an OFFSET into an ordering, and an OFFSET walks every entry it
skips. Three things keep deep pages cheap:

- from ``DEFERRED_JOIN_OFFSET`` on, the skip runs over the ordering index alone
  and the page's rows are then read by key;
- an unfiltered list in the default order takes ``totalResults`` from
  ``resource_counts`` instead of counting the organization;
- and, for that list, each app keeps *anchors* (an ``AnchorCache`` the caller
  passes in): the key of every
  ``ANCHOR_STEP``-th resource, valid for one ``generation`` of the set. A deep
  page seeks to the nearest anchor by index and skips fewer than
  ``ANCHOR_STEP`` entries from there.

The anchors are a cache of what the database holds, checked against the
generation read in the same transaction; a stale set is never used.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, func, select, tuple_
from sqlalchemy.orm import Session

from scim_server.db import row_columns
from scim_server.services import counts

# From this offset on, a page is read as ids first, then rows (a "deferred join").
DEFERRED_JOIN_OFFSET = 500
ANCHOR_STEP = 256
# A set that keeps changing is re-anchored at most this often per process;
# in between its deep pages take the deferred-join path.
REBUILD_EVERY_S = 5.0
MAX_ANCHORED_SETS = 64


def page(
    session: Session,
    model: Any,
    org_id: str,
    where: ColumnElement[bool] | None,
    order: list[Any],
    offset: int,
    limit: int,
) -> tuple[int, list[Any]]:
    """Count the matches and read one page of them.

    A page that ends short of ``limit`` is the last one: its end is the total, and the
    count is not asked (a lookup by userName, found or not, is then one statement).
    """
    conditions = [model.org_id == org_id]
    if where is not None:
        conditions.append(where)
    counting = select(func.count()).select_from(model).where(*conditions)
    if limit == 0:
        return session.scalar(counting) or 0, []
    conn = session.connection()
    if offset < DEFERRED_JOIN_OFFSET:
        rows = _rows(conn, model, org_id, conditions, order, offset, limit)
        return _total(conn, counting, None, rows, offset, limit), rows
    total = conn.scalar(counting) or 0
    if offset >= total:
        return total, []
    return total, _rows(conn, model, org_id, conditions, order, offset, limit)


def _total(
    conn: Connection,
    counting: Any,
    params: dict[str, Any] | None,
    rows: list[Any],
    offset: int,
    limit: int,
) -> int:
    """totalResults for ``rows``, the page at ``offset``: a short page ends at the total;
    after a full page, or none at all after ``offset``, the count says how many there are."""
    if len(rows) < limit and (rows or offset == 0):
        return offset + len(rows)
    return conn.scalar(counting, params) or 0


@dataclass(frozen=True)
class PreparedPage:
    """The count and the page of a filter in the default order (created, id), built once:
    the organization and the filter's values are bound parameters (``org_id``, and those
    the filter's translation names). Executing the same statements again also spares
    SQLAlchemy their cache keys. Only for pages before ``DEFERRED_JOIN_OFFSET``."""

    counting: Any
    rows: Any

    @classmethod
    def of(cls, model: Any, where: ColumnElement[bool]) -> PreparedPage:
        conditions = [model.org_id == bindparam("org_id"), where]
        counting = select(func.count()).select_from(model).where(*conditions)
        rows = (
            select(*row_columns(model))
            .where(*conditions)
            .order_by(model.created_at, model.id)
            .offset(bindparam("page_offset"))
            .limit(bindparam("page_limit"))
        )
        return cls(counting, rows)

    def read(
        self, session: Session, params: dict[str, Any], offset: int, limit: int
    ) -> tuple[int, list[Any]]:
        """(total, rows) as ``page`` gives them; ``params`` binds ``org_id`` and the filter."""
        assert offset < DEFERRED_JOIN_OFFSET
        conn = session.connection()
        if limit == 0:
            return conn.scalar(self.counting, params) or 0, []
        at = {**params, "page_offset": offset, "page_limit": limit}
        rows = list(conn.execute(self.rows, at).all())
        return _total(conn, self.counting, params, rows, offset, limit), rows


def page_all(
    session: Session,
    model: Any,
    resource_type: str,
    org_id: str,
    offset: int,
    limit: int,
    anchors: AnchorCache,
) -> tuple[int, list[Any]]:
    """A page of all the organization's resources in the default order (created, id).

    ``anchors`` is the app's cache of keys along that order (deep pages seek from one).
    """
    order = [model.created_at, model.id]
    counted = counts.read(session, org_id, resource_type)
    if counted is None:
        return page(session, model, org_id, None, order, offset, limit)
    total, generation = counted
    if limit == 0 or offset >= total:
        return total, []
    conn = session.connection()
    conditions: list[Any] = [model.org_id == org_id]
    anchor = None
    if offset >= DEFERRED_JOIN_OFFSET:
        anchor = anchors.find(conn, model, org_id, generation, offset)
    if anchor is not None:
        key, position = anchor
        conditions.append(tuple_(model.created_at, model.id) >= key)
        offset -= position
    return total, _rows(conn, model, org_id, conditions, order, offset, limit)


def _rows(
    conn: Connection,
    model: Any,
    org_id: str,
    conditions: list[Any],
    order: list[Any],
    offset: int,
    limit: int,
) -> list[Any]:
    if offset < DEFERRED_JOIN_OFFSET:
        # Rows, not ORM objects: a page is only rendered, and rows cost a fraction.
        stmt = select(*row_columns(model)).where(*conditions).order_by(*order)
        return list(conn.execute(stmt.offset(offset).limit(limit)).all())
    # Skip over the ordering index alone (an index-only scan), then read the
    # page's rows by key: skipping whole rows made PostgreSQL sort the
    # organization on disk for every deep page.
    ids = list(
        conn.scalars(
            select(model.id).where(*conditions).order_by(*order).offset(offset).limit(limit)
        )
    )
    if not ids:
        return []
    found = conn.execute(
        select(*row_columns(model)).where(model.org_id == org_id, model.id.in_(ids))
    ).all()
    by_id = {row.id: row for row in found}
    # A row deleted between the two reads is left out, as if the page had been read after.
    return [by_id[i] for i in ids if i in by_id]


@dataclass
class _Anchored:
    generation: int
    keys: list[tuple[Any, str]]  # keys[i]: (created_at, id) at position i * ANCHOR_STEP
    built_at: float


class AnchorCache:
    """Anchors for the unfiltered lists of recently paged organizations (one per app)."""

    def __init__(self) -> None:
        self._sets: OrderedDict[tuple[str, str], _Anchored] = OrderedDict()
        self._lock = threading.Lock()

    def find(
        self, conn: Connection, model: Any, org_id: str, generation: int, offset: int
    ) -> tuple[tuple[Any, str], int] | None:
        """The key at or before ``offset`` and its position, or None (use the plain path)."""
        name = (model.__tablename__, org_id)
        with self._lock:
            anchored = self._sets.get(name)
            if anchored is not None:
                self._sets.move_to_end(name)
        if anchored is None or anchored.generation != generation:
            if anchored is not None and time.monotonic() - anchored.built_at < REBUILD_EVERY_S:
                return None
            anchored = self._build(conn, model, org_id, generation)
            with self._lock:
                self._sets[name] = anchored
                self._sets.move_to_end(name)
                while len(self._sets) > MAX_ANCHORED_SETS:
                    self._sets.popitem(last=False)
        index = offset // ANCHOR_STEP
        if index >= len(anchored.keys):
            return None
        return anchored.keys[index], index * ANCHOR_STEP

    def __len__(self) -> int:
        """How many sets (a resource type of an organization) are anchored."""
        with self._lock:
            return len(self._sets)

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()

    @staticmethod
    def _build(conn: Connection, model: Any, org_id: str, generation: int) -> _Anchored:
        # One pass over the ordering index; only every ANCHOR_STEP-th key is kept.
        rows = conn.execute(
            select(model.created_at, model.id)
            .where(model.org_id == org_id)
            .order_by(model.created_at, model.id)
        ).all()
        keys = [(row[0], row[1]) for row in rows[::ANCHOR_STEP]]
        return _Anchored(generation, keys, time.monotonic())
