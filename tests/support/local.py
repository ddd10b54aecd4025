"""Local sign-in helpers: a person with a password, the password form, TOTP codes, the clock."""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import MailOutbox, User
from scim_server.services import passwords, totp
from tests.support import Scim
from tests.support.sso import make_person, read

PASSWORD = "correct horse battery staple"


def give_password(
    app: Flask,
    org_id: str,
    user_id: str,
    password: str = PASSWORD,
    *,
    temporary: bool = False,
    must_change: bool = False,
    expires_at: datetime | None = None,
) -> None:
    """Set the user's password as the credentials half would (policy checked)."""
    hashing = passwords.Hashing.from_config(app.config)
    with read(app) as s, s.begin():
        user = s.get(User, (org_id, user_id))
        assert user is not None
        passwords.set_password(
            s,
            hashing,
            passwords.PasswordPolicy(),
            user,
            password,
            identifiers=[],
            temporary=temporary,
            must_change=must_change,
            expires_at=expires_at,
            detail="set by the test",
        )


def person_with_password(app: Flask, scim: Scim, login: str) -> str:
    """A licensed person with the password ``PASSWORD``: their user id."""
    user_id = make_person(app, scim, login)
    give_password(app, scim.org_id, user_id)
    return user_id


def mail_bodies(app: Flask, org_id: str, kind: str) -> list[str]:
    """The text bodies of the organization's queued mail of ``kind``."""
    return [m.body_text or "" for m in mails(app, org_id, kind)]


def forgot(client: FlaskClient, identifier: str, ip: str = "10.0.0.7", **kw: Any) -> Any:
    """The forgot form's POST, from ``ip``."""
    return client.post(
        "/sso/forgot", data={"identifier": identifier}, environ_base={"REMOTE_ADDR": ip}, **kw
    )


def sign_in(
    client: FlaskClient, login: str, password: str = PASSWORD, next_path: str = "/after"
) -> Any:
    """The password form's POST, with the token the form carries in this browser."""
    fields = {"csrf": form_token(client), "login": login, "password": password, "next": next_path}
    return client.post("/sso/login/password", data=fields)


def form_token(client: FlaskClient) -> str:
    """The sign-in pages' CSRF token of this browser, as a page it opened would carry it
    (``sso.local.web.csrf_token``); the password form's own page is tested with it."""
    with client.session_transaction() as sess:
        token = sess.get("csrf")
        if not isinstance(token, str):
            token = sess["csrf"] = secrets.token_urlsafe(24)
    return token


def csrf_of(body: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', body)
    assert found, body
    return found.group(1)


def form_post(client: FlaskClient, page: str, action: str, data: dict[str, str]) -> Any:
    """Open ``page``, then post ``data`` with its CSRF token to ``action``."""
    opened = client.get(page)
    assert opened.status_code == 200, opened.get_data(as_text=True)
    return client.post(action, data={**data, "csrf": csrf_of(opened.get_data(as_text=True))})


def secret_of(body: str) -> str:
    """The TOTP key the enrolment page shows (groups of four)."""
    found = re.search(r'<code class="mono">([A-Z2-7 ]+)</code>', body)
    assert found, body
    return found.group(1).replace(" ", "")


def code_now(secret: str, now: datetime, steps: int = 0) -> str:
    return totp.code_at(secret, totp.step_of(now) + steps)


def codes_of(body: str) -> list[str]:
    return re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", body)


def mails(app: Flask, org_id: str, kind: str) -> list[MailOutbox]:
    with read(app) as s:
        return list(
            s.scalars(
                select(MailOutbox).where(MailOutbox.org_id == org_id, MailOutbox.kind == kind)
            )
        )


def signed_in(client: FlaskClient) -> bool:
    """Whether the browser holds a sign-in session (the landing page says so)."""
    return client.get("/sso/welcome").status_code == 200


@contextmanager
def slots_held(directory: Path, count: int) -> Iterator[None]:
    """Hold slots 0..count-1 the way other workers would: an exclusive flock on each file."""
    directory.mkdir(parents=True, exist_ok=True)
    fds: list[int] = []
    try:
        for slot in range(count):
            fd = os.open(directory / f"slot-{slot}", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fds.append(fd)
        yield
    finally:
        for fd in fds:
            os.close(fd)


@contextmanager
def busy_node(app: Flask, directory: Path) -> Iterator[None]:
    """Every argon2 slot of the app's node held by someone else (one slot, no wait)."""
    app.config.update(ARGON2_SLOT_DIR=str(directory), ARGON2_CONCURRENCY=1, ARGON2_WAIT_MS=0)
    with slots_held(directory, 1):
        yield
