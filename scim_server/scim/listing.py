"""The list/query engine (RFC 7644 §3.4.2): filter, sort, page, render a page."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, g
from sqlalchemy import String, func, null, select

from scim_server.db import db
from scim_server.errors import InvalidFilterError
from scim_server.models import Group, User
from scim_server.scim.filter_ast import AttrPath, PathError
from scim_server.scim.filter_cache import FilterCache, FilterTemplate
from scim_server.scim.filter_parser import parse_filter, parse_path
from scim_server.scim.filters import FilterCompiler, sort_expression
from scim_server.scim.params import ListQuery
from scim_server.scim.render import (
    list_response,
    render_group,
    render_user,
    render_user_page,
    scim_response,
    wants,
)
from scim_server.scim.resources import project
from scim_server.scim.schema import USER, ResourceType
from scim_server.scim.user_fragments import RenderedUsers, render_current, render_page
from scim_server.services import paging
from scim_server.services import users as user_service
from scim_server.services.paging import AnchorCache, page, page_all, page_extras
from scim_server.urls import scim_root

# The app's paging anchors (a per-process cache of the database's ordering).
ANCHORS_EXTENSION = "scim_paging_anchors"
# The app's filters translated per shape (``filter_cache``).
FILTERS_EXTENSION = "scim_filter_shapes"
# The app's users kept rendered for list pages (``user_fragments``).
RENDERED_EXTENSION = "scim_rendered_users"


def init_app(app: Flask) -> None:
    """Give the app its own paging anchors, filter shapes and rendered users: two apps in
    one process share nothing."""
    app.extensions.setdefault(ANCHORS_EXTENSION, AnchorCache())
    app.extensions.setdefault(FILTERS_EXTENSION, FilterCache())
    kept = RenderedUsers(app.config["PAGE_CACHE_MB"] * 1024 * 1024)
    app.extensions.setdefault(RENDERED_EXTENSION, kept)


def paging_anchors() -> AnchorCache:
    anchors: AnchorCache = current_app.extensions[ANCHORS_EXTENSION]
    return anchors


def sort_path(text: str) -> AttrPath:
    """``sortBy`` is a plain attribute path (RFC 7644 §3.4.2.3): no filter, no value path."""
    try:
        parsed = parse_path(text)
    except PathError:
        raise InvalidFilterError(f"sortBy {text!r} is not an attribute path.") from None
    if parsed.filter is not None or parsed.value_sub is not None or not parsed.path.attr:
        raise InvalidFilterError(f"sortBy {text!r} must name one attribute, without a filter.")
    return parsed.path


def filter_shapes() -> FilterCache:
    shapes: FilterCache = current_app.extensions[FILTERS_EXTENSION]
    return shapes


def _prepared(rt: ResourceType, query: ListQuery) -> tuple[FilterTemplate, list[str]] | None:
    """A filtered page in the default order, its filter's shape translated before."""
    if not query.filter or query.sort_by or query.start_index - 1 >= paging.DEFERRED_JOIN_OFFSET:
        return None
    return filter_shapes().lookup(rt, query.filter)


def _order(key: Any, model: Any, query: ListQuery) -> list[Any]:
    """ORDER BY ``key`` (``sort_expression``; None: the default order), then created, id."""
    order: list[Any] = []
    if key is not None:
        # RFC 7644 §3.4.2.3: unassigned values sort last ascending, first descending.
        order.append(key.desc().nulls_first() if query.descending else key.asc().nulls_last())
    return [*order, model.created_at, model.id]


def run_query(
    rt: ResourceType, query: ListQuery, *, across: tuple[ResourceType, ...] = ()
) -> tuple[int, list[Any]]:
    """(totalResults, rendered page) for one resource type: each resource a dict, or JSON
    already written (``orjson.Fragment``: a page of users without a projection).

    ``across``: the other types of a search at the root, whose attributes the filter and
    sortBy may name (``FilterCompiler.absent``)."""
    session = db.session
    prepared = _prepared(rt, query)
    if prepared is not None:
        # (A shape translated for ``rt`` alone names only ``rt``'s attributes: the same
        # answer with ``across``. One that names another type's is None: the full path.)
        template, literals = prepared
        project(rt, {}, query.attributes, query.excluded)  # a bad attribute list: 400
        params = template.params(g.org_id, literals)
        total, rows = template.page.read(session, params, query.start_index - 1, query.count)
        return total, _render(rt, query, rows, slim=False)
    compiler = FilterCompiler(rt, g.org_id, others=across)
    where = compiler.compile(parse_filter(query.filter)) if query.filter else None
    model = compiler.model
    # Refuse a bad attribute list before the query, even if the page will be empty.
    project(rt, {}, query.attributes, query.excluded)
    offset = query.start_index - 1
    # Read without the stored documents when the page's users are likely kept rendered (the
    # organization's last page found most of its own kept); ``_render`` reads the others'.
    slim = False
    head = None
    if where is None and not query.sort_by:
        slim = rt is USER and _renders_kept(query) and _kept().mostly_kept(g.org_id)
        total, rows, head = page_all(
            session,
            model,
            rt.name,
            g.org_id,
            offset,
            query.count,
            paging_anchors(),
            slim=slim,
        )
    else:
        key = (
            sort_expression(rt, g.org_id, sort_path(query.sort_by), across)
            if query.sort_by
            else None
        )
        order = _order(key, model, query)
        total, rows = page(session, model, g.org_id, where, order, offset, query.count)
    return total, _render(rt, query, rows, slim=slim, head=head)


def ranked(
    rt: ResourceType, query: ListQuery, limit: int, across: tuple[ResourceType, ...]
) -> tuple[int, list[tuple[Any, str]]]:
    """(totalResults, the first ``limit`` (sortBy value, id) pairs in the query's order) of
    one type of a sorted search at the root: its keys only, for ``search`` to merge with
    the other types' before it reads and renders one page (``render_ids``)."""
    assert query.sort_by is not None
    compiler = FilterCompiler(rt, g.org_id, others=across)
    where = compiler.compile(parse_filter(query.filter)) if query.filter else None
    model = compiler.model
    key = sort_expression(rt, g.org_id, sort_path(query.sort_by), across)
    project(rt, {}, query.attributes, query.excluded)  # a bad attribute list: 400
    conditions = [model.org_id == g.org_id, *([] if where is None else [where])]
    counting = select(func.count()).select_from(model).where(*conditions)
    conn = db.session.connection()
    if key is not None and conn.dialect.name == "postgresql" and isinstance(key.type, String):
        # ``search`` merges the types' runs in code-point order: each run in it too, whatever
        # the database's default collation ("C" compares UTF-8 bytes: code points).
        key = key.collate("C")
    if limit == 0:
        return conn.scalar(counting) or 0, []
    keyed = (
        select(null() if key is None else key, model.id)
        .where(*conditions)
        .order_by(*_order(key, model, query))
        .limit(limit)
    )
    rows = [(value, rid) for value, rid in conn.execute(keyed)]
    total = len(rows) if len(rows) < limit else conn.scalar(counting) or 0
    return total, rows


def render_ids(rt: ResourceType, query: ListQuery, ids: list[str]) -> dict[str, Any]:
    """The resources of ``ids`` rendered as a page renders them, by id (one deleted since
    its id was read is left out, as ``paging.rows_by_ids`` leaves it)."""
    if not ids:
        return {}
    model = User if rt is USER else Group
    rows = paging.rows_by_ids(db.session.connection(), model, g.org_id, ids)
    docs = _render(rt, query, rows, slim=False)
    return {row.id: doc for row, doc in zip(rows, docs, strict=True)}


def _kept() -> RenderedUsers:
    kept: RenderedUsers = current_app.extensions[RENDERED_EXTENSION]
    return kept


def _renders_kept(query: ListQuery) -> bool:
    """Whether a page of users is rendered through the users kept rendered (``render_page``):
    a whole representation, and a worker that keeps them."""
    return not query.attributes and not query.excluded and _kept().max_bytes > 0


def _documents_for_render(rows: list[Any]) -> tuple[list[Any], list[Any]]:
    """A slim page's rows (``page_all(slim=True)``: ``data`` not read) with the stored
    documents of the users not kept rendered, read now (``paging.with_stored``), and each
    row's kept entry (None: rendered afresh). The entries are taken here, before the read,
    so the page renders them whatever another request evicts meanwhile."""
    found = _kept().take(g.org_id, rows, scim_root()) if len(rows) > 1 else [None] * len(rows)
    entries = {row.id: entry for row, entry in zip(rows, found, strict=True) if entry}
    missing = {row.id for row in rows if row.id not in entries}
    rows = paging.with_stored(db.session.connection(), g.org_id, rows, missing)
    return rows, [entries.get(row.id) for row in rows]


def _render(
    rt: ResourceType, query: ListQuery, rows: list[Any], *, slim: bool, head: int | None = None
) -> list[Any]:
    """``slim``: the rows were read without their stored documents (``page_all``); ``head``:
    the organization's audit head read with the rows (``paging.Page.head``), if it was."""
    attrs, excluded = query.attributes, query.excluded
    if rt is not USER:
        return [render_group(grp, attrs, excluded) for grp in rows]
    found = None
    if slim and rows:
        rows, found = _documents_for_render(rows)
    # (A slim page's one user left may be a kept one, without its document: rendered as kept.)
    if len(rows) <= 1 and all(row.data is not None for row in rows):
        # A lookup's one user (userName eq, an e-mail): its extras in one round trip, as GET.
        return [render_user(u, attrs, excluded) for u in paging.with_documents(rows)]
    kept = _renders_kept(query)
    if kept:
        if found is None:
            found = _kept().take(g.org_id, rows, scim_root())
        # No extras to read while the organization's audit head has not moved.
        current = render_current(_kept(), db.session.connection(), g.org_id, rows, found, head)
        if current is not None:
            return current
    with_groups = wants("groups", attrs, excluded)
    extras = page_extras(db.session, g.org_id, rows, with_groups=with_groups)
    product = user_service.product_view(
        db.session, g.org_id, rows, roles=extras.roles, license_names=extras.license_names
    )
    if kept:
        return render_page(
            _kept(), g.org_id, rows, extras.groups, product, scim_root(), found, extras.head
        )
    return render_user_page(rows, attrs, excluded, extras.groups if with_groups else None, product)


def list_of(rt: ResourceType, query: ListQuery) -> Response:
    """A ListResponse of one page."""
    total, docs = run_query(rt, query)
    return scim_response(list_response(docs, total, query.start_index))
