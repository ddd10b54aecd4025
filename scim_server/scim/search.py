"""POST /.search (RFC 7644 §3.4.3): one query across Users and Groups."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app

from scim_server.errors import DomainError
from scim_server.scim.body import json_body
from scim_server.scim.listing import run_query
from scim_server.scim.params import ListQuery, query_from_body
from scim_server.scim.render import list_response, scim_response
from scim_server.scim.schema import GROUP, USER


def search_all() -> Response:
    """RFC 7644 §3.4.3: a search across all resource types (Users first, then Groups)."""
    query = query_from_body(json_body(), current_app.config)
    results: list[dict[str, Any]] = []
    total = 0
    errors: list[DomainError] = []
    skip = query.start_index - 1
    for rt in (USER, GROUP):
        try:
            count_only = ListQuery(
                query.filter,
                query.sort_by,
                query.descending,
                1,
                0,
                query.attributes,
                query.excluded,
            )
            rt_total, _ = run_query(rt, count_only)
        except DomainError as err:
            errors.append(err)
            continue
        want = query.count - len(results)
        if want > 0 and skip < rt_total:
            sub = ListQuery(
                query.filter,
                query.sort_by,
                query.descending,
                skip + 1,
                want,
                query.attributes,
                query.excluded,
            )
            results += run_query(rt, sub)[1]
        skip = max(0, skip - rt_total)
        total += rt_total
    if len(errors) == 2:
        raise errors[0]
    return scim_response(list_response(results, total, query.start_index))


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/.search", view_func=search_all, methods=["POST"])
