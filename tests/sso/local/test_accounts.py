"""The account lookup probes indexes, and a password changed during a sign-in wins."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Connection, event, select
from sqlalchemy.orm import Session

from scim_server.db import db
from scim_server.models import AccountLockout
from scim_server.services import passwords
from sso.local import password as local
from sso.local.accounts import find_account
from tests.support import Scim
from tests.support.local import PASSWORD, give_password
from tests.support.plans import assert_indexed_by_key
from tests.support.sso import read

LOGIN = "alice@example.com"
NEW_PASSWORD = "a brand new passphrase 4 alice"


def test_lookup_searches_indexes_and_never_scans_users(
    app: Flask, connection: Connection, scim: Scim, person: str
) -> None:
    """One OR over the users/contacts join scanned every user of the server per sign-in."""
    if connection.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL plans tiny tables as scans")
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(connection, "before_cursor_execute", capture)
    try:
        with read(app) as s:
            for login in (LOGIN, "ALICE@example.com", "nobody@example.org"):
                found = find_account(s, login)
                assert (found.user is not None) == (login != "nobody@example.org")
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    lookups = [(sql, params) for sql, params in seen if "UNION" in sql]
    assert len(lookups) == 3
    assert_indexed_by_key(lookups)


def _attempt(app: Flask) -> local.Attempt:
    return local.Attempt(
        hashing=passwords.Hashing.from_config(app.config),
        attempt_key=b"k" * 32,
        now=datetime.now(UTC).replace(tzinfo=None),
        base_url="http://localhost",
        source_ip="127.0.0.1",
        user_agent=None,
    )


def _read_then_change(app: Flask, org_id: str, user_id: str) -> local.Reading:
    """A lookup after which the password changes, before the sign-in's write transaction."""

    @contextmanager
    def reading() -> Iterator[Session]:
        with db.reader(app)() as s:
            yield s
        give_password(app, org_id, user_id, NEW_PASSWORD)

    return reading


def test_password_changed_during_sign_in_wins(app: Flask, scim: Scim, person: str) -> None:
    """The old password, verified before the change, is refused (and counted) under the lock."""
    reading = _read_then_change(app, scim.org_id, person)
    with (
        app.app_context(),
        db.writer(app)() as writer,
        pytest.raises(local.CredentialsRefusedError) as refused,
    ):
        local.check_password(writer, LOGIN, PASSWORD, _attempt(app), reading)
    assert refused.value.account_found
    with read(app) as s:
        row = s.scalar(select(AccountLockout).where(AccountLockout.user_id == person))
        assert row is not None and len(row.failures) == 1


def test_new_password_set_during_sign_in_is_checked_again(
    app: Flask, scim: Scim, person: str
) -> None:
    """Verified against the old hash (no match), then against the new one under the lock."""
    with app.app_context(), db.writer(app)() as writer:
        verified = local.check_password(
            writer, LOGIN, NEW_PASSWORD, _attempt(app), _read_then_change(app, scim.org_id, person)
        )
    assert (verified.user_id, verified.stage) == (person, "done")
    with read(app) as s:
        row = s.scalar(select(AccountLockout).where(AccountLockout.user_id == person))
        assert row is None or not row.failures
