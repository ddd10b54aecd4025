"""Per-request plumbing of the OIDC provider: the issuer, audit events in the request's session."""

from __future__ import annotations

from typing import Any

from scim_server.audit import record, use_context
from scim_server.audit.web import request_context
from scim_server.db import db
from scim_server.urls import public_url


def issuer() -> str:
    """OIDC Discovery §4.3: one stable issuer; SCIM_BASE_URL behind a proxy or load balancer."""
    return public_url()


def record_event(
    org_id: str, action: str, actor_type: str, actor_id: str, actor_name: str | None, **fields: Any
) -> None:
    """Append an audit event in the request's transaction, naming who acted."""
    with use_context(request_context(actor_type, actor_id, actor_name)):
        record(db.session, org_id, action, **fields)
