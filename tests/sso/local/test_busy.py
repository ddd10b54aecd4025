"""Every argon2 slot of the node busy: the sign-in pages answer 503 at once, nothing checked."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scim_server.models import AccountLockout, UserPassword
from tests.sso.local.conftest import LOGIN
from tests.sso.local.test_password import _temporary
from tests.support import Clock, Scim
from tests.support.local import PASSWORD, busy_node, form_post, sign_in, signed_in
from tests.support.sso import events, read, sign_ins

BUSY = "Many people are signing in right now; try again in a moment."


def _lockouts(app: Flask) -> int:
    with read(app) as s:
        return s.scalar(select(func.count()).select_from(AccountLockout)) or 0


def test_sign_in_refused_with_503_when_every_slot_is_held(
    app: Flask, client: FlaskClient, scim: Scim, person: str, tmp_path: Path
) -> None:
    """503 + Retry-After: 1, the password form again with the reason; no check, no count."""
    records, audit = len(sign_ins(app, scim.org_id)), len(events(app, scim.org_id))
    with busy_node(app, tmp_path / "slots"):
        for password in (PASSWORD, "a wrong password that would count"):
            resp = sign_in(client, LOGIN, password)
            body = resp.get_data(as_text=True)
            assert resp.status_code == 503, body
            assert resp.headers["Retry-After"] == "1"
            assert BUSY in body and 'action="/sso/login/password"' in body
            assert 'autocomplete="current-password"' in body and password not in body
            assert "text/html" in resp.headers["Content-Type"]
    assert not signed_in(client)
    assert len(sign_ins(app, scim.org_id)) == records  # no success, no failure recorded
    assert len(events(app, scim.org_id)) == audit
    assert _lockouts(app) == 0  # the wrong password was never counted
    # The slot free again: the same request signs in.
    resp = sign_in(client, LOGIN)
    assert resp.status_code == 303 and resp.headers["Location"] == "/after"
    assert signed_in(client)


def test_unknown_account_gets_the_same_503(
    app: Flask, client: FlaskClient, scim: Scim, person: str, tmp_path: Path
) -> None:
    """An unknown login is told the same: a busy node says nothing about who has an account."""
    with busy_node(app, tmp_path / "slots"):
        known = sign_in(client, LOGIN, "some password here")
        unknown = sign_in(client, "nobody@example.com", "some password here")
    assert known.status_code == unknown.status_code == 503
    assert BUSY in unknown.get_data(as_text=True)


def test_forced_change_refused_with_503_and_the_password_kept(
    app: Flask, client: FlaskClient, scim: Scim, clock: Clock, tmp_path: Path
) -> None:
    """The new-password page on a busy node: 503, nothing changed, the sign-in still pending."""
    user_id, temp = _temporary(app, scim, clock)
    assert sign_in(client, "tim@example.com", temp).status_code == 303
    with read(app) as s:
        before = s.get(UserPassword, (scim.org_id, user_id)).hash
    new = "Marigold-harbour-lantern-77"
    with busy_node(app, tmp_path / "slots"):
        resp = form_post(
            client,
            "/sso/password/change",
            "/sso/password/change",
            {"password": new, "confirm": new},
        )
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "1"
    assert BUSY in resp.get_data(as_text=True)
    with read(app) as s:
        assert s.get(UserPassword, (scim.org_id, user_id)).hash == before
    resp = form_post(
        client, "/sso/password/change", "/sso/password/change", {"password": new, "confirm": new}
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/after"
