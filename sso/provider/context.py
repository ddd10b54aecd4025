"""Per-request plumbing of the OIDC provider: the issuer, audit events in the request's session."""

from __future__ import annotations

from typing import Any

from flask import g, request

from scim_server.audit import AuditContext, record, use_context
from scim_server.db import db, utcnow
from scim_server.urls import public_url


def issuer() -> str:
    """OIDC Discovery §4.3: one stable issuer; SCIM_BASE_URL behind a proxy or load balancer."""
    return public_url()


def record_event(
    org_id: str, action: str, actor_type: str, actor_id: str, actor_name: str | None, **fields: Any
) -> None:
    """Append an audit event in the request's transaction, naming who acted."""
    ctx = AuditContext(
        actor_type=actor_type,
        actor_id=actor_id,
        actor_name=actor_name,
        source_ip=request.remote_addr,
        user_agent=request.user_agent.string or None,
        request_id=g.get("request_id"),
        correlation_id=g.get("correlation_id"),
        received_at=g.get("received_at") or utcnow(),
    )
    with use_context(ctx):
        record(db.session, org_id, action, **fields)
