"""Fixtures: the same suite on SQLite and PostgreSQL, one rolled-back transaction per test.

PostgreSQL is used when ``SCIM_TEST_DATABASE_URL`` is set (for example
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); otherwise its half of
the suite is deselected at collection, with one line in the summary saying so.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from sqlalchemy import make_url, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from scim_server import create_app
from scim_server.db import Base, db, make_engine
from scim_server.migrate import upgrade
from scim_server.services.tokens import create_token
from tests.support import (
    PG_URL,
    Scim,
    SmtpRecorder,
    bind_to_connection,
    isolated,
    make_org,
    smtp_server,
)
from tests.support.dns_server import LocalDns, shared_dns

# Shared, noisy CI machines: a slow example is not a failure; correctness is.
settings.register_profile(
    "project",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("project")

NO_POSTGRESQL = "PostgreSQL: set SCIM_TEST_DATABASE_URL to run the suite on PostgreSQL"
LEFT_OUT = pytest.StashKey[int]()  # how many tests collection left out


# argon2id at its cheapest in tests (a hash costs ~1 ms instead of ~30): the cost is
# measured in bench/, and a test that needs the production parameters sets them.
TEST_CONFIG = {"TESTING": True, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without PostgreSQL, leave out its half of the suite here: one summary line, not ~900 skips."""
    if PG_URL:
        return
    kept, left_out = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("engine") == "postgresql"
        (left_out if on_pg else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
        config.stash[LEFT_OUT] = len(left_out)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands its count to the controller, which prints the summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["left_out"] = session.config.stash.get(LEFT_OUT, 0)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist's controller: every worker collects the whole suite, so each left out as many."""
    left_out = getattr(node, "workeroutput", {}).get("left_out", 0)
    config = node.config
    config.stash[LEFT_OUT] = max(config.stash.get(LEFT_OUT, 0), left_out)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    left_out = config.stash.get(LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(f"{NO_POSTGRESQL} ({left_out} tests deselected).")


def _reset(engine: Engine) -> None:
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


class _Databases:
    """The session's migrated databases and their apps, one of each kind, made when first used.

    ``engine`` is parametrized by kind, and pytest finalizes a parametrized session
    fixture whenever the next test wants the other kind: under ``--dist loadfile`` that is
    twice per file, and each time cost a migration and an app. These live until the end
    of the session instead; ``engine`` and ``shared_app`` only look them up.
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.engines: dict[str, Engine] = {}
        self.apps: dict[str, Flask] = {}
        self.schemas: list[str] = []

    def engine(self, kind: str) -> Engine:
        if kind not in self.engines:
            self.engines[kind] = self._migrated(kind)
        return self.engines[kind]

    def app(self, kind: str) -> Flask:
        if kind not in self.apps:
            url = self.engine(kind).url.render_as_string(False)
            self.apps[kind] = create_app({**TEST_CONFIG, "DATABASE_URL": url})
        return self.apps[kind]

    def _migrated(self, kind: str) -> Engine:
        if kind == "postgresql":
            assert PG_URL is not None  # engine skips PostgreSQL without it
            # A schema of our own, so that concurrent test runs on one database never collide.
            schema = f"scim_test_{uuid.uuid4().hex[:12]}"
            admin = make_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            admin.dispose()
            self.schemas.append(schema)
            url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
            eng = make_engine(url.render_as_string(False))
        else:
            eng = make_engine(f"sqlite:///{self.tmp_path_factory.mktemp('db') / 'test.db'}")
        _reset(eng)
        upgrade(eng)
        return eng

    def close(self) -> None:
        for app in self.apps.values():
            db.engine(app).dispose()
        for eng in self.engines.values():
            eng.dispose()
        if self.schemas and PG_URL is not None:
            admin = make_engine(PG_URL)
            with admin.begin() as conn:
                for schema in self.schemas:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Databases]:
    made = _Databases(tmp_path_factory)
    yield made
    made.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, databases: _Databases) -> Engine:
    """A migrated database of each kind, shared by the session."""
    if request.param == "postgresql" and not PG_URL:
        pytest.skip(NO_POSTGRESQL)  # only when collection did not leave it out
    return databases.engine(request.param)


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """SQLAlchemy's test recipe: an outer transaction rolled back after each test."""
    conn = engine.connect()
    trans = conn.begin()
    yield conn
    trans.rollback()
    conn.close()


@pytest.fixture
def alone(connection: Connection) -> Connection:
    """For a test that takes the whole database down and up again (a migration's): what
    other tests committed and left (a CLI test's organizations) is deleted in this test's
    transaction, rolled back after, so that its downgrades see only its own rows. Ask for it
    first, before the fixtures that make this test's organizations."""
    from sqlalchemy import delete

    from scim_server.models import Organization

    connection.execute(delete(Organization))
    return connection


@pytest.fixture(scope="session")
def shared_app(engine: Engine, databases: _Databases) -> Flask:
    """One application per database for the session (one per test was a third of the run)."""
    return databases.app(engine.dialect.name)


@pytest.fixture
def app(shared_app: Flask, engine: Engine, connection: Connection) -> Iterator[Flask]:
    """The session's app on this test's transaction; config and extensions put back after."""
    with isolated(shared_app) as app:
        yield bind_to_connection(app, engine, connection)


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

    app = create_app({**TEST_CONFIG, "DATABASE_URL": engine.url.render_as_string(False)})
    org_id, secret = make_org(app, f"live-{uuid.uuid4().hex[:8]}")
    yield app, Scim(app.test_client(), secret, org_id)
    with engine.begin() as conn:
        conn.execute(delete(Organization).where(Organization.id == org_id))
    db.engine(app).dispose()


@pytest.fixture
def local_dns(app: Flask) -> LocalDns:
    """A real DNS server on 127.0.0.1 (UDP), empty, the app's resolver (``DNS_RESOLVERS``)."""
    server = shared_dns()
    server.reset()
    app.config["DNS_RESOLVERS"] = server.resolvers
    app.config["DNS_TIMEOUT_SECONDS"] = 2
    return server


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpRecorder, int]]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd): its recorder and port."""
    with smtp_server() as server:
        yield server


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium (Debian's, never a downloaded one) for every browser test of the run.

    One Playwright per process: a second ``sync_playwright`` started while the first
    runs fails ("Sync API inside the asyncio loop"), so every test shares this one.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        found = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield found
        found.close()
