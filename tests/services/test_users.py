"""Statements per user write: the round trips a create or a PATCH costs stay few.

Counted on the test's connection (savepoints aside), through the HTTP client:
the token lookup, the write and the representation. Issue 17 brought POST
/Users from 21 statements to 13 on PostgreSQL (16 with the product event and the
welcome), then to 13 with them, then 11: the audit event, the head's move and the
product event in one statement there (three on SQLite, hence two more), the head
locked by the read of the user's state, the uniqueness checks in one
query, and the user's groups, roles and license names read once (at commit, for
the product event and the response); then to 5 (11 on SQLite): the uniqueness, the
settings and the contact match in one statement, the new rows and the count in one
on PostgreSQL (``db.Batch``). A bound here catches a change that quietly
adds a query per write (a lookup in a loop, a read-back). Raise it only with a
reason in the commit (a new row every create must write).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection

from scim_server.scim.schema import ENTERPRISE_SCHEMA
from tests.support import USER_SCHEMA, Scim

BODY = {
    "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
    "userName": "ada.jensen@example.com",
    "externalId": "e-1",
    "name": {"givenName": "Ada", "familyName": "Jensen"},
    "displayName": "Ada Jensen",
    "emails": [{"type": "work", "value": "ada.jensen@example.com", "primary": True}],
    "title": "Engineer",
    ENTERPRISE_SCHEMA: {"department": "Engineering", "employeeNumber": "1"},
}


def bound(connection: Connection, postgresql: int, sqlite: int | None = None) -> int:
    """The bound on PostgreSQL; on SQLite ``sqlite``, by default two more, where the audit
    event's INSERT, the head's UPDATE and the product event's INSERT are three statements
    (one statement with data-modifying CTEs on PostgreSQL)."""
    if connection.dialect.name != "sqlite":
        return postgresql
    return postgresql + 2 if sqlite is None else sqlite


@pytest.fixture
def statements(connection: Connection) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            seen.append(statement)

    event.listen(connection, "before_cursor_execute", count)
    yield seen
    event.remove(connection, "before_cursor_execute", count)


def test_a_create_costs_few_statements(
    scim: Scim, statements: list[str], connection: Connection
) -> None:
    """POST /Users: token; uniqueness, settings fingerprint and contact match in one
    statement; the new rows (contact, user, index rows, the welcome's send: one statement
    on PostgreSQL, four on SQLite); at the commit the count and the head (PostgreSQL: one
    statement; SQLite: the head read by the first statement), the audit event, the
    product event. The user's groups, roles and license names are not read: a create
    alone in its transaction, with no rules, knows them (none)."""
    scim.create_user("warm@example.com")  # the organization's settings are read once
    statements.clear()
    resp = scim.post("/scim/v2/Users", BODY)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    # The welcome's credentials send where the organization's people may have a
    # password (this one: no SSO connection) is one of the new rows.
    assert len(statements) <= bound(connection, 5, sqlite=10), "\n".join(statements)
    assert sum("SELECT 'g' AS kind" in s for s in statements) == 0
    assert sum("audit_heads" in s for s in statements) == 2  # read (locked), moved
    assert sum("INSERT INTO credential_schedules" in s for s in statements) == 1
    _count_then_head(statements, connection)


def _count_then_head(statements: list[str], connection: Connection) -> None:
    """The count changes once, at the commit (after the resource's rows), and on
    PostgreSQL in the statement that locks the audit head: held from there to the commit."""
    (counted,) = [i for i, s in enumerate(statements) if "UPDATE resource_counts" in s]
    writes = [i for i, s in enumerate(statements) if "INSERT INTO users" in s or "DELETE" in s]
    assert writes and counted > max(writes)
    if connection.dialect.name == "postgresql":
        assert "FROM audit_heads" in statements[counted] and "FOR UPDATE" in statements[counted]
        assert not any(s.lstrip().startswith("SELECT audit_heads") for s in statements)


def test_an_sso_organization_pays_nothing_for_credentials(
    app: Any, scim: Scim, statements: list[str], connection: Connection
) -> None:
    """With an enabled SSO connection (sso_only by default) a create writes no credentials."""
    import uuid

    from scim_server.db import db
    from sso.connections.models import SsoConnection

    with db.reader(app)() as s, s.begin():
        s.add(
            SsoConnection(org_id=scim.org_id, id=str(uuid.uuid4()), name="Entra", protocol="saml")
        )
    scim.create_user("warm@example.com")
    statements.clear()
    resp = scim.post("/scim/v2/Users", BODY)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert len(statements) <= bound(connection, 5, sqlite=10), "\n".join(statements)
    assert not any("credential_schedules" in s for s in statements)
    # Whether SSO is connected comes with the (cached) settings, not a query of its own.
    assert sum("sso_connections" in s for s in statements) == 1


@pytest.mark.parametrize(
    "path, value, most, sqlite", [("title", "Manager", 8, 9), ("active", False, 7, 8)]
)
def test_a_patch_costs_few_statements(
    scim: Scim,
    statements: list[str],
    connection: Connection,
    path: str,
    value: Any,
    most: int,
    sqlite: int,
) -> None:
    """PATCH: token, the row locked, its contact and the settings fingerprint read in one
    statement (on SQLite, which holds the write lock, the row with them: one statement),
    the row's one UPDATE (title: the contact's UPDATE and its index row), the state read,
    the head, the audit events (the change and, for active, the transition) with the
    head's move, the product event; a deactivation also ends the account's mailed links
    (one UPDATE)."""
    user = scim.post("/scim/v2/Users", BODY).get_json()
    statements.clear()
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": path, "value": value}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert len(statements) <= bound(connection, most, sqlite=sqlite), "\n".join(statements)
    reads = [s for s in statements if "fp_settings" in s]
    assert len(reads) == 1
    assert ("FROM users" in reads[0]) == (connection.dialect.name == "sqlite")
    # The audit head is locked by the statement that reads the user's state.
    (state,) = [s for s in statements if "SELECT 'g' AS kind" in s]
    assert "audit_heads" in state
    assert not any(s.lstrip().startswith("SELECT audit_heads") for s in statements)


def test_a_delete_costs_few_statements(
    scim: Scim, statements: list[str], connection: Connection
) -> None:
    """DELETE: token, the row locked, memberships, index rows, the row (on PostgreSQL one
    statement), the count and the head (PostgreSQL: one statement; SQLite: the head read
    with the row), the audit event, the product event; the deleted user's state is not
    read. On SQLite the first read says whether the user is in a group: a user in none
    costs no DELETE of memberships."""
    user = scim.post("/scim/v2/Users", BODY).get_json()
    statements.clear()
    resp = scim.delete(f"/scim/v2/Users/{user['id']}")
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert len(statements) <= bound(connection, 5, sqlite=9), "\n".join(statements)
    memberships = [s for s in statements if "DELETE FROM group_members" in s]
    assert len(memberships) == (connection.dialect.name == "postgresql")
    # SQLite: the head comes with the user's row, not by a statement of its own.
    assert not any(s.lstrip().startswith("SELECT audit_heads") for s in statements)
    _count_then_head(statements, connection)


def test_a_member_s_delete_removes_its_memberships(
    scim: Scim, statements: list[str], connection: Connection
) -> None:
    """A user in a group: its membership's DELETE runs (the group's version moves)."""
    user = scim.post("/scim/v2/Users", BODY).get_json()
    group = scim.post(
        "/scim/v2/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering",
            "members": [{"value": user["id"]}],
        },
    ).get_json()
    statements.clear()
    resp = scim.delete(f"/scim/v2/Users/{user['id']}")
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert sum("DELETE FROM group_members" in s for s in statements) == 1
    after = scim.get(f"/scim/v2/Groups/{group['id']}").get_json()
    assert after.get("members", []) == []
    assert after["meta"]["version"] != group["meta"]["version"]
