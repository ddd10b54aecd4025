"""Who is acting, from where, in which request: set by the protocol layer, read by services.

A context variable keeps services free of Flask while every event they write
still names its actor, source and request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


class DeferredContext:
    """An ``AuditContext`` made at its first use and kept: a request sets who acts on
    every request, and most (a GET) record no event, so nothing is built for them."""

    __slots__ = ("_made", "_make")

    def __init__(self, make: Callable[[], AuditContext]) -> None:
        self._make = make
        self._made: AuditContext | None = None

    def get(self) -> AuditContext:
        made = self._made
        if made is None:
            # Two threads of one copied context may both make it: the same values.
            made = self._made = self._make()
        return made


SYSTEM = AuditContext()
_CURRENT: ContextVar[AuditContext | DeferredContext] = ContextVar("audit_context", default=SYSTEM)


def current_context() -> AuditContext:
    ctx = _CURRENT.get()
    return ctx.get() if isinstance(ctx, DeferredContext) else ctx


@contextmanager
def use_context(ctx: AuditContext) -> Iterator[AuditContext]:
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


def set_context(ctx: AuditContext | DeferredContext) -> object:
    """Set for the rest of the current request (a ``DeferredContext``: made when an event
    first asks for it); returns the token for ``reset_context``."""
    return _CURRENT.set(ctx)


def reset_context(token: object) -> None:
    _CURRENT.reset(token)  # type: ignore[arg-type]
