"""Console helpers: sign a test client in as a console user without an IdP, read CSRF tokens.

``sign_in_as`` sets the session exactly as a sign-in does (``start_session``),
so the console's own checks (idle timeout, status, roles, CSRF) all still run.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, session
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.models import User
from scim_server.services import console_access
from sso.signin.session import start_session
from tests.support import Scim

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def console_user(app: Flask, scim: Scim, user_name: str, *roles: str, **attrs: Any) -> str:
    """A SCIM-provisioned user of ``scim``'s organization holding the console ``roles``."""
    doc = scim.create_user(user_name, emails=[{"value": user_name, "primary": True}], **attrs)
    for role in roles:
        with db.reader(app)() as s:
            console_access.grant(s, scim.org_id, doc["id"], role)
    return str(doc["id"])


def session_epoch(app: Flask, org_id: str, user_id: str) -> int:
    """The account's ``session_epoch`` now, as a sign-in puts it in the session (0: gone)."""
    with db.reader(app)() as s:
        user = s.get(User, (org_id, user_id))
        return user.session_epoch if user is not None else 0


def sign_in_as(app: Flask, client: FlaskClient, org_id: str, user_id: str) -> None:
    """Give ``client`` the session cookie a completed sign-in of this user would give."""
    epoch = session_epoch(app, org_id, user_id)
    with app.test_request_context():
        start_session(org_id, user_id, "test", None, epoch=epoch)
        signed = dict(session)
    with client.session_transaction() as sess:
        sess.clear()
        sess.update(signed)


def sign_in_console(
    app: Flask, client: FlaskClient, scim: Scim, role: str, user_name: str = ""
) -> str:
    """A new console user with ``role``, signed in on ``client``: their user id."""
    user_id = console_user(app, scim, user_name or f"{role}@example.com", role)
    sign_in_as(app, client, scim.org_id, user_id)
    return user_id


def csrf_token(client: FlaskClient, page: str = "/admin/") -> str:
    """The CSRF token a console page hands this client (as a browser would read it)."""
    resp = client.get(page)
    assert resp.status_code == 200, resp.status_code
    found = _CSRF.search(resp.get_data(as_text=True))
    assert found, "no csrf-token meta on the page"
    return found.group(1)


def browser_sign_in(app: Flask, context: Any, base_url: str, org_id: str, user_id: str) -> None:
    """Give a Playwright browser context the session cookie a completed sign-in would set."""
    epoch = session_epoch(app, org_id, user_id)
    with app.test_request_context():
        start_session(org_id, user_id, "test", None, epoch=epoch)
        value = app.session_interface.get_signing_serializer(app).dumps(dict(session))  # type: ignore[attr-defined]
    context.add_cookies(
        [{"name": app.config["SESSION_COOKIE_NAME"], "value": value, "url": base_url}]
    )
