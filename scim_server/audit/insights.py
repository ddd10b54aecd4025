"""What the console's log pages read beyond search: one event, the actions in use, hourly counts.

Kept apart from ``queries`` (search, verify, export, reports) so the console's
extra reads never touch the code the evidence tools depend on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit.queries import in_log
from scim_server.models import AuditEvent

MAX_HOURS = 24 * 14


def get_event(session: Session, org_id: str, seq: int) -> AuditEvent | None:
    """One event of this organization's log by its sequence number (another organization's,
    or a row past the signed head, which is not part of the log: None)."""
    return session.scalar(select(AuditEvent).where(*in_log(org_id), AuditEvent.seq == seq))


def actions(session: Session, org_id: str) -> list[str]:
    """Every action the organization's log holds, sorted (the search form's choices)."""
    stmt = select(AuditEvent.action).where(*in_log(org_id)).distinct()
    return sorted(session.scalars(stmt))


@dataclass(frozen=True)
class HourCount:
    hour: datetime
    requests: int
    failures: int


def scim_requests_per_hour(
    session: Session, org_id: str, since: datetime, until: datetime
) -> list[HourCount]:
    """SCIM requests (events a SCIM token wrote) and their failures, per hour, oldest first.

    Every hour of the range is present (zeros included) so a chart's gaps are
    real quiet hours. At most ``MAX_HOURS`` hours: the range's start moves up.
    """
    until = until.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    since = max(
        since.replace(minute=0, second=0, microsecond=0), until - timedelta(hours=MAX_HOURS)
    )
    stmt = select(AuditEvent.occurred_at, AuditEvent.outcome).where(
        AuditEvent.org_id == org_id,
        AuditEvent.actor_type == "token",
        AuditEvent.occurred_at >= since,
        AuditEvent.occurred_at < until,
    )
    requests: Counter[datetime] = Counter()
    failures: Counter[datetime] = Counter()
    for occurred_at, outcome in session.execute(stmt):
        hour = occurred_at.replace(minute=0, second=0, microsecond=0)
        requests[hour] += 1
        if outcome == "failure":
            failures[hour] += 1
    hours = []
    hour = since
    while hour < until:
        hours.append(HourCount(hour, requests[hour], failures[hour]))
        hour += timedelta(hours=1)
    return hours
