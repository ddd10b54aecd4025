"""The audit context of the HTTP request being served: who acts, from where, which request.

Every web entry point that writes events (SCIM tokens, admin tokens, the OIDC
provider) names its actor; the rest comes from the request the same way.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from flask import Flask, g, request

from scim_server.audit.context import AuditContext, DeferredContext, reset_context, set_context
from scim_server.db import utcnow

# The WSGI environ key of the request's ``set_context`` token (no client can send one).
_TOKEN = "scim_server.audit_token"


def request_context(actor_type: str, actor_id: str, actor_name: str | None) -> AuditContext:
    """The actor given, with this request's address, user agent, ids and arrival time."""
    return _made(*_captured(g._get_current_object(), actor_type, actor_id, actor_name))


def _captured(
    app_g: Any, actor_type: str, actor_id: str | None, actor_name: str | None
) -> tuple[Any, ...]:
    """What the context takes from the request now: the request object itself, the actor,
    and the ids and arrival time on ``g`` (read now: the operations of a SCIM Bulk request
    share its app context, and so its ``g``; each sets the Bulk request's again)."""
    return (
        request._get_current_object(),  # type: ignore[attr-defined]
        actor_type,
        actor_id,
        actor_name,
        app_g.get("request_id"),
        app_g.get("correlation_id"),
        app_g.get("received_at") or utcnow(),
    )


def _made(
    req: Any,
    actor_type: str,
    actor_id: str | None,
    actor_name: str | None,
    request_id: str | None,
    correlation_id: str | None,
    received_at: datetime,
) -> AuditContext:
    return AuditContext(
        actor_type=actor_type,
        actor_id=actor_id,
        actor_name=actor_name,
        source_ip=req.remote_addr,
        # The header as sent (``request.user_agent`` would parse it into an object first).
        user_agent=req.environ.get("HTTP_USER_AGENT") or None,
        request_id=request_id,
        correlation_id=correlation_id,
        received_at=received_at,
    )


def begin(actor_id: str | None, actor_name: str | None, actor_type: str = "token") -> None:
    """Make the authenticated caller the actor of every event this request writes (no id
    and no name: an actor nobody authenticated, e.g. the sign-in pages' ``anonymous``).

    The context is made when the request first records an event (``DeferredContext``),
    from what is captured here; a request that records none (a GET) makes none."""
    app_g = g._get_current_object()
    made = partial(_made, *_captured(app_g, actor_type, actor_id, actor_name))
    # Kept on the request, not on ``g``: a SCIM Bulk operation shares the Bulk request's
    # ``g``, and each must undo its own actor, the Bulk request its own after them.
    request.environ[_TOKEN] = set_context(DeferredContext(made))


def end(_exc: BaseException | None = None) -> None:
    """Teardown: the next request on this thread starts with no actor."""
    token = request.environ.pop(_TOKEN, None)
    if token is not None:
        reset_context(token)


def init_app(app: Flask) -> None:
    app.teardown_request(end)
