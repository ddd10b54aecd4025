"""A small User/Group data set shared by the filter and listing tests.

It is created once per module and database (through the HTTP API) inside an
outer transaction; each test runs in a savepoint on that transaction, rolled
back afterwards, so tests still cannot see each other's writes. A module uses
it by importing all the fixtures below.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Connection, Engine

from scim_server import create_app
from tests.support import ENTERPRISE, USER_SCHEMA, Scim, bind_to_connection, make_org

ALL_USERS = {"alice", "bob", "carol", "dave", "eve"}
ALL_GROUPS = {"eng", "sales", "ops"}

# Created in this order (so meta.created ascends alice..eve). userName case
# varies; dave's userName holds LIKE wildcards and eve's the characters they
# would match, so an unescaped `co`/`sw` shows up. "{key}" is replaced by the id
# of an earlier resource.
USERS: dict[str, dict[str, Any]] = {
    "alice": {
        "userName": "Alice@Example.com",
        "externalId": "EXT-Alice",
        "name": {"givenName": "Alice", "familyName": "Zephyr"},
        "displayName": "Alice Zephyr",
        "title": "Engineer",
        "active": True,
        "emails": [
            {"value": "alice@example.com", "type": "work", "primary": True},
            {"value": "alice@home.org", "type": "home"},
        ],
        ENTERPRISE: {"employeeNumber": "1001", "department": "R&D"},
    },
    "bob": {
        "userName": "bob",
        "externalId": "ext-bob",
        "name": {"givenName": "Bob", "familyName": "Young"},
        "title": "Manager",
        "active": False,
        # bob's *home* address is at example.com: element-wise matching must not mix them.
        "emails": [
            {"value": "bob@example.com", "type": "home"},
            {"value": "bob@work.net", "type": "work", "primary": True},
        ],
        ENTERPRISE: {"employeeNumber": "1002", "department": "Sales", "manager": "{alice}"},
    },
    "carol": {
        "userName": "CAROL.k",
        "name": {"givenName": "Carol", "familyName": "Xu"},
        "title": "Senior Engineer",
        "active": True,
        "emails": [{"value": "carol@example.com", "type": "work"}],
        ENTERPRISE: {"employeeNumber": "2001", "department": "R&D", "manager": "{alice}"},
    },
    "dave": {
        "userName": "dave_100%",
        "nickName": "d/_\\%",  # the LIKE escape character of SQLAlchemy, and a backslash
        "name": {"givenName": "dave", "familyName": "adams"},
        "active": False,
        "emails": [{"value": "DAVE@Example.COM", "type": "work"}],
    },
    "eve": {
        "userName": "eve-X100-z",
        "externalId": "EXT-eve",
        "name": {"givenName": "Eve", "familyName": "Brown"},
        "title": "Intern",
        "active": True,
        "emails": [{"value": "eve@home.org", "type": "home"}],
        ENTERPRISE: {"department": "Sales"},
    },
}

# key, displayName, members, other attributes
GROUPS: list[tuple[str, str, list[str], dict[str, Any]]] = [
    ("eng", "Engineering", ["alice", "carol"], {"externalId": "G-ENG"}),
    ("sales", "Sales", ["bob"], {}),
    ("ops", "Ops", ["sales", "dave"], {}),  # a group member, and a user
]


class Data:
    """The created resources (``ids[key]``, ``docs[key]``) and the organization's credentials."""

    def __init__(self, org_id: str, token: str) -> None:
        self.org_id = org_id
        self.token = token
        self.ids: dict[str, str] = {}
        self.docs: dict[str, dict[str, Any]] = {}

    def names(self, resources: list[dict[str, Any]]) -> list[str]:
        """The keys of ``resources``, in order (unknown ids are returned as they are)."""
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id.get(r["id"], r["id"]) for r in resources]

    def fill(self, text: str) -> str:
        """Replace ``{key}`` by an id, ``{key_created}`` by its meta.created and
        ``{key_created_cet}`` by the same instant written with a +01:00 offset."""
        subs = dict(self.ids)
        for key, doc in self.docs.items():
            created = doc["meta"]["created"]
            cet = datetime.fromisoformat(created).astimezone(timezone(timedelta(hours=1)))
            subs[f"{key}_created"] = created
            subs[f"{key}_created_cet"] = cet.isoformat()
        return text.format(**subs)


def _refs(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _refs(v, ids) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    return value


@pytest.fixture(scope="module")
def data_connection(engine: Engine) -> Iterator[Connection]:
    """The module's outer transaction, holding the data set; rolled back at the end."""
    conn = engine.connect()
    trans = conn.begin()
    yield conn
    trans.rollback()
    conn.close()


@pytest.fixture(scope="module")
def data_app(engine: Engine, data_connection: Connection) -> Flask:
    """One application for the module (building one per test dominates the run time)."""
    app = create_app({"TESTING": True, "DATABASE_URL": str(engine.url.render_as_string(False))})
    return bind_to_connection(app, engine, data_connection)


@pytest.fixture(scope="module")
def data(data_app: Flask) -> Data:
    """Create the data set once, through the API."""
    app = data_app
    org_id, token = make_org(app, "dataset")
    scim = Scim(app.test_client(), token, org_id)
    d = Data(org_id, token)
    for key, attrs in USERS.items():
        body = _refs(attrs, d.ids)
        if ENTERPRISE in body:
            body["schemas"] = [USER_SCHEMA, ENTERPRISE]
        doc = scim.create_user(body.pop("userName"), **body)
        d.ids[key], d.docs[key] = doc["id"], doc
    for key, name, members, extra in GROUPS:
        doc = scim.create_group(name, [d.ids[m] for m in members], **extra)
        d.ids[key], d.docs[key] = doc["id"], doc
    return d


@pytest.fixture
def connection(data_connection: Connection, data: Data) -> Iterator[Connection]:
    """Overrides the suite's per-test transaction: a savepoint over the data set."""
    nested = data_connection.begin_nested()
    yield data_connection
    if nested.is_active:
        nested.rollback()


@pytest.fixture
def app(data_app: Flask, connection: Connection) -> Flask:
    """Overrides the suite's per-test application with the module's (change config with
    ``monkeypatch.setitem(app.config, ...)``)."""
    return data_app


@pytest.fixture
def ds(client: FlaskClient, data: Data) -> Scim:
    """A SCIM client for the data set's organization."""
    return Scim(client, data.token, data.org_id)
