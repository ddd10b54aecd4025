"""``audit.queries``: what the service refuses whatever the caller (command line, code)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from scim_server.audit.queries import purge
from scim_server.db import utcnow
from scim_server.errors import InvalidValueError
from scim_server.models import AuditEvent


def _logged(session, org_id: str) -> int:
    stmt = select(func.count()).select_from(AuditEvent).where(AuditEvent.org_id == org_id)
    return int(session.scalar(stmt) or 0)


@pytest.mark.parametrize(
    "ago",
    [
        pytest.param(timedelta(days=-365 * 900), id="a date in the future"),
        pytest.param(timedelta(seconds=-1), id="just ahead"),
        pytest.param(timedelta(hours=23), id="under a day ago"),
    ],
)
def test_purge_refuses_a_cutoff_less_than_a_day_ago(scim, session, ago):
    """A cutoff ahead of now (or within the last day) purges every event, what was just
    logged included: refused, nothing deleted, nothing logged."""
    scim.create_user("kept@example.com")
    session.rollback()
    logged = _logged(session, scim.org_id)
    with pytest.raises(InvalidValueError, match="at least a day ago"):
        purge(session, scim.org_id, utcnow() - ago)
    session.rollback()
    assert _logged(session, scim.org_id) == logged


def test_purge_takes_a_cutoff_a_day_before_its_clock(scim, session):
    """``now`` is the purge's clock (as the events feed's): a cutoff a day before it purges."""
    scim.create_user("gone@example.com")
    session.rollback()
    cutoff = utcnow() + timedelta(seconds=1)
    assert purge(session, scim.org_id, cutoff, now=cutoff + timedelta(days=1)) >= 2
    session.rollback()
    assert _logged(session, scim.org_id) == 1  # the purge's own event
