"""The users dashboard query: every sort, both directions, walked page by page with keyset
cursors, forwards then backwards, gives exactly the full ordering (empty values last)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from scim_server.db import db
from scim_server.errors import InvalidValueError
from scim_server.models import User
from scim_server.services import licenses, roles, user_search
from scim_server.services.user_search import UserQuery
from tests.support import Scim


@pytest.fixture
def population(app: Flask, scim: Scim) -> list[str]:
    """11 users; some with a last sign-in, a license, task roles; ties on purpose."""
    ids = [
        scim.create_user(
            f"u{i:02d}", displayName=f"Person {i % 4}", emails=[{"value": f"u{i:02d}@example.com"}]
        )["id"]
        for i in range(11)
    ]
    with db.reader(app)() as s:
        lic = licenses.create_license(s, scim.org_id, "Engineer", None)
    with db.reader(app)() as s:
        roles.create_role(s, scim.org_id, "Alpha", "task")
    with db.reader(app)() as s:
        roles.create_role(s, scim.org_id, "Beta", "task")
    with db.reader(app)() as s, s.begin():
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for n, uid in enumerate(ids):
            user = s.get(User, (scim.org_id, uid))
            if n % 3 == 0:
                user.last_login_at = base + timedelta(hours=n % 2)  # ties
            if n % 2 == 0:
                licenses.assign(s, scim.org_id, user, lic, source="manual")
    from scim_server.services import accounts

    for n, uid in enumerate(ids[:6]):
        with db.reader(app)() as s:
            accounts.add_manual_role(s, scim.org_id, uid, "Alpha" if n % 2 else "Beta")
    return ids


def _walk(app: Flask, org_id: str, q: UserQuery) -> list[list[str]]:
    pages = []
    with db.reader(app)() as s:
        page = user_search.search_users(s, org_id, q)
        pages.append([r.id for r in page.rows])
        while page.next_cursor:
            page = user_search.search_users(
                s, org_id, replace(q, after=page.next_cursor, before=None)
            )
            pages.append([r.id for r in page.rows])
        back = [pages[-1]]
        while page.prev_cursor:
            page = user_search.search_users(
                s, org_id, replace(q, before=page.prev_cursor, after=None)
            )
            back.append([r.id for r in page.rows])
    assert list(reversed(back)) == pages, "walking back gives the same pages"
    return pages


@pytest.mark.parametrize("sort", sorted(user_search.SORTS))
@pytest.mark.parametrize("descending", [False, True])
def test_pages_partition_the_full_order(
    app: Flask, scim: Scim, population: list[str], sort: str, descending: bool
) -> None:
    """Pages of 3 concatenated equal one page of everything, with no repeat and no gap."""
    full = UserQuery(sort=sort, descending=descending, size=200)
    with db.reader(app)() as s:
        everything = [r.id for r in user_search.search_users(s, scim.org_id, full).rows]
    assert sorted(everything) == sorted(population)
    pages = _walk(app, scim.org_id, replace(full, size=3))
    assert [uid for p in pages for uid in p] == everything
    assert all(len(p) == 3 for p in pages[:-1])


def test_empty_values_sort_last_both_ways(app: Flask, scim: Scim, population: list[str]) -> None:
    """Users never signed in come after the others, ascending and descending."""
    with db.reader(app)() as s:
        for descending in (False, True):
            rows = user_search.search_users(
                s, scim.org_id, UserQuery(sort="last_login", descending=descending, size=200)
            ).rows
            seen = [r.last_login is not None for r in rows]
            assert seen == sorted(seen, reverse=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"sort": "secret"}, "Cannot sort by"),
        ({"dir": "up"}, "dir must be"),
        ({"status": "x"}, "Unknown status"),
        ({"source": "ldap"}, "Unknown source"),
        ({"size": "7"}, "Page size must be"),
        ({"q": "x" * 201}, "at most 200"),
    ],
)
def test_bad_parameters_are_clear_errors(args: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        user_search.parse_query(args)


def test_postgres_search_reads_the_trigram_indexes(app: Flask, scim: Scim, engine: Any) -> None:
    """On PostgreSQL the migrations make the trigram indexes (pg_trgm may be created here), and
    a search of three characters or more is one lookup per table (a UNION the indexes serve;
    an OR across the join scans every user), finding a user by its contact's name and by its
    login name alike. How fast: ``python -m bench --only console`` (a plan on a few test rows
    would rather scan, whatever the indexes)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: the trigram indexes")
    from sqlalchemy import event, text

    from scim_server.db import TRIGRAM_INDEXES

    with engine.connect() as conn:
        made = conn.execute(
            text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        ).scalars()
        assert set(TRIGRAM_INDEXES) <= set(made)
    scim.create_user("ada.l", name={"givenName": "Ada", "familyName": "Lovelace"})
    scim.create_user("grace.h", name={"givenName": "Grace", "familyName": "Hopper"})
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    def search(text: str) -> tuple[user_search.UserPage, list[str]]:
        statements.clear()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            with db.reader(app)() as s:
                page = user_search.search_users(s, scim.org_id, UserQuery(search=text))
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        return page, [st for st in statements if "LIKE" in st]

    by_name, sql = search("LOVEL")
    assert [r.name for r in by_name.rows] == ["Ada Lovelace"] and by_name.total == 1
    assert sql and all("UNION" in st for st in sql)
    by_login, sql = search("race.h")
    assert [r.username for r in by_login.rows] == ["grace.h"] and by_login.total == 1
    assert sql and all("UNION" in st for st in sql)
    short, sql = search("ce")  # too short for a trigram: the OR over the join
    assert [r.username for r in short.rows] == ["ada.l", "grace.h"] and short.total == 2
    assert sql and not any("UNION" in st for st in sql)
