"""Per-request plumbing of the OIDC provider: the database session, the issuer, audit events."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, request
from sqlalchemy.orm import Session

from scim_server.audit import AuditContext, record, use_context
from scim_server.db import db, release, utcnow
from scim_server.urls import public_url


def session() -> Session:
    """The request's session (a writer where the endpoint writes, see ``use_writer``)."""
    own = g.get("_oauth_session")
    return own if own is not None else db.session


def use_writer() -> Session:
    """A writing session for this request, though it is a GET.

    The authorization endpoint is a GET that stores a code; on SQLite a writer
    takes the lock at BEGIN, so a concurrent writer waits instead of failing.
    """
    own = g.get("_oauth_session")
    if own is None:
        own = g._oauth_session = db.writer()()
    return own


def _close(_exc: BaseException | None) -> None:
    own = g.pop("_oauth_session", None)
    if own is not None:
        release(own)  # never turns the answer already built into a 500


def init_app(app: Flask) -> None:
    app.teardown_appcontext(_close)


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
        record(session(), org_id, action, **fields)
