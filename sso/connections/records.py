"""Reading the sign-in records (every attempt, its outcome and precise reason), newest first.

One query for the admin API's ``/api/v1/sso/sign-ins`` and the console's sign-in log.
"""

from __future__ import annotations

import base64
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from scim_server.errors import InvalidValueError
from sso.connections.models import SignInRecord

FILTERS = ("connection_id", "outcome", "reason_code", "user_id")
OUTCOMES = ("success", "failure", "test")


def _cursor_of(row: SignInRecord) -> str:
    return base64.urlsafe_b64encode(f"{row.at.isoformat()}|{row.id}".encode()).decode()


def list_sign_ins(
    session: Session,
    org_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    **match: str | None,
) -> tuple[list[SignInRecord], str | None]:
    """Newest first, keyset-paged by (time, id); ``match`` filters on ``FILTERS`` columns."""
    unknown = set(match) - set(FILTERS)
    if unknown:
        raise InvalidValueError(f"Unknown sign-in filters: {sorted(unknown)}.")
    stmt = select(SignInRecord).where(SignInRecord.org_id == org_id)
    for name, value in match.items():
        if value:
            stmt = stmt.where(getattr(SignInRecord, name) == value)
    if since is not None:
        stmt = stmt.where(SignInRecord.at >= since)
    if until is not None:
        stmt = stmt.where(SignInRecord.at < until)
    if cursor:
        try:
            at, _, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
            when = datetime.fromisoformat(at)
        except ValueError:
            raise InvalidValueError("cursor is not one this server returned.") from None
        stmt = stmt.where(tuple_(SignInRecord.at, SignInRecord.id) < tuple_(when, row_id))
    limit = max(limit, 1)
    rows = list(
        session.scalars(
            stmt.order_by(SignInRecord.at.desc(), SignInRecord.id.desc()).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (_cursor_of(rows[-1]) if more and rows else None)
