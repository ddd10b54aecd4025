"""A token's last use: written by the request that finds it stale, at most once a minute per
token, apart from the request's transaction, and never at the cost of the request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from scim_server.db import db, utcnow
from scim_server.models import ScimToken
from tests.support import Scim


def _token(session: Session, org_id: str, name: str = "test") -> ScimToken:
    session.expire_all()
    return session.scalars(
        select(ScimToken).where(ScimToken.org_id == org_id, ScimToken.name == name)
    ).one()


@pytest.fixture
def token_writes(engine: Engine) -> Iterator[list[str]]:
    """Every conditional last-use UPDATE of scim_tokens the database receives meanwhile."""
    seen: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("UPDATE scim_tokens") and "last_used_at IS NULL OR" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", spy)
    yield seen
    event.remove(engine, "before_cursor_execute", spy)


def test_a_read_records_the_use(session: Session, scim: Scim, token_writes: list[str]) -> None:
    """A SCIM GET (which writes nothing else) sets last_used_at to now."""
    assert _token(session, scim.org_id).last_used_at is None
    before = utcnow()
    assert scim.get("/scim/v2/Users").status_code == 200
    used = _token(session, scim.org_id).last_used_at
    assert used is not None and before - timedelta(seconds=1) <= used <= utcnow()
    assert len(token_writes) == 1


def test_uses_within_a_minute_write_once(
    session: Session, scim: Scim, token_writes: list[str]
) -> None:
    """Three GETs in a row: one UPDATE; once the recorded use is over a minute old, one more."""
    for _ in range(3):
        assert scim.get("/scim/v2/Users").status_code == 200
    assert len(token_writes) == 1
    first = _token(session, scim.org_id).last_used_at
    assert scim.get("/scim/v2/Users").status_code == 200
    assert _token(session, scim.org_id).last_used_at == first
    # A minute and more later (moved back rather than waited for):
    stale = utcnow() - timedelta(seconds=90)
    session.execute(
        update(ScimToken).where(ScimToken.org_id == scim.org_id).values(last_used_at=stale)
    )
    session.commit()
    assert scim.get("/scim/v2/Users/nobody").status_code == 404  # a use all the same
    assert len(token_writes) == 2
    assert _token(session, scim.org_id).last_used_at > stale + timedelta(seconds=60)


def test_writes_record_the_use_too(session: Session, scim: Scim) -> None:
    """A SCIM POST records the use as well (before its own transaction)."""
    scim.create_user("ada")
    assert _token(session, scim.org_id).last_used_at is not None


def test_admin_api_lists_tokens_with_last_use(admin: Scim, scim: Scim) -> None:
    """GET /api/v1/tokens: every token, no secret, last_used_at (the admin token's: this call)."""
    resp = admin.get("/api/v1/tokens")
    assert resp.status_code == 200
    listed = {t["name"]: t for t in resp.get_json()["tokens"]}
    assert set(listed) == {"test", "compliance"}
    assert listed["compliance"]["kind"] == "admin"
    assert listed["compliance"]["last_used_at"] is not None
    assert listed["test"]["last_used_at"] is None  # the SCIM token was not used yet
    assert all("secret" not in t and "token_hash" not in t for t in listed.values())
    scim.get("/scim/v2/Users")
    again = {t["name"]: t for t in admin.get("/api/v1/tokens").get_json()["tokens"]}
    assert again["test"]["last_used_at"] is not None


def test_console_shows_last_used(app: Flask, client: Any, scim: Scim, session: Session) -> None:
    """The tokens page's Last used column has the time of the last use."""
    from tests.support.console import sign_in_console

    scim.get("/scim/v2/Users")
    sign_in_console(app, client, scim, "auditor")
    html = client.get("/admin/tokens/").get_data(as_text=True)
    assert "Last used" in html and "Last write" not in html
    used = _token(session, scim.org_id).last_used_at
    assert used is not None and used.strftime("%Y-%m-%d %H:%M") in html


def test_a_busy_database_does_not_fail_or_slow_the_request(
    live: tuple[Flask, Scim], engine: Engine
) -> None:
    """Another transaction holds the token row (PostgreSQL) or the write lock (SQLite): the GET
    answers 200 at once, and the use is simply not recorded this time."""
    app, scim = live
    with engine.connect().execution_options(sqlite_immediate=True) as other:
        other.begin()  # SQLite: BEGIN IMMEDIATE, the database's write lock
        if engine.dialect.name == "sqlite":
            other.exec_driver_sql("SELECT 1")
        else:
            other.execute(
                select(ScimToken.id).where(ScimToken.org_id == scim.org_id).with_for_update()
            ).all()
        started = time.monotonic()
        resp = scim.get("/scim/v2/Users")
        elapsed = time.monotonic() - started
        other.rollback()
    assert resp.status_code == 200
    assert elapsed < 2.0  # no busy wait (SQLite's busy_timeout is 10 s) and no lock wait
    with db.reader(app)() as s:
        assert _token(s, scim.org_id).last_used_at is None
    # The next request, with the database free again, records it.
    assert scim.get("/scim/v2/Users").status_code == 200
    with db.reader(app)() as s:
        assert _token(s, scim.org_id).last_used_at is not None
