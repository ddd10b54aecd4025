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

A page of users also shows each one's groups, roles and license names:
``page_extras`` reads them for the whole page in one statement, the ids bound as
one value. Rows come back as named tuples (``plain_rows``): rendering reads them
by name thousands of times a page.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from functools import cache
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    String,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    null,
    select,
    text,
    true,
    tuple_,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Result
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from scim_server import jsonfast
from scim_server.db import JSONB_AS_TEXT, KeyRead, reuse_plan, row_columns
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
        return _total(lambda: conn.scalar(counting), rows, offset, limit), rows
    total = conn.scalar(counting) or 0
    if offset >= total:
        return total, []
    return total, _rows(conn, model, org_id, conditions, order, offset, limit)


def _total(count: Callable[[], Any], rows: list[Any], offset: int, limit: int) -> int:
    """totalResults for ``rows``, the page at ``offset``: a short page ends at the total;
    after a full page, or none at all after ``offset``, ``count()`` says how many there are."""
    if len(rows) < limit and (rows or offset == 0):
        return offset + len(rows)
    return count() or 0


@dataclass(frozen=True)
class PreparedPage:
    """The count and the page of a filter in the default order (created, id), built once:
    the organization and the filter's values are bound parameters (``org_id``, and those
    the filter's translation names). Each is executed from its compiled form
    (``db.KeyRead``): neither SQLAlchemy's cache key of the statement nor its compiled
    cache is paid per request. Only for pages before ``DEFERRED_JOIN_OFFSET``."""

    model: Any
    counting: Any
    rows: Any
    count_read: KeyRead
    rows_read: KeyRead

    @classmethod
    def of(cls, model: Any, where: ColumnElement[bool], *, reuse: bool = False) -> PreparedPage:
        """``reuse``: statements marked ``reuse_plan``."""
        conditions = [model.org_id == bindparam("org_id"), where]
        counting = select(func.count()).select_from(model).where(*conditions)
        rows = (
            _page_select(model)
            .where(*conditions)
            .order_by(model.created_at, model.id)
            .offset(bindparam("page_offset"))
            .limit(bindparam("page_limit"))
        )
        if reuse:
            counting, rows = reuse_plan(counting), reuse_plan(rows)
        return cls(
            model,
            counting,
            rows,
            KeyRead(counting),
            KeyRead(rows),
        )

    def read(
        self, session: Session, params: dict[str, Any], offset: int, limit: int
    ) -> tuple[int, list[Any]]:
        """(total, rows) as ``page`` gives them; ``params`` binds ``org_id`` and the filter."""
        assert offset < DEFERRED_JOIN_OFFSET
        conn = session.connection()
        if limit == 0:
            return self.count_read.execute(conn, params).scalar() or 0, []
        at = {**params, "page_offset": offset, "page_limit": limit}
        rows = plain_rows(self.model, self.rows_read.execute(conn, at))
        return _total(
            lambda: self.count_read.execute(conn, params).scalar(), rows, offset, limit
        ), rows


class Page(NamedTuple):
    """A page of ``page_all``: ``totalResults``, the rows, and for users read by a deep page's
    one statement the organization's audit head in the same snapshot (``PageExtras.head``;
    None when not read)."""

    total: int
    rows: list[Any]
    head: int | None = None


def page_all(
    session: Session,
    model: Any,
    resource_type: str,
    org_id: str,
    offset: int,
    limit: int,
    anchors: AnchorCache,
    *,
    slim: bool = False,
) -> Page:
    """A page of all the organization's resources in the default order (created, id).

    ``anchors`` is the app's cache of keys along that order (deep pages seek from one).
    ``slim`` (users): the rows' ``data`` is not read (None), for a page whose users mostly
    come already rendered (``scim.user_fragments``); ``with_stored`` reads it for the others.
    """
    order = [model.created_at, model.id]
    conn = session.connection()
    if offset >= DEFERRED_JOIN_OFFSET and limit > 0:
        guessed = _guessed_page(conn, model, resource_type, org_id, offset, limit, anchors, slim)
        if guessed is not None:
            return guessed
    counted = counts.read(session, org_id, resource_type)
    if counted is None:
        return Page(*page(session, model, org_id, None, order, offset, limit))
    total, generation = counted
    if limit == 0 or offset >= total:
        return Page(total, [])
    anchor = None
    if offset >= DEFERRED_JOIN_OFFSET:
        anchor = anchors.find(conn, model, org_id, generation, offset)
    if anchor is None:
        if offset < DEFERRED_JOIN_OFFSET:
            at = {"org_id": org_id, "page_offset": offset, "page_limit": limit}
            return Page(total, plain_rows(model, _first_pages(model, slim).execute(conn, at)))
        conditions = [model.org_id == org_id]
        return Page(total, _rows(conn, model, org_id, conditions, order, offset, limit, slim))
    (created_at, key_id), position = anchor
    params = {
        "org_id": org_id,
        "key_created": created_at,
        "key_id": key_id,
        "page_offset": offset - position,
        "page_limit": limit,
    }
    return Page(total, plain_rows(model, _from_anchor(model, slim).execute(conn, params)))


def _guessed_page(
    conn: Connection,
    model: Any,
    resource_type: str,
    org_id: str,
    offset: int,
    limit: int,
    anchors: AnchorCache,
    slim: bool = False,
) -> Page | None:
    """A deep page read from the anchor the cache holds, with the count row's total and
    generation (and for users the audit head) in the same statement (one statement instead
    of two): kept only if that generation is the anchors' (they are then the database's,
    read in the same snapshot) and the page is not empty; otherwise None, and the page is
    read as before."""
    guess = anchors.peek(model, org_id, offset)
    if guess is None:
        return None
    generation, (created_at, key_id), position = guess
    params = {
        "org_id": org_id,
        "resource_type": resource_type,
        "key_created": created_at,
        "key_id": key_id,
        "page_offset": offset - position,
        "page_limit": limit,
    }
    statement = _from_anchor_counted(model, slim)
    rows, counted = plain_rows_counted(model, statement.execute(conn, params))
    if not rows or counted is None:
        return None
    if counted[1] != generation:
        anchors.stale(model, org_id, generation)
        return None
    return Page(counted[0], rows, counted[2] if len(counted) > 2 else None)


# A page's statements are built once per model and executed from their compiled forms
# (``db.KeyRead``): SQLAlchemy's cache key of a page's select (its 16 columns) and the
# compiled-cache lookup were paid on every page.


@cache
def _first_pages(model: Any, slim: bool = False) -> KeyRead:
    """A page of all of ``model`` in the default order before ``DEFERRED_JOIN_OFFSET``
    (the SQL ``_rows`` makes for it: the offset and limit bound)."""
    stmt = (
        _page_select(model, slim=slim)
        .where(model.org_id == bindparam("org_id"))
        .order_by(model.created_at, model.id)
        .offset(bindparam("page_offset"))
        .limit(bindparam("page_limit"))
    )
    return KeyRead(stmt)


@cache
def _from_anchor(model: Any, slim: bool = False) -> KeyRead:
    """A page of ``model`` in the default order from an anchor's key on: built once, and
    one generic plan on PostgreSQL (an index range in that order, whatever the values)."""
    return KeyRead(reuse_plan(_anchored_select(model, slim=slim)))


@cache
def _from_anchor_counted(model: Any, slim: bool = False) -> KeyRead:
    """``_from_anchor`` with the count row's total and generation on every row, and for
    users the organization's audit head (each an uncorrelated scalar subquery: read once
    per statement)."""
    from scim_server.models import AuditHead, ResourceCount

    of_set = (
        ResourceCount.org_id == bindparam("org_id"),
        ResourceCount.resource_type == bindparam("resource_type"),
    )
    total = select(ResourceCount.total).where(*of_set).scalar_subquery()
    generation = select(ResourceCount.generation).where(*of_set).scalar_subquery()
    more: tuple[Any, ...] = (total.label("set_total"), generation.label("set_generation"))
    if model.__tablename__ in _PAGE_FIELDS:
        of_org = AuditHead.org_id == bindparam("org_id")
        more += (select(AuditHead.seq).where(of_org).scalar_subquery().label("set_head"),)
    stmt = reuse_plan(_anchored_select(model, *more, slim=slim))
    return KeyRead(stmt)


def _anchored_select(model: Any, *more: Any, slim: bool = False) -> Any:
    key = tuple_(bindparam("key_created", type_=model.created_at.type), bindparam("key_id"))
    return (
        _page_select(model, *more, slim=slim)
        .where(model.org_id == bindparam("org_id"), tuple_(model.created_at, model.id) >= key)
        .order_by(model.created_at, model.id)
        .offset(bindparam("page_offset"))
        .limit(bindparam("page_limit"))
    )


def _rows(
    conn: Connection,
    model: Any,
    org_id: str,
    conditions: list[Any],
    order: list[Any],
    offset: int,
    limit: int,
    slim: bool = False,
) -> list[Any]:
    if offset < DEFERRED_JOIN_OFFSET:
        # Rows, not ORM objects: a page is only rendered, and rows cost a fraction.
        stmt = _page_select(model, slim=slim).where(*conditions).order_by(*order)
        return plain_rows(model, conn.execute(stmt.offset(offset).limit(limit)))
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
    return rows_by_ids(conn, model, org_id, ids, slim)


def rows_by_ids(
    conn: Connection, model: Any, org_id: str, ids: list[str], slim: bool = False
) -> list[Any]:
    """The page rows of ``ids``, in that order; a row deleted since the ids were read is left
    out, as if the page had been read after."""
    stmt = _page_select(model, slim=slim).where(model.org_id == org_id, model.id.in_(ids))
    by_id = {row.id: row for row in plain_rows(model, conn.execute(stmt))}
    return [by_id[i] for i in ids if i in by_id]


def with_stored(conn: Connection, org_id: str, rows: list[Any], ids: set[str]) -> list[Any]:
    """A slim page's users (``page_all(slim=True)``) with the rows of ``ids`` read again
    whole, ``data`` included, in one statement. Each such row is the one read now (its
    columns and document of one version, should it have changed since the page's read);
    one deleted since is left out, as ``_rows`` leaves it out."""
    from scim_server.models import User

    if not ids:
        return rows
    fresh = {r.id: r for r in rows_by_ids(conn, User, org_id, [r.id for r in rows if r.id in ids])}
    return [fresh[r.id] if r.id in ids else r for r in rows if r.id not in ids or r.id in fresh]


# The fields of a page's row of a user that its product view shows (``users.product_view``).
_PRODUCT_VIEW_FIELDS = (
    "status",
    "login_name",
    "contact_id",
    "last_login_at",
    "license_id",
    "license_source",
    "license_rule",
    "license_wanted_id",
)
# What a page of users reads of each row: what the representation (``render.user_to_scim``)
# and the product view show, and no more (each column read costs SQLite time on every row
# of the page). A page of another resource reads all its columns.
_PAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "users": (
        "id",
        "user_name",
        "external_id",
        "active",
        "data",
        "version",
        "created_at",
        "updated_at",
        *_PRODUCT_VIEW_FIELDS,
    )
}
# Those fields of a page's row, as a tuple: what a product view written for the row stays
# valid for (``user_fragments``).
product_fields: Callable[[Any], tuple[Any, ...]] = itemgetter(
    *(_PAGE_FIELDS["users"].index(name) for name in _PRODUCT_VIEW_FIELDS)
)


class _StoredText(FunctionElement[Any]):
    """A stored JSON document as its text, not parsed by the driver: on SQLite UTF-8 bytes
    (``CAST(... AS BLOB)``: the driver copies the bytes instead of decoding them, and the
    long-digit check and parsing take bytes without encoding the text again); elsewhere
    the column itself, which psycopg hands over as text in a statement marked
    ``JSONB_AS_TEXT`` (``_page_select``): a cast in SQL would be evaluated for every row an
    OFFSET skips too (``CAST(data AS TEXT)`` doubled a deep page's statement time), the
    ``jsonb`` output only for the rows sent. A page parses only the documents of users
    it renders afresh (``stored_documents``): most come already rendered
    (``scim.user_fragments``)."""

    inherit_cache = True
    name = "stored_text"


@compiles(_StoredText)
def _stored_text(element: _StoredText, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_StoredText, "sqlite")
def _stored_text_sqlite(element: _StoredText, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS BLOB)"


@cache
def page_columns(model: Any, slim: bool = False) -> tuple[Any, ...]:
    """The columns a page of ``model`` reads, labelled with their attribute names.

    ``created_at`` and ``updated_at`` are read as naive UTC datetimes (what ``UTCDateTime``
    stores): a page only formats them (``render._iso``), and making each of them aware took
    longer than reading it. A page of users reads its ``_PAGE_FIELDS`` only, without
    SQLAlchemy's result processing (``plain_rows``). ``slim``: a NULL in place of the
    stored document (``page_all``)."""
    fields = _PAGE_FIELDS.get(model.__tablename__)
    if fields is not None:
        stored = null() if slim else _StoredText(model.data)
        return tuple((stored if f == "data" else getattr(model, f)).label(f) for f in fields)
    naive = {"created_at", "updated_at"}
    return tuple(
        type_coerce(getattr(model, c.key), DateTime()).label(c.key) if c.key in naive else c
        for c in row_columns(model)
    )


def _page_select(model: Any, *more: Any, slim: bool = False) -> Any:
    """A select of ``page_columns(model)`` (and ``more`` after them): for users, marked
    ``JSONB_AS_TEXT``, their stored documents handed over by psycopg as text, as SQLite's
    (``_StoredText``), and parsed only for the users a page renders afresh."""
    stmt = select(*page_columns(model, slim), *more)
    if model.__tablename__ in _PAGE_FIELDS:
        stmt = stmt.execution_options(**{JSONB_AS_TEXT: True})
    return stmt


@cache
def _row_type(model: Any) -> Any:
    return namedtuple(f"{model.__name__}Row", [column.key for column in page_columns(model)])


def plain_rows(model: Any, result: Result[Any]) -> list[Any]:
    """The rows of a select of ``page_columns(model)`` as named tuples of the same fields:
    a page's rows are read by name a few thousand times (the representation, the product
    view), and a SQLAlchemy row's attribute costs ten times a tuple's."""
    if model.__tablename__ == "users":
        return _user_rows(_row_type(model), result)[0]
    make = _row_type(model)._make
    return [make(row) for row in result.all()]  # one fetchall: a fetch per row cost more


def plain_rows_counted(model: Any, result: Result[Any]) -> tuple[list[Any], tuple[Any, ...] | None]:
    """``plain_rows`` of a select of ``page_columns(model)`` followed by more columns
    (``_from_anchor_counted``'s total and generation, and for users the audit head), and
    those (None without rows)."""
    if model.__tablename__ == "users":
        return _user_rows(_row_type(model), result, trailing=3)
    make = _row_type(model)._make
    raw = result.all()
    return [make(row[:-2]) for row in raw], (tuple(raw[0][-2:]) if raw else None)


# SQLAlchemy's reading of SQLite's text of a datetime column (a naive datetime).
_read_sqlite_time = sqlite.DATETIME().result_processor(sqlite.dialect(), None)
assert _read_sqlite_time is not None
_sqlite_time: Callable[[Any], Any] = _read_sqlite_time


def scim_time(value: Any) -> str:
    """A stored time of a page's row in SCIM's form (``isoformat`` of the UTC time with
    ``Z``, zero microseconds left out as ``isoformat`` leaves them out): SQLite's text in
    SQLAlchemy's own format (``2024-01-01 02:44:10.000000``) directly, other text as
    SQLAlchemy reads it, a naive datetime (PostgreSQL) as UTC."""
    if type(value) is str:
        if len(value) == 26 and value[10] == " " and value[19] == ".":
            if value.endswith(".000000"):
                return f"{value[:10]}T{value[11:19]}Z"
            return f"{value[:10]}T{value[11:]}Z"
        value = _sqlite_time(value)
    return value.isoformat() + "Z"


# The fields ``_user_rows`` unpacks by position: where it converts some.
assert tuple(_PAGE_FIELDS["users"].index(name) for name in ("active", "last_login_at")) == (3, 11)


def _user_rows(
    row_type: Any, result: Any, trailing: int = 0
) -> tuple[list[Any], tuple[Any, ...] | None]:
    """A page of users from the driver's own rows (``result.cursor``): SQLAlchemy's rows,
    its JSON type (a call per document) and its datetime processing were a third of a
    deep page. Each field as the ORM would give it, except ``created_at`` and
    ``updated_at``, as the driver reads them (SQLite's text, PostgreSQL's naive UTC
    datetime: a page only shows them, formatted for users rendered afresh by
    ``render._iso``, and compares ``updated_at`` with what it kept), and ``data``, the
    stored document's text (``_StoredText``), parsed by whoever needs it
    (``stored_documents``).
    ``trailing`` columns after the fields are left out of the rows and returned apart, the
    first row's (None without rows)."""
    try:
        raw = result.cursor.fetchall()
    finally:
        result.close()
    extra = None
    if trailing:
        extra = tuple(raw[0][-trailing:]) if raw else None
        raw = [row[:-trailing] for row in raw]
    new = tuple.__new__
    rows = []
    for (
        id_,
        user_name,
        external_id,
        active,
        data,
        version,
        created,
        updated,
        status,
        login_name,
        contact_id,
        last_login,
        license_id,
        license_source,
        license_rule,
        license_wanted_id,
    ) in raw:
        if last_login is not None:
            if type(last_login) is str:
                last_login = _sqlite_time(last_login)
            last_login = last_login.replace(tzinfo=UTC)
        values = (
            id_,
            user_name,
            external_id,
            bool(active),
            data,
            version,
            created,
            updated,
            status,
            login_name,
            contact_id,
            last_login,
            license_id,
            license_source,
            license_rule,
            license_wanted_id,
        )
        rows.append(new(row_type, values))
    return rows, extra


def stored_documents(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The stored documents of a page's rows of users (their ``data``, text as read), parsed
    as ``db.make_engine``'s ``json_deserializer`` parses a document: in one call, its
    long-digit check made once for all."""
    return jsonfast.loads_many([row.data for row in rows])


def with_documents(rows: Sequence[Any]) -> list[Any]:
    """A page's rows of users with their ``data`` parsed, for code that reads it as the ORM
    gives it (a lookup's one user rendered as GET renders it)."""
    return [row._replace(data=doc) for row, doc in zip(rows, stored_documents(rows), strict=True)]


@dataclass
class _Anchored:
    generation: int
    keys: list[tuple[Any, str]]  # keys[i]: (created_at, id) at position i * ANCHOR_STEP
    built_at: float
    stale: bool = False  # seen behind the database's generation: not guessed from (``peek``)


class AnchorCache:
    """Anchors for the unfiltered lists of recently paged organizations (one per app)."""

    def __init__(self) -> None:
        self._sets: OrderedDict[tuple[str, str], _Anchored] = OrderedDict()
        # Sets being anchored by a thread now: the others take the plain path meanwhile.
        self._building: set[tuple[str, str]] = set()
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
            # One thread anchors a set at a time: each build scans the set's whole ordering
            # index (about 50 ms at 100,000 users), and after a change every thread of a
            # worker would otherwise scan it at once.
            with self._lock:
                if name in self._building:
                    return None
                self._building.add(name)
            try:
                anchored = self._build(conn, model, org_id, generation)
            finally:
                with self._lock:
                    self._building.discard(name)
            with self._lock:
                self._sets[name] = anchored
                self._sets.move_to_end(name)
                while len(self._sets) > MAX_ANCHORED_SETS:
                    self._sets.popitem(last=False)
        index = offset // ANCHOR_STEP
        if index >= len(anchored.keys):
            return None
        return anchored.keys[index], index * ANCHOR_STEP

    def peek(self, model: Any, org_id: str, offset: int) -> tuple[int, tuple[Any, str], int] | None:
        """The generation of the anchors held for the set, the key at or before ``offset``
        and its position; None when none is held for that offset. Not checked against the
        database: the caller compares the generation with the one it reads."""
        name = (model.__tablename__, org_id)
        with self._lock:
            anchored = self._sets.get(name)
            if anchored is not None:
                self._sets.move_to_end(name)
        if anchored is None or anchored.stale:
            return None
        index = offset // ANCHOR_STEP
        if index >= len(anchored.keys):
            return None
        return anchored.generation, anchored.keys[index], index * ANCHOR_STEP

    def stale(self, model: Any, org_id: str, generation: int) -> None:
        """The database's set is past ``generation``: no more guesses from those anchors
        (``find`` rebuilds them when it may)."""
        with self._lock:
            anchored = self._sets.get((model.__tablename__, org_id))
            if anchored is not None and anchored.generation == generation:
                anchored.stale = True

    def __len__(self) -> int:
        """How many sets (a resource type of an organization) are anchored."""
        with self._lock:
            return len(self._sets)

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()

    @staticmethod
    def _build(conn: Connection, model: Any, org_id: str, generation: int) -> _Anchored:
        # One pass over the ordering index, numbered in the database, which sends only every
        # ANCHOR_STEP-th key: every key read into Python was 0.6-0.8 s of a worker's CPU at
        # 100,000 users, against 6 ms (BENCHMARKS.md, "Deep list pages, seventh step").
        order = (model.created_at, model.id)
        position = func.row_number().over(order_by=order).label("position")
        numbered = select(*order, position).where(model.org_id == org_id).subquery()
        rows = conn.execute(
            select(numbered.c.created_at, numbered.c.id)
            .where((numbered.c.position - 1) % ANCHOR_STEP == 0)
            .order_by(numbered.c.position)
        ).all()
        keys = [(row[0], row[1]) for row in rows]
        return _Anchored(generation, keys, time.monotonic())


# -- what a page of users shows beside its rows -------------------------------------------


@dataclass
class PageExtras:
    """A page of users' groups (group id, display name) and roles by user id (only those
    who have some), and the names of the licenses they hold or wait for: what
    ``users.groups_of``, ``roles_of`` and the product view read, in one statement
    (``page_extras``)."""

    groups: dict[str, list[tuple[str, str]]]
    roles: dict[str, list[dict[str, Any]]]
    license_names: dict[str, str]
    # The organization's audit head (``AuditHead.seq``) in the statement's snapshot: every
    # change of what the extras show moves it in the change's transaction (each service
    # records its audit event there), so extras read at this head are current while the
    # head has not moved (``scim.user_fragments``). None: the organization has no head yet.
    head: int | None = None


def _id_list(dialect: str, name: str) -> Any:
    """The values of one parameter holding a list of ids as a JSON array, as a FROM item
    with column ``value``: one bound value whatever the page's length (an ``IN`` of 100
    parameters is compiled again for every length, and costs SQLAlchemy more than the
    query). On PostgreSQL a JSON text too (``json_array_elements_text``), not an array: psycopg
    dumps a list by testing each element against a regular expression for quoting, 15,000
    instructions an id, a tenth of a page."""
    ids = bindparam(name, type_=String)
    if dialect == "postgresql":
        elements = func.json_array_elements_text(cast(ids, postgresql.JSON))
        return elements.table_valued("value").render_derived()
    return func.json_each(ids).table_valued("value")


_MEMBER_INDEX = "ix_group_members_org_id_member_id"


# The columns of ``_extras_statement`` after (kind, user_id): PostgreSQL's, SQLite's.
_EXTRAS_PG = ("id", "name", "role_kind", "source", "rule", "sort_key")
_EXTRAS_SQLITE = ("id", "name", "detail")


def _branch(kind: str, ids: Any, source: Any, columns: list[Any]) -> Any:
    """``(kind, user_id, *columns)``, one branch of ``_extras_statement``: ``columns``
    named as ``_EXTRAS_PG`` or ``_EXTRAS_SQLITE``, None for NULL; ``ids`` None: no user id."""
    names = _EXTRAS_PG if len(columns) == len(_EXTRAS_PG) else _EXTRAS_SQLITE
    labelled = [(null() if c is None else c).label(n) for c, n in zip(columns, names, strict=True)]
    user_id = null() if ids is None else ids.c.value
    head = [literal_column(f"'{kind}'").label("kind"), user_id.label("user_id")]
    return select(*head, *labelled).select_from(source)


def _fenced(ids: Any, columns: Any, where: Any) -> Any:
    """PostgreSQL: ``(value, *columns)`` of the rows ``columns.where(where)`` finds for each
    id of ``ids``, by a LATERAL subquery per id; both behind OFFSET 0, so that the planner
    neither pulls them up into a join it reorders nor joins what follows inside the loop
    (it did both: a hash of all the organization's memberships, then a hash of the
    groups for each id)."""
    each = columns.where(where).offset(0).lateral()
    pairs = select(ids.c.value, *each.c).select_from(ids.join(each, true()))
    return pairs.offset(0).subquery()


@cache
def _extras_statement(dialect: str, with_groups: bool) -> Any:
    """The groups (g) and roles (r) of the users in ``user_ids``, the licenses (l) in
    ``license_ids``, and the organization's audit head (h: its ``seq`` as ``id``, read in
    the same snapshot: ``PageExtras.head``). On PostgreSQL (kind, user id, id, name, role
    kind, source, rule, sort key) rows in the order ``groups_of`` and ``roles_of`` give them
    (by display name, by role name and source). On SQLite (kind, user id, id, name, detail)
    rows in no order, ``detail`` a group's sort key or a role's ``[sort key, kind, source,
    rule]`` as JSON: ``page_extras`` puts each user's in order (SQLite's sort of the page's
    rows was a quarter of the statement's instructions, and most users have one group and no
    role), and every value read costs the driver a release and retaking of the GIL (the
    NULLs of the eight columns were a tenth of the statement).

    Each user id drives its own index lookups in ``group_members`` and ``user_roles``,
    whatever the statistics say. On PostgreSQL through a LATERAL subquery (``_fenced``).
    On SQLite through CROSS JOINs from the list, which SQLite never reorders, and the member
    index named: without statistics SQLite preferred the primary key, a covering index,
    with the organization alone (all its memberships for each id: 40 ms at 10,000 users)."""
    from scim_server.models import AuditHead, Group, GroupMember, License, Role, UserRole

    org: Any = bindparam("org_id")
    pg = dialect == "postgresql"
    users = _id_list(dialect, "user_ids")
    held = _id_list(dialect, "license_ids")
    license_on = (License.org_id == org) & (License.id == held.c.value)
    head_columns: list[Any] = [cast(AuditHead.seq, String) if pg else AuditHead.seq]
    head_columns += [None] * (len(_EXTRAS_PG if pg else _EXTRAS_SQLITE) - 1)
    head = _branch("h", None, AuditHead, head_columns).where(AuditHead.org_id == org)
    parts = [
        head,
        _branch(
            "l",
            held,
            held.join(License, license_on) if pg else held.outerjoin(License, license_on),
            [License.id, License.name, None, None, None, None]
            if pg
            else [License.id, License.name, None],
        ),
    ]
    of_user = (UserRole.org_id == org) & (UserRole.user_id == users.c.value)
    if pg:
        ur = _fenced(users, select(UserRole.role_id, UserRole.source, UserRole.rule), of_user)
        role_source = ur.join(Role, (Role.org_id == org) & (Role.id == ur.c.role_id))
        source_col, rule_col = ur.c.source, ur.c.rule
        users = ur
    else:
        role_source = users.outerjoin(UserRole, of_user).outerjoin(
            Role, (Role.org_id == UserRole.org_id) & (Role.id == UserRole.role_id)
        )
        source_col, rule_col = UserRole.source, UserRole.rule
    if pg:
        roles = [Role.id, Role.name, Role.kind, source_col, rule_col, Role.name_key]
    else:
        detail = func.json_array(Role.name_key, Role.kind, source_col, rule_col)
        roles = [Role.id, Role.name, detail]
    parts.insert(0, _branch("r", users, role_source, roles))
    if with_groups:
        members = _id_list(dialect, "user_ids")
        of_member = (GroupMember.org_id == org) & (GroupMember.member_id == members.c.value)
        if pg:
            gm = _fenced(members, select(GroupMember.group_id), of_member)
            group_source = gm.join(Group, (Group.org_id == org) & (Group.id == gm.c.group_id))
            members = gm
        else:
            group_source = members.outerjoin(GroupMember, of_member).outerjoin(
                Group, (Group.org_id == GroupMember.org_id) & (Group.id == GroupMember.group_id)
            )
        if pg:
            columns = [Group.id, Group.display_name, None, None, None, Group.display_name_key]
        else:
            columns = [Group.id, Group.display_name, Group.display_name_key]
        parts.insert(0, _branch("g", members, group_source, columns))
    both: Any = union_all(*parts)
    if pg:
        cols = both.selected_columns
        statement = both.order_by(cols.kind, cols.sort_key, cols.source)
        # Lookups by key in a fixed order: one generic plan serves every page (planning
        # was a third of the statement's time on the server).
        return reuse_plan(statement)
    statement = both
    # SQLAlchemy renders neither table hints nor CROSS JOIN for SQLite: both are written in.
    # A CROSS JOIN is an inner join SQLite never reorders either: an id that finds nothing
    # gives no row (the outer joins' rows of NULLs, one per user without roles, and their
    # sorting were a third of the statement).
    sql = str(statement.compile(dialect=sqlite.dialect(paramstyle="named")))
    outer = " LEFT OUTER JOIN "
    assert sql.count(outer) == (5 if with_groups else 3), sql
    sql = sql.replace(outer, " CROSS JOIN ")
    if with_groups:
        plain = " JOIN group_members ON "
        assert sql.count(plain) == 1, sql
        sql = sql.replace(plain, f" JOIN group_members INDEXED BY {_MEMBER_INDEX} ON ")
    # Its columns named in order: SQLAlchemy then keeps the result's description with the
    # statement instead of matching the cursor's names on every execution.
    names = ("kind", "user_id", *_EXTRAS_SQLITE)
    return text(sql).columns(*(column(name) for name in names))


@cache
def _extras_read(dialect: str, with_groups: bool) -> KeyRead:
    """``_extras_statement`` executed from its compiled form (``db.KeyRead``): its cache
    key, a walk of three joined selects, and the compiled cache's lookup, which compares
    that key whole, were a fifth of a page's extras in Python."""
    return KeyRead(_extras_statement(dialect, with_groups))


def page_extras(
    session: Session, org_id: str, users: list[Any], *, with_groups: bool
) -> PageExtras:
    """The groups (when ``with_groups``), roles and license names of a page of users."""
    from scim_server.services.roles import hold

    ids = [u.id for u in users]
    groups: dict[str, list[tuple[str, str]]] = {}  # only users in groups
    held: dict[str, dict[str, dict[str, Any]]] = {}  # only users with roles
    names: dict[str, str] = {}
    if not ids:
        return PageExtras(groups, {}, names)
    head = None
    conn = session.connection()
    licenses = sorted({i for u in users for i in (u.license_id, u.license_wanted_id) if i})
    dialect = conn.dialect.name
    params = {
        "org_id": org_id,
        "user_ids": jsonfast.dumps(ids),
        "license_ids": jsonfast.dumps(licenses),
    }
    result = _extras_read(dialect, with_groups).execute(conn, params)
    try:
        rows = result.cursor.fetchall()  # the driver's rows: no SQLAlchemy row per entry
    finally:
        result.close()
    if dialect == "postgresql":  # in order (``_extras_statement``)
        for kind, user_id, item_id, name, role_kind, source, rule, _key in rows:
            if kind == "g":
                groups.setdefault(user_id, []).append((item_id, name))
            elif kind == "r":
                hold(held.setdefault(user_id, {}), item_id, name, role_kind, source, rule)
            elif kind == "l":
                names[item_id] = name
            else:
                head = int(item_id)
    else:
        head = _put_in_order(rows, groups, held, names)
    roles = {u: list(v.values()) for u, v in held.items()}
    return PageExtras(groups, roles, names, head)


def _put_in_order(
    rows: Sequence[Any],
    groups: dict[str, list[tuple[str, str]]],
    held: dict[str, dict[str, dict[str, Any]]],
    names: dict[str, str],
) -> int | None:
    """SQLite's rows of ``_extras_statement`` (kind, user id, id, name, detail), in no
    order, into ``page_extras``' maps in GET's order: groups by display name, roles by
    name then source, compared as SQLite's ORDER BY compares them (BINARY: by code point,
    as Python compares str); a display name or role name is unique in an organization,
    and a (role, source) pair for a user. Returns the audit head's ``seq`` (None: no head)."""
    from scim_server.services.roles import hold

    head = None
    group_keys: dict[str, str] = {}  # group id -> its sort key
    role_rows: dict[str, list[Any]] = {}  # user id -> (sort key, source, id, name, kind, rule)
    for kind, user_id, item_id, name, detail in rows:
        if kind == "g":
            groups.setdefault(user_id, []).append((item_id, name))
            group_keys[item_id] = detail
        elif kind == "r":
            key, role_kind, source, rule = jsonfast.loads(detail)
            role_rows.setdefault(user_id, []).append((key, source, item_id, name, role_kind, rule))
        elif kind == "l":
            names[item_id] = name
        else:
            head = item_id
    for found in groups.values():
        if len(found) > 1:
            found.sort(key=lambda pair: group_keys[pair[0]])
    for user_id, entries in role_rows.items():
        entries.sort(key=_by_name_and_source)
        of_user = held[user_id] = {}
        for _key, source, item_id, name, role_kind, rule in entries:
            hold(of_user, item_id, name, role_kind, source, rule)
    return head


_by_name_and_source = itemgetter(0, 1)
