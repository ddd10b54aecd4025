"""When each token last changed something, read from the log (the tokens page).

A SCIM or admin token's writes are audit events whose actor is the token; its reads
leave no trace (the SCIM read path never writes), so this is "last write", not
"last use".
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scim_server.models import AuditEvent


def last_writes(session: Session, org_id: str, token_ids: list[str]) -> dict[str, datetime]:
    """token id → when its latest event was written (tokens that wrote nothing are absent)."""
    if not token_ids:
        return {}
    rows = session.execute(
        select(AuditEvent.actor_id, func.max(AuditEvent.occurred_at))
        .where(
            AuditEvent.org_id == org_id,
            AuditEvent.actor_type.in_(("token", "admin")),
            AuditEvent.actor_id.in_(token_ids),
        )
        .group_by(AuditEvent.actor_id)
    ).all()
    return {actor: when for actor, when in rows if actor is not None}
