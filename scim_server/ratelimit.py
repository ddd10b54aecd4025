"""Per-token request limits, counted in the database so every process and node shares them.

A fixed one-minute window per token: one upsert (``INSERT .. ON CONFLICT DO
UPDATE .. RETURNING``) in a short transaction of its own, committed before the
request's work starts, so a request that fails later still counts and the
counter never waits on the request's locks. The limit is
``SCIM_RATE_LIMIT_PER_MINUTE``, overridden per organization by
``organizations.rate_limit_per_minute`` (NULL follows the default, 0 is
unlimited). Overrides are cached per process for ``SCIM_RATE_LIMIT_CACHE_SECONDS``
so that, with limits off, a request costs no query at all.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from flask import Flask
from flask.globals import _cv_app, app_ctx
from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, delete, select
from sqlalchemy.orm import Session, sessionmaker

from scim_server.audit import record
from scim_server.db import Base, db, insert_for, transaction
from scim_server.errors import InvalidValueError, NotFoundError
from scim_server.models import Organization
from scim_server.scim.errors import ScimError
from scim_server.text import MAX_INT

WINDOW_SECONDS = 60
# organizations.rate_limit_per_minute is an Integer column (PostgreSQL's int4).
MAX_LIMIT = MAX_INT

rate_limit_windows = Table(
    "rate_limit_windows",
    Base.metadata,
    Column("key", String(100), primary_key=True),
    Column("window_start", BigInteger, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    # Sweeping expired windows is a range delete on this index.
    Index("ix_rate_limit_windows_window_start", "window_start"),
)


def clock() -> float:
    """Wall-clock seconds; windows must line up across processes and nodes."""
    return time.time()


class RateLimited(Exception):
    """The token has used up its requests for this window."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"rate limit of {limit} requests per minute exceeded")
        self.limit = limit
        self.retry_after = retry_after


def count_request(factory: sessionmaker[Session], key: str, now: float) -> tuple[int, int]:
    """Add one request to ``key``'s current window; return (count so far, window start)."""
    window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    t = rate_limit_windows
    with transaction(factory) as session:
        dialect = session.get_bind().dialect.name
        insert = insert_for(dialect)
        stmt = (
            insert(t)
            .values(key=key, window_start=window, count=1)
            .on_conflict_do_update(
                index_elements=[t.c.key, t.c.window_start], set_={"count": t.c.count + 1}
            )
            .returning(t.c.count)
        )
        count = session.execute(stmt).scalar_one()
    return count, window


def sweep(factory: sessionmaker[Session], before: int) -> None:
    """Delete windows that started before ``before`` (an index range, no table scan)."""
    with transaction(factory) as session:
        session.execute(
            delete(rate_limit_windows).where(rate_limit_windows.c.window_start < before)
        )


@dataclass
class Limiter:
    """One per app: cached organization overrides and when this process last swept."""

    cache_seconds: float
    _overrides: dict[str, int] = field(default_factory=dict)
    _loaded_at: float = -math.inf
    _swept_window: int = -1

    def limit_for(self, reader: sessionmaker[Session], org_id: str, default: int) -> int:
        """Requests per minute for this organization's tokens; 0 is unlimited."""
        now = time.monotonic()
        if now - self._loaded_at >= self.cache_seconds:
            with reader() as session:
                rows = session.execute(
                    select(Organization.id, Organization.rate_limit_per_minute).where(
                        Organization.rate_limit_per_minute.is_not(None)
                    )
                )
                self._overrides = {org: limit for org, limit in rows if limit is not None}
            self._loaded_at = now
        return self._overrides.get(org_id, default)

    def check(self, writer: sessionmaker[Session], key: str, limit: int) -> None:
        """Count this request; raise RateLimited when it is over ``limit``."""
        now = clock()
        count, window = count_request(writer, key, now)
        if window > self._swept_window:
            # Once per window per process; keep the previous window for clock skew.
            self._swept_window = window
            sweep(writer, window - WINDOW_SECONDS)
        if count > limit:
            raise RateLimited(limit, max(1, math.ceil(window + WINDOW_SECONDS - now)))


def enforce_scim() -> None:
    """``before_request`` for the SCIM blueprint, after ``authenticate`` set ``g.token_id``."""
    # The app context once, not through ``g`` / ``current_app``'s proxies at each use.
    ctx = _cv_app.get(None) or app_ctx._get_current_object()  # type: ignore[attr-defined]
    app_g = ctx.g
    token_id = app_g.get("token_id")
    if token_id is None:
        return  # public discovery endpoints carry no token
    app = ctx.app
    limiter: Limiter = app.extensions["scim_ratelimit"]
    state = db.state(app)
    limit = limiter.limit_for(state.reader, app_g.org_id, app.config["RATE_LIMIT_PER_MINUTE"])
    if limit <= 0:
        return
    # End the read the token lookup began before the counter's own transaction,
    # so the two never share a connection's transaction. In production they are
    # on different pooled connections anyway (and a PostgreSQL read has none);
    # where every session shares one connection, as in the tests, the counter
    # would otherwise be rolled back with the request.
    db.end_read()
    try:
        limiter.check(state.writer, f"token:{token_id}", limit)
    except RateLimited as exc:
        err = ScimError(
            f"Too many requests: this token may make {exc.limit} requests per minute; "
            f"retry after {exc.retry_after} seconds.",
            status=429,
        )
        err.headers = {"Retry-After": str(exc.retry_after)}
        raise err from None


def init_app(app: Flask, blueprint: str) -> None:
    """Run ``enforce_scim`` after the blueprint's own hooks (call after registering it)."""
    app.config.setdefault("RATE_LIMIT_PER_MINUTE", 0)
    app.extensions["scim_ratelimit"] = Limiter(app.config.get("RATE_LIMIT_CACHE_SECONDS", 10))
    app.before_request_funcs.setdefault(blueprint, []).append(enforce_scim)


def set_org_limit(session: Session, org_id: str, limit: int | None) -> Organization:
    """Set (None: clear) an organization's override, recorded in its provisioning log."""
    if limit is not None and not 0 <= limit <= MAX_LIMIT:
        raise InvalidValueError(
            f"A rate limit is a number of requests per minute, 0 to {MAX_LIMIT}."
        )
    with session.begin():
        org = session.get(Organization, org_id)
        if org is None:
            raise NotFoundError(f"No organization {org_id!r}.")
        org.rate_limit_per_minute = limit
        shown = "default" if limit is None else ("unlimited" if limit == 0 else f"{limit}/min")
        record(
            session,
            org_id,
            "organization.rate_limit",
            resource_type="Organization",
            resource_id=org_id,
            detail=f"SCIM rate limit per token: {shown}",
        )
    return org
