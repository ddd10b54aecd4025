"""Who is acting, from where, in which request: set by the protocol layer, read by services.

A context variable keeps services free of Flask while every event they write
still names its actor, source and request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class AuditContext:
    actor_type: str = "system"  # token | admin | cli | system
    actor_id: str | None = None
    actor_name: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    correlation_id: str | None = None
    received_at: datetime | None = None


SYSTEM = AuditContext()
_CURRENT: ContextVar[AuditContext] = ContextVar("audit_context", default=SYSTEM)


def current_context() -> AuditContext:
    return _CURRENT.get()


@contextmanager
def use_context(ctx: AuditContext) -> Iterator[AuditContext]:
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


def set_context(ctx: AuditContext) -> object:
    """Set for the rest of the current request; returns the token for ``reset_context``."""
    return _CURRENT.set(ctx)


def reset_context(token: object) -> None:
    _CURRENT.reset(token)  # type: ignore[arg-type]
