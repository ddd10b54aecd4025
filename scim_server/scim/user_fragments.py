"""A list page's users as JSON already written, kept per process by version.

Most of a deep page's CPU went to parsing the 100 stored documents, building each
representation and writing it out again (BENCHMARKS.md, "Deep list pages"). The part of a
user's representation that comes from its own row (``id``, ``externalId``, ``userName``,
the stored document, ``active``, the enterprise extension, ``meta``) changes only when the
row does, and every change of the row moves its ``version`` and ``updated_at`` (the ETag
depends on it). So each worker keeps that part as UTF-8 JSON, keyed by organization and
user, and uses it only when the page's row, read in the page's own statement, has the same
version, the same ``updated_at`` and the same service root: an entry can be missing or
outdated, never served stale.

What a page reads beside the row (groups, roles, license names) changes without the
user's version (a group renamed, a license renamed): it is written around the kept parts,
in the place ``render.user_to_scim`` gives it. Each entry also keeps those pieces as last
written (``,"groups":[...]`` and the product extension), with the organization's audit head
they were read at (``paging.PageExtras.head``). Every change an organization's services
make moves that head in the change's own transaction (each records its audit event there),
so while the head is where it was, those pieces are current: a page whose users all hold
them at the head the database has now (one read of the head, ``audit.queries.head_seq``)
is written from the entries alone (``render_current``), without reading the extras or
building the product views. Each user's JSON is the bytes ``render_user`` would give for
the same values (tests compare them with GET by id).

Pages with ``attributes`` or ``excludedAttributes`` are rendered by
``render.render_user_page`` (a projection of the whole representation).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection

from scim_server.audit.queries import head_seq
from scim_server.jsonfast import dumps_bytes
from scim_server.scim.render import (
    group_entry,
    render_user_page,
    shape_of,
    user_doc,
    user_to_scim,
)
from scim_server.scim.schema import ENTERPRISE_SCHEMA, PRODUCT_SCHEMA, USER_SCHEMA
from scim_server.services import paging
from scim_server.services.paging import product_fields

Doc = dict[str, Any]

# ``{"schemas":[...],`` for each (enterprise extension shown, product extension shown).
_HEADS = {
    (enterprise, product): b'{"schemas":'
    + dumps_bytes(
        [USER_SCHEMA]
        + ([ENTERPRISE_SCHEMA] if enterprise else [])
        + ([PRODUCT_SCHEMA] if product else [])
    )
    + b","
    for enterprise in (False, True)
    for product in (False, True)
}
_PRODUCT_KEY = b',"' + PRODUCT_SCHEMA.encode() + b'":'
_ENTERPRISE_KEY = b',"' + ENTERPRISE_SCHEMA.encode() + b'":'
# What an entry costs beyond its bytes (the objects and the dict slot), roughly.
_ENTRY_OVERHEAD = 400
# With what is kept near its bound, a page that finds none of its users kept is likely part
# of a scan of more users than fit (an IdP's import of a large organization): only every
# ``COLD_ADMIT_EVERY``-th such page is cut and kept (a working set that moved still gets
# in), the others are rendered whole, without the cutting's cost (BENCHMARKS.md).
COLD_ADMIT_EVERY = 4
# Organizations whose last page is remembered (``RenderedUsers.note_page``), at most.
_LAST_PAGES_BOUND = 10_000


# A user's groups and product extension as last written on a page (``,"groups":[...]`` and
# ``,"urn:...":{...}``, each possibly empty), with the audit head they were read at and the
# row's fields the product view shows (``paging.product_fields``): a sign-in moves the last
# login without the user's version.
_Parts = tuple[int, bytes, bytes, tuple[Any, ...]]


class _Rendered:
    """A user's representation from its row, in three pieces of JSON: ``body`` (``"id"``
    to ``"active"``, between ``schemas`` and ``groups``), ``enterprise`` (the extension
    with its key and leading comma, or nothing) and ``meta`` (with its key and the
    closing brace); valid for the row at ``version`` and ``updated`` (its ``updated_at`` as
    the page's statement reads it: SQLite's text, PostgreSQL's datetime) under ``base``."""

    __slots__ = ("base", "body", "enterprise", "meta", "parts", "size", "updated", "version")

    def __init__(
        self, version: int, updated: Any, base: str, body: bytes, enterprise: bytes, meta: bytes
    ) -> None:
        self.version = version
        self.updated = updated
        self.base = base
        self.body = body
        self.enterprise = enterprise
        self.meta = meta
        self.size = len(body) + len(enterprise) + len(meta) + _ENTRY_OVERHEAD
        # The groups and product extension as last written, and what for (``tag``).
        self.parts: _Parts | None = None


class RenderedUsers:
    """Users' rendered rows (``_Rendered``) by (organization, user id), the least recently
    used dropped beyond ``max_bytes``: one per app, shared by the worker's threads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], _Rendered] = OrderedDict()
        self._bytes = 0
        self._cold_pages = 0
        # Per organization: whether its last page of several users found at least half of
        # them kept (``mostly_kept``).
        self._last_pages: dict[str, bool] = {}
        # Per organization: the audit head its last extras were read at (``note_head``).
        self._heads: dict[str, int] = {}
        self._lock = threading.Lock()

    def mostly_kept(self, org_id: str) -> bool:
        """Whether the organization's last page found at least half of its users kept: its
        next page is then read without the stored documents, and those of the users not kept
        are read afterwards (``paging.with_stored``, one statement more). After a page of
        mostly new users (the first pages, a scan), pages are read whole, as that statement
        would cost a cold page more than the documents it spares (BENCHMARKS.md)."""
        with self._lock:
            return self._last_pages.get(org_id, False)

    def note_page(self, org_id: str, kept: int, users: int) -> None:
        with self._lock:
            if len(self._last_pages) >= _LAST_PAGES_BOUND and org_id not in self._last_pages:
                self._last_pages.clear()
            self._last_pages[org_id] = 2 * kept >= users

    def head_of(
        self, org_id: str, rows: Sequence[Any], found: Sequence[_Rendered | None]
    ) -> tuple[int, list[_Parts]] | None:
        """The audit head at which every entry of a page holds its groups and product
        pieces (``_Rendered.parts``) for its row as read now, if it is also the last head
        seen for the organization, and those pieces (as taken now: another page may tag an
        entry again meanwhile); else None. The caller compares the head with the database's
        (``audit.queries.head_seq``): after a change, the first page seen to have moved on
        notes the new head, and the pages after it do not read the head in vain."""
        seq = None
        shown = product_fields
        taken = []
        for row, entry in zip(rows, found, strict=True):
            parts = entry.parts if entry is not None else None
            if parts is None or (seq is not None and parts[0] != seq) or parts[3] != shown(row):
                return None
            seq = parts[0]
            taken.append(parts)
        with self._lock:
            if seq is None or self._heads.get(org_id) != seq:
                return None
        return seq, taken

    def note_head(self, org_id: str, head: int) -> None:
        with self._lock:
            if len(self._heads) >= _LAST_PAGES_BOUND and org_id not in self._heads:
                self._heads.clear()
            self._heads[org_id] = head

    def tag(self, org_id: str, tagged: list[tuple[str, _Rendered, _Parts]]) -> None:
        """Give each entry its pieces as written (``_Rendered.parts``), counted against
        ``max_bytes`` if it is still kept."""
        entries = self._entries
        with self._lock:
            for user_id, entry, parts in tagged:
                old = entry.parts
                entry.parts = parts
                if entries.get((org_id, user_id)) is entry:
                    grown = len(parts[1]) + len(parts[2])
                    if old is not None:
                        grown -= len(old[1]) + len(old[2])
                    entry.size += grown
                    self._bytes += grown
            self._drop_beyond_bound()

    def admits_cold_page(self) -> bool:
        """Whether a page that found none of its users kept should cut and keep them: always
        while there is room (below seven eighths of the bound), else every
        ``COLD_ADMIT_EVERY``-th such page."""
        with self._lock:
            if self._bytes <= self.max_bytes - self.max_bytes // 8:
                return True
            self._cold_pages += 1
            return self._cold_pages % COLD_ADMIT_EVERY == 0

    def take(self, org_id: str, rows: Sequence[Any], base: str) -> list[_Rendered | None]:
        """Each row's entry if it is the row's, as the page read it; else None."""
        entries = self._entries
        found: list[_Rendered | None] = []
        with self._lock:
            for row in rows:
                key = (org_id, row.id)
                entry = entries.get(key)
                if (
                    entry is not None
                    and entry.version == row.version
                    and entry.updated == row.updated_at
                    and entry.base == base
                ):
                    entries.move_to_end(key)
                    found.append(entry)
                else:
                    found.append(None)
        return found

    def keep(self, org_id: str, made: list[tuple[str, _Rendered]]) -> None:
        entries = self._entries
        with self._lock:
            for user_id, entry in made:
                key = (org_id, user_id)
                old = entries.pop(key, None)
                if old is not None:
                    self._bytes -= old.size
                entries[key] = entry
                self._bytes += entry.size
            self._drop_beyond_bound()

    def _drop_beyond_bound(self) -> None:
        """The least recently used dropped while over ``max_bytes`` (the lock held)."""
        entries = self._entries
        while self._bytes > self.max_bytes and entries:
            _, dropped = entries.popitem(last=False)
            self._bytes -= dropped.size

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether an entry is kept for ``(org_id, user_id)``, whatever its version."""
        with self._lock:
            return key in self._entries

    @property
    def size(self) -> int:
        """Bytes held, as counted against ``max_bytes``."""
        with self._lock:
            return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._last_pages.clear()
            self._heads.clear()


def render_page(
    kept: RenderedUsers,
    org_id: str,
    rows: Sequence[Any],
    groups: dict[str, list[tuple[str, str]]],
    product: dict[str, Doc],
    base: str,
    found: list[_Rendered | None] | None = None,
    head: int | None = None,
) -> list[Any]:
    """A page's users (rows of ``paging``, ``data`` their stored documents' text) as JSON,
    with their ``groups`` and ``product`` views read for the page: ``kept`` entries where
    they are the rows', the others rendered (their documents parsed) and kept. A page of a
    scan (``admits_cold_page``) is ``render_user_page``'s: representations, written with
    the page. ``found``: the entries the caller took already (``kept.take``), one per row;
    the rows without one have their documents. ``head``: the audit head the groups and
    product views were read at; each entry then keeps its pieces as written (``tag``)."""
    if found is None:
        found = kept.take(org_id, rows, base)
    missing = [i for i, entry in enumerate(found) if entry is None]
    if len(rows) > 1:
        kept.note_page(org_id, len(rows) - len(missing), len(rows))
    if len(missing) == len(rows) and not kept.admits_cold_page():
        return render_user_page(rows, None, None, groups, product)
    whole: dict[int, bytes] = {}
    if missing:
        fresh = [rows[i] for i in missing]
        made = []
        for i, row, data in zip(missing, fresh, paging.stored_documents(fresh), strict=True):
            entry = _render(row, data, base)
            if entry is None:
                whole[i] = _render_whole(row, data, groups, product, base)
            else:
                found[i] = entry
                made.append((row.id, entry))
        kept.keep(org_id, made)
    # Each user's groups written once a page for all the users in the same groups.
    written: dict[tuple[tuple[str, str], ...], bytes] = {}
    fragment = orjson.Fragment
    out = []
    tagged: list[tuple[str, _Rendered, _Parts]] = []
    for i, (row, entry) in enumerate(zip(rows, found, strict=True)):
        if entry is None:
            out.append(fragment(whole[i]))
            continue
        user_id = row.id
        in_groups = b""
        pairs = groups.get(user_id)
        if pairs:
            key = tuple(pairs)
            in_groups = written.get(key, b"")
            if not in_groups:
                in_groups = written[key] = _groups_json(pairs, base)
        view = product.get(user_id)
        # A product view holds only text, null, lists and objects: orjson writes it all.
        shown = _PRODUCT_KEY + orjson.dumps(view) if view else b""
        out.append(fragment(_joined(entry, in_groups, shown)))
        if head is not None:
            tagged.append((user_id, entry, (head, in_groups, shown, product_fields(row))))
    if head is not None:
        kept.tag(org_id, tagged)
        kept.note_head(org_id, head)
    return out


def render_current(
    kept: RenderedUsers,
    connection: Connection,
    org_id: str,
    rows: Sequence[Any],
    found: Sequence[_Rendered | None],
    head: int | None,
) -> list[Any] | None:
    """The page written from its entries alone (``found``, one per row) if each holds its
    groups and product pieces at the organization's audit head as the database has it now:
    ``head`` if the page's statement read it, else read here (``audit.queries.head_seq``,
    only when the pieces are at the last head seen). None: the extras are to be read."""
    held = kept.head_of(org_id, rows, found)
    if held is None:
        return None
    seq, parts = held
    now = head if head is not None else head_seq(connection, org_id)
    if now != seq:
        if now is not None:
            kept.note_head(org_id, now)
        return None
    return _render_kept(kept, org_id, found, parts)


def _render_kept(
    kept: RenderedUsers,
    org_id: str,
    found: Sequence[_Rendered | None],
    parts: Sequence[_Parts],
) -> list[Any]:
    """A page whose users all hold their pieces (``parts``, one per entry) at the
    organization's current audit head: written from the entries alone."""
    fragment = orjson.Fragment
    out = []
    for entry, (_seq, in_groups, shown, _fields) in zip(found, parts, strict=True):
        assert entry is not None
        out.append(fragment(_joined(entry, in_groups, shown)))
    if len(found) > 1:
        kept.note_page(org_id, len(found), len(found))
    return out


def _joined(entry: _Rendered, in_groups: bytes, shown: bytes) -> bytes:
    """A kept user's JSON with its groups and product extension (each possibly empty)."""
    schemas = _HEADS[entry.enterprise != b"", shown != b""]
    return b"".join((schemas, entry.body, in_groups, entry.enterprise, shown, entry.meta))


def _groups_json(pairs: list[tuple[str, str]], base: str) -> bytes:
    """``,"groups":[...]`` for a user in these groups (id, display name), in this order."""
    entries = [orjson.dumps(group_entry(gid, name, base)) for gid, name in pairs]
    return b',"groups":[' + b",".join(entries) + b"]"


def _render(row: Any, data: Doc, base: str) -> _Rendered | None:
    """The row's part of its representation (``render.user_doc`` without groups and the
    product view), cut into ``_Rendered``'s pieces; None for a document holding a key the
    server places around them (a stored document never holds one): it is rendered whole,
    as ``render_user_page`` does, and not kept."""
    shape = shape_of(tuple(data))
    if shape.placed_around:
        return None
    doc = user_doc(row, data, shape, None, base, None)
    del doc["schemas"]  # the first key: the head is written per page (``_HEADS``)
    meta = doc.pop("meta")
    enterprise = doc.pop(ENTERPRISE_SCHEMA, None)
    return _Rendered(
        row.version,
        row.updated_at,
        base,
        dumps_bytes(doc)[1:-1],
        _ENTERPRISE_KEY + dumps_bytes(enterprise) if enterprise is not None else b"",
        b',"meta":' + dumps_bytes(meta) + b"}",
    )


def _render_whole(
    row: Any,
    data: Doc,
    groups: dict[str, list[tuple[str, str]]],
    product: dict[str, Doc],
    base: str,
) -> bytes:
    """A user whose document cannot be cut (``_render``), rendered whole each time."""
    user = row._replace(data=data)  # a page's row: its document parsed
    return dumps_bytes(user_to_scim(user, groups.get(row.id), base, product.get(row.id)))
