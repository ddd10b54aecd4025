"""The audit context of the HTTP request being served: who acts, from where, which request.

Every web entry point that writes events (SCIM tokens, admin tokens, the OIDC
provider) names its actor; the rest comes from the request the same way.
"""

from __future__ import annotations

from flask import Flask, g, request

from scim_server.audit.context import AuditContext, reset_context, set_context
from scim_server.db import utcnow


def request_context(actor_type: str, actor_id: str, actor_name: str | None) -> AuditContext:
    """The actor given, with this request's address, user agent, ids and arrival time."""
    return AuditContext(
        actor_type=actor_type,
        actor_id=actor_id,
        actor_name=actor_name,
        source_ip=request.remote_addr,
        # The header as sent (``request.user_agent`` would parse it into an object first).
        user_agent=request.environ.get("HTTP_USER_AGENT") or None,
        request_id=g.get("request_id"),
        correlation_id=g.get("correlation_id"),
        received_at=g.get("received_at") or utcnow(),
    )


def begin(actor_id: str, actor_name: str, actor_type: str = "token") -> None:
    """Make the authenticated caller the actor of every event this request writes."""
    g._audit_token = set_context(request_context(actor_type, actor_id, actor_name))


def end(_exc: BaseException | None = None) -> None:
    """Teardown: the next request on this thread starts with no actor."""
    token = g.pop("_audit_token", None)
    if token is not None:
        reset_context(token)


def init_app(app: Flask) -> None:
    app.teardown_request(end)
