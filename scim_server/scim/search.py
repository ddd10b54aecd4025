"""POST /.search (RFC 7644 §3.4.3): one query across Users and Groups.

Each type runs the query with the other's attributes read as unassigned (RFC 7644
§3.4.2.1, ``FilterCompiler.absent``): a filter or sortBy naming an attribute of one type
never drops the other, and an error on either type is the search's error.
"""

from __future__ import annotations

import heapq
from dataclasses import replace
from itertools import islice
from typing import Any

from flask import Blueprint, Response, current_app

from scim_server.errors import TooManyError
from scim_server.scim.body import json_body
from scim_server.scim.listing import ranked, render_ids, run_query
from scim_server.scim.params import ListQuery, query_from_body
from scim_server.scim.render import list_response, scim_response
from scim_server.scim.schema import GROUP, USER, ResourceType

# In this order without sortBy, and for resources with equal sortBy values.
TYPES = (USER, GROUP)
# A sorted search across the types merges each type's first startIndex+count-1 keys in
# Python: as deep as this, no deeper (each type's own endpoint pages in the database).
SORTED_REACH = 10_000


def _others(rt: ResourceType) -> tuple[ResourceType, ...]:
    return tuple(other for other in TYPES if other is not rt)


def search_all() -> Response:
    """RFC 7644 §3.4.3: a search across all resource types."""
    query = query_from_body(json_body(), current_app.config)
    total, results = _sorted(query) if query.sort_by else _in_turn(query)
    return scim_response(list_response(results, total, query.start_index))


def _in_turn(query: ListQuery) -> tuple[int, list[Any]]:
    """Without sortBy: the Users, then the Groups, each in its default order; the page is
    the window of that sequence (each type pages in the database, however deep)."""
    results: list[Any] = []
    total = 0
    skip = query.start_index - 1
    for rt in TYPES:
        # The page's rest from this type (none left to want: its count alone).
        want = max(0, query.count - len(results))
        rt_total, docs = run_query(
            rt, replace(query, start_index=skip + 1, count=want), across=_others(rt)
        )
        results += docs
        skip = max(0, skip - rt_total)
        total += rt_total
    return total, results


def _sort_key(value: Any) -> tuple[Any, ...]:
    """A sortBy value as the database orders it (``listing._order``): no value after every
    value ascending, before them descending (RFC 7644 §3.4.2.3)."""
    return (1,) if value is None else (0, value)


def _sorted(query: ListQuery) -> tuple[int, list[Any]]:
    """With sortBy (RFC 7644 §3.4.2.3): one order over both types. Each type's first
    startIndex+count-1 keys in its own order (no more can reach the page), merged as
    sorted runs (equal values: Users first), the page cut from the merge, and only its
    resources read and rendered."""
    skip = query.start_index - 1
    reach = skip + query.count if query.count else 0
    if reach > SORTED_REACH:
        raise TooManyError(
            f"A search across all resource types with sortBy pages through the first "
            f"{SORTED_REACH:,} results; filter it, or search /Users or /Groups for more."
        )
    total = 0
    runs: list[list[tuple[Any, ResourceType, str]]] = []
    for rt in TYPES:
        rt_total, keys = ranked(rt, query, reach, _others(rt))
        total += rt_total
        runs.append([(value, rt, rid) for value, rid in keys])
    merged = heapq.merge(*runs, key=lambda entry: _sort_key(entry[0]), reverse=query.descending)
    chosen = list(islice(merged, skip, reach))
    docs = {rt: render_ids(rt, query, [rid for _, of, rid in chosen if of is rt]) for rt in TYPES}
    return total, [docs[rt][rid] for _, rt, rid in chosen if rid in docs[rt]]


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/.search", view_func=search_all, methods=["POST"])
