"""Fixtures: the same suite on SQLite and PostgreSQL, one rolled-back transaction per test.

PostgreSQL is used when ``SCIM_TEST_DATABASE_URL`` is set (for example
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); otherwise those tests
are skipped with the reason shown in the summary.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from sqlalchemy import make_url, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from scim_server import create_app
from scim_server.db import AUDIT_KEY_INFO, EXTENSION, Base, DatabaseState, db, make_engine
from scim_server.migrate import upgrade
from scim_server.services.organizations import create_organization
from scim_server.services.tokens import create_token

# Shared, noisy CI machines: a slow example is not a failure; correctness is.
settings.register_profile(
    "project",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("project")

PG_URL = os.environ.get("SCIM_TEST_DATABASE_URL")
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"


def _reset(engine: Engine) -> None:
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A migrated database of each kind, shared by the session."""
    schema = None
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("PostgreSQL: set SCIM_TEST_DATABASE_URL to run the suite on PostgreSQL")
        # A schema of our own, so that concurrent test runs on one database never collide.
        schema = f"scim_test_{uuid.uuid4().hex[:12]}"
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    else:
        admin = None
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    eng = make_engine(str(url) if isinstance(url, str) else url.render_as_string(False))
    _reset(eng)
    upgrade(eng)
    yield eng
    eng.dispose()
    if admin is not None:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """SQLAlchemy's test recipe: an outer transaction rolled back after each test."""
    conn = engine.connect()
    trans = conn.begin()
    yield conn
    trans.rollback()
    conn.close()


@pytest.fixture
def app(engine: Engine, connection: Connection) -> Flask:
    app = create_app({"TESTING": True, "DATABASE_URL": str(engine.url.render_as_string(False))})
    return bind_to_connection(app, engine, connection)


def bind_to_connection(app: Flask, engine: Engine, connection: Connection) -> Flask:
    """Point every session of ``app`` at ``connection``, whose transaction the test rolls back."""
    factory = sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        info={AUDIT_KEY_INFO: app.config["AUDIT_KEY"]},
    )
    db.engine(app).dispose()
    # Statement-level reads would run outside the test transaction (see the `live` fixture).
    app.extensions[EXTENSION] = DatabaseState(
        engine=engine, reader=factory, writer=factory, statement_reader=None
    )
    return app


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """A session on the test transaction, for arranging data and checking database state."""
    with db.reader(app)() as s:
        yield s


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


class Scim:
    """A SCIM client for one organization: the bearer token and content type set."""

    def __init__(self, client: FlaskClient, token: str, org_id: str) -> None:
        self.client = client
        self.token = token
        self.org_id = org_id

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.headers(kw.pop("headers", None)), **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.client.delete(url, headers=self.headers(kw.pop("headers", None)), **kw)

    def _send(self, method: str, url: str, body: Any, **kw: Any) -> Any:
        headers = self.headers({"Content-Type": SCIM_JSON, **kw.pop("headers", {})})
        return self.client.open(url, method=method, json=body, headers=headers, **kw)

    def post(self, url: str, body: Any, **kw: Any) -> Any:
        return self._send("POST", url, body, **kw)

    def put(self, url: str, body: Any, **kw: Any) -> Any:
        return self._send("PUT", url, body, **kw)

    def patch(self, url: str, body: Any, **kw: Any) -> Any:
        return self._send("PATCH", url, body, **kw)

    def patch_ops(self, url: str, *ops: dict[str, Any], **kw: Any) -> Any:
        return self.patch(url, {"schemas": [PATCH_OP], "Operations": list(ops)}, **kw)

    def create_user(self, user_name: str, **attrs: Any) -> dict[str, Any]:
        body = {"schemas": [USER_SCHEMA], "userName": user_name, **attrs}
        resp = self.post("/scim/v2/Users", body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    def create_group(
        self, name: str, members: list[str] | None = None, **attrs: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": name, **attrs}
        if members:
            body["members"] = [{"value": m} for m in members]
        resp = self.post("/scim/v2/Groups", body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()


def make_org(app: Flask, name: str) -> tuple[str, str]:
    with db.reader(app)() as s:
        org = create_organization(s, name)
        _token, secret = create_token(s, org.id, "test")
        return org.id, secret


@pytest.fixture
def scim(app: Flask, client: FlaskClient) -> Scim:
    org_id, secret = make_org(app, "acme")
    return Scim(client, secret, org_id)


@pytest.fixture
def other_scim(app: Flask, client: FlaskClient) -> Scim:
    """A second organization, to show nothing crosses tenants."""
    org_id, secret = make_org(app, "globex")
    return Scim(client, secret, org_id)


@pytest.fixture
def admin(app: Flask, client: FlaskClient, scim: Scim) -> Scim:
    """An admin API client for the ``scim`` organization."""
    with db.reader(app)() as s:
        _token, secret = create_token(s, scim.org_id, "compliance", kind="admin")
    return Scim(client, secret, scim.org_id)


@pytest.fixture
def live(engine: Engine) -> Iterator[tuple[Flask, Scim]]:
    """An app on the real database (no test transaction); its organization is removed after."""
    from sqlalchemy import delete

    from scim_server.models import Organization

    app = create_app({"TESTING": True, "DATABASE_URL": engine.url.render_as_string(False)})
    org_id, secret = make_org(app, f"live-{uuid.uuid4().hex[:8]}")
    yield app, Scim(app.test_client(), secret, org_id)
    with engine.begin() as conn:
        conn.execute(delete(Organization).where(Organization.id == org_id))
    db.engine(app).dispose()
