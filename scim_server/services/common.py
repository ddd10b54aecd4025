"""Helpers shared by the resource services: ETags, preconditions, list queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from scim_server.errors import PreconditionFailedError


def etag(version: int) -> str:
    """A weak entity tag (RFC 7232 §2.3) for ``meta.version``."""
    return f'W/"{version}"'


def check_if_match(current: int, if_match: Sequence[str] | None) -> None:
    """RFC 7644 §3.14: a stale If-Match fails with 412 and changes nothing."""
    if not if_match:
        return
    if "*" in if_match:
        return
    wanted = {tag.strip().removeprefix("W/") for tag in if_match}
    if f'"{current}"' not in wanted:
        raise PreconditionFailedError(
            f"The resource changed: its version is {etag(current)}, "
            f"the request was for {', '.join(if_match)}."
        )


# From this offset on, a page is read as ids first, then rows (a "deferred join").
DEFERRED_JOIN_OFFSET = 500


def page(
    session: Session,
    model: Any,
    org_id: str,
    where: ColumnElement[bool] | None,
    order: list[Any],
    offset: int,
    limit: int,
) -> tuple[int, list[Any]]:
    """Count the matches and read one page of them; never the whole table."""
    conditions = [model.org_id == org_id]
    if where is not None:
        conditions.append(where)
    total = session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0
    if limit == 0 or offset >= total:
        return total, []
    conn = session.connection()
    if offset < DEFERRED_JOIN_OFFSET:
        # Rows, not ORM objects: a page is only rendered, and rows cost a fraction.
        stmt = select(model.__table__).where(*conditions).order_by(*order)
        return total, list(conn.execute(stmt.offset(offset).limit(limit)).all())
    # Deep page: skip over the ordering index alone (an index-only scan), then read
    # the page's rows by key. Skipping whole rows made PostgreSQL sort the
    # organization's users on disk for every deep page.
    ids = list(
        conn.scalars(
            select(model.id).where(*conditions).order_by(*order).offset(offset).limit(limit)
        )
    )
    if not ids:
        return total, []
    found = conn.execute(
        select(model.__table__).where(model.org_id == org_id, model.id.in_(ids))
    ).all()
    by_id = {row.id: row for row in found}
    # A row deleted between the two reads is left out, as if the page had been read after.
    return total, [by_id[i] for i in ids if i in by_id]
