"""PostgreSQL plans (scim_server/db.py): keyed statements reuse a plan, filters never do.

Read from ``pg_prepared_statements`` on the test's own connection (every session of
the app runs on it): a statement psycopg prepared is listed with the number of its
executions that ran a generic plan (planned once, without the values) and a custom one.
A statement sent unprepared is planned with its values on every execution.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from scim_server.db import reuse_plan
from tests.support import PATCH_OP

# More than PostgreSQL's five custom plans before it considers a generic one.
RUNS = 8


@pytest.fixture
def pg(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")


def prepared(connection: Connection) -> list[tuple[str, int, int]]:
    """(statement, generic plans, custom plans) of the statements prepared on ``connection``."""
    rows = connection.execute(
        text("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
    )
    return [(" ".join(sql.split()), generic, custom) for sql, generic, custom in rows]


def plans_of(connection: Connection, *fragments: str) -> list[tuple[int, int]]:
    """(generic, custom) plans of each prepared statement containing every fragment."""
    return [
        (generic, custom)
        for sql, generic, custom in prepared(connection)
        if all(fragment in sql for fragment in fragments)
    ]


def test_connection_plans_with_values_unless_a_statement_is_marked(pg, connection):
    """plan_cache_mode is auto; an unmarked statement is never prepared, however often it
    runs (alone or as executemany); a marked one is, from its second execution, and then
    runs a generic plan after five custom ones."""
    assert connection.execute(text("SHOW plan_cache_mode")).scalar() == "auto"
    plain = text("SELECT count(*) FROM organizations WHERE name = :name")
    marked = reuse_plan(text("SELECT count(*) FROM organizations WHERE id = :id"))
    many = text("UPDATE organizations SET name = name WHERE name = :name")
    for i in range(RUNS):
        connection.execute(plain, {"name": f"none-{i}"})
        connection.execute(marked, {"id": f"none-{i}"})
        connection.execute(many, [{"name": f"a-{i}"}, {"name": f"b-{i}"}])
    assert plans_of(connection, "WHERE name = $1") == []
    [(generic, custom)] = plans_of(connection, "WHERE id = $1")
    assert generic >= 1 and generic + custom == RUNS - 1


def test_hot_scim_statements_reuse_plans_and_filters_do_not(pg, scim, connection):
    """After more than five of each: the token lookup, GET by id, a PATCH's read and write,
    the audit chain's statement and ``userName eq`` run prepared (the token lookup a
    generic plan); the Entra e-mail filter over the attribute index is planned with its
    values every time (never prepared).

    Whether a prepared statement runs its generic plan is PostgreSQL's choice (``auto``:
    when it costs no more than the custom plans did), which the statistics of the test
    tables (a few rows, other tests' ANALYZE) sway: only the token lookup's, one unique
    index probe, is asserted generic."""
    ids, mails = [], []
    for i in range(RUNS):
        mail = f"plan{i}@example.org"
        user = scim.create_user(f"plan{i}", emails=[{"type": "work", "value": mail}])
        ids.append(user["id"])
        mails.append(mail)
    for i in range(RUNS):
        assert scim.get(f"/scim/v2/Users/{ids[i]}").status_code == 200
        op = {"op": "replace", "path": "title", "value": f"Title {i}"}
        resp = scim.patch(f"/scim/v2/Users/{ids[i]}", {"schemas": [PATCH_OP], "Operations": [op]})
        assert resp.status_code == 200
        by_name = quote(f'userName eq "plan{i}"')
        assert scim.get(f"/scim/v2/Users?filter={by_name}").get_json()["totalResults"] == 1
        by_mail = f'emails[type eq "work"].value eq "{mails[i]}"'
        found = scim.get(f"/scim/v2/Users?filter={quote(by_mail)}").get_json()
        assert [u["id"] for u in found["Resources"]] == [ids[i]]

    [(generic, _custom)] = plans_of(connection, "FROM scim_tokens WHERE scim_tokens.token_hash")
    assert generic >= 1
    for fragments in [
        ("SELECT 'u' AS x_kind",),  # GET /Users/{id}, extras included
        ("FOR UPDATE", "FROM users WHERE users.org_id = $1", "users.id = $2"),  # PATCH's read
        ("UPDATE contacts SET title=",),  # PATCH title's write
        ("INSERT INTO audit_events",),  # the audit chain's events and head
        ("users.user_name_key = $2", "LIMIT"),  # userName eq
    ]:
        # Every execution but the first on the connection ran the prepared statement.
        runs = sum(generic + custom for generic, custom in plans_of(connection, *fragments))
        assert runs >= RUNS - 1, (fragments, prepared(connection))
    # The e-mail filter reads the attribute index: never prepared, planned with its values.
    reads = [sql for sql, _g, _c in prepared(connection) if sql.startswith("SELECT")]
    assert not [sql for sql in reads if "attribute_values" in sql], reads
