"""What tests share besides fixtures: wire constants, the SCIM client wrapper, data helpers.

Fixtures live in ``conftest.py``; import these from here (never from a conftest).
"""

from __future__ import annotations

import copy
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import sessionmaker

from scim_server.db import AUDIT_KEY_INFO, AUDIT_SIGNER_INFO, EXTENSION, DatabaseState, db, utcnow
from scim_server.ratelimit import Limiter
from scim_server.scim.listing import RENDERED_EXTENSION
from scim_server.scim.user_fragments import RenderedUsers
from scim_server.services.organizations import create_organization
from scim_server.services.tokens import create_token

PG_URL = os.environ.get("SCIM_TEST_DATABASE_URL")
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"


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
    """A new organization and a SCIM token for it: (org id, token secret)."""
    with db.reader(app)() as s:
        org = create_organization(s, name)
        _token, secret = create_token(s, org.id, "test")
        return org.id, secret


def bind_to_connection(app: Flask, engine: Engine, connection: Connection) -> Flask:
    """Point every session of ``app`` at ``connection``, whose transaction the test rolls back."""
    factory = sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        info={
            AUDIT_KEY_INFO: app.config["AUDIT_KEY"],
            AUDIT_SIGNER_INFO: app.config["AUDIT_SIGNER"],
        },
    )
    current: DatabaseState | None = app.extensions.get(EXTENSION)
    if current is not None and current.engine is not engine:
        current.engine.dispose()  # the app's own pool: nothing uses it from here on
    # Statement-level reads would run outside the test transaction (see the `live` fixture).
    app.extensions[EXTENSION] = DatabaseState(
        engine=engine, reader=factory, writer=factory, statement_reader=None
    )
    return app


@contextmanager
def isolated(app: Flask) -> Iterator[Flask]:
    """One test's use of a shared ``app``: its config, extensions and caches are put back after.

    Tests set ``app.config[...]`` freely and the database binding is swapped per
    test. Per-app caches start as the first test found them: plain containers in
    ``app.extensions`` are restored from copies, and the rate limiter (organization
    overrides cached for seconds) and the users kept rendered for list pages are new ones
    for each test, as in a new app.
    """
    config = copy.deepcopy(dict(app.config))
    # A cache kept as a plain container is copied, so what a test puts in it goes too.
    extensions = {
        name: copy.copy(value) if isinstance(value, dict | list | set) else value
        for name, value in app.extensions.items()
    }
    app.extensions["scim_ratelimit"] = Limiter(app.config.get("RATE_LIMIT_CACHE_SECONDS", 10))
    app.extensions[RENDERED_EXTENSION] = RenderedUsers(app.config["PAGE_CACHE_MB"] * 1024 * 1024)
    try:
        yield app
    finally:
        app.config.clear()
        app.config.update(config)
        app.extensions.clear()
        app.extensions.update(extensions)


ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def assert_error(resp: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """A SCIM Error resource (RFC 7644 §3.12) with this status and, if given, scimType."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/scim+json"
    body = resp.get_json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert body["detail"]
    if scim_type is not None:
        assert body.get("scimType") == scim_type
    return body


class Clock:
    """A clock the test moves by hand (the worker's injected ``clock``)."""

    def __init__(self) -> None:
        self.now = utcnow() + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class SmtpRecorder:
    """An aiosmtpd handler that keeps what it accepts, or refuses every message with 550."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = False
        self.refused = 0
        self.require_login = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.require_login and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if self.refuse:
            self.refused += 1
            return "550 5.7.1 Refused by the test server"
        message = message_from_bytes(envelope.content, policy=email_policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


def free_port() -> int:
    """A port nothing listens on (bound, then released) on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def smtp_server(login: tuple[str, str] | None = None) -> Iterator[tuple[SmtpRecorder, int]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 and a free port, in this process.

    ``login``: the server requires AUTH with this user and password (over plain
    SMTP: the test has no certificate) and refuses mail from anyone else.
    """
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        expected = LoginPassword(*(part.encode() for part in login or ("", "")))
        return AuthResult(success=data == expected, handled=False)

    recorder = SmtpRecorder()
    kwargs: dict[str, Any] = {}
    if login is not None:
        # AUTH without TLS (the test has no certificate); DATA then checks the login.
        kwargs = {"authenticator": authenticator, "auth_require_tls": False}
        recorder.require_login = True
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), **kwargs)
    port = controller.port
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()
