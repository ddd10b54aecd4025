"""Property-based fuzzing of /api/v1 against its own OpenAPI description, on a live server.

schemathesis generates requests from the description served at
/api/v1/openapi.json by the app running on 127.0.0.1 (a real HTTP server, a
real database: no test transaction) and checks every answer: no 5xx, a
documented status, the documented media type, a body that matches its schema.
Examples per operation are bounded (``EXAMPLES``) so the run stays short.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from werkzeug.serving import WSGIRequestHandler, make_server

from scim_server import create_app
from scim_server.admin.openapi import SPEC_PATH
from scim_server.db import db
from scim_server.errors import InvalidValueError
from scim_server.models import Organization
from scim_server.services.tokens import create_token
from tests.support import make_org

EXAMPLES = 12  # per operation: ~45 operations, a few hundred requests in all
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log."""


@contextmanager
def _serving(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def live_api(engine: Engine, monkeypatch) -> Iterator[tuple[str, str]]:
    """(base URL, admin token) of the app served on 127.0.0.1; its organization removed after."""

    def no_network(url: str) -> bytes:
        raise InvalidValueError("metadata URLs are not fetched in this test (127.0.0.1 only)")

    # Generated bodies may name a metadata URL: nothing leaves this machine.
    monkeypatch.setattr("sso.connections.service.fetch_metadata", no_network)
    app = create_app({"TESTING": True, "DATABASE_URL": engine.url.render_as_string(False)})
    org_id, _scim_token = make_org(app, f"fuzz-{uuid.uuid4().hex[:8]}")
    with db.reader(app)() as s:
        _token, secret = create_token(s, org_id, "fuzz", kind="admin")
    try:
        with _serving(app) as base_url:
            yield base_url, secret
    finally:
        with engine.begin() as conn:
            conn.execute(delete(Organization).where(Organization.id == org_id))
        db.engine(app).dispose()


def test_the_admin_api_keeps_its_description_under_fuzzing(live_api):
    """Every operation, EXAMPLES generated requests each: no 5xx, each answer as documented."""
    base_url, token = live_api
    schema = schemathesis.openapi.from_url(base_url + SPEC_PATH)
    headers = {"Authorization": f"Bearer {token}"}
    cases: list[int] = []
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40

    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            cases.append(1)
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

        try:
            run()
        except (Exception, FailureGroup) as exc:  # every operation's failures, reported together
            failures.append(f"{operation.label}: {exc}")
    print(f"schemathesis: {len(cases)} generated cases over {len(operations)} operations")
    assert failures == [], "\n\n".join(failures)
