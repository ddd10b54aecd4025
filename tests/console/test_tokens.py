"""The tokens page through the HTTP client: create (shown once), last used, revoke."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console


def test_create_shows_the_secret_once_and_it_works(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    sign_in_console(app, client, scim, "org_admin")
    resp = client.post(
        "/admin/tokens/",
        data={"csrf_token": csrf_token(client), "name": "Entra <prod>", "kind": "scim"},
    )
    assert resp.status_code == 303  # a reload of what follows creates nothing
    resp = client.get(resp.headers["Location"])
    html = resp.get_data(as_text=True)
    assert resp.headers["Cache-Control"] == "no-store"
    secret = re.search(r'<p class="secret" id="new-secret">([^<]+)</p>', html).group(1)
    assert "Entra &lt;prod&gt;" in html
    assert (
        client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {secret}"}).status_code
        == 200
    )
    listed = client.get("/admin/tokens/").get_data(as_text=True)
    assert secret not in listed and "Entra &lt;prod&gt;" in listed


def test_last_used_shows(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """The fixture's token created a user: its last use shows; read-only for an auditor."""
    sign_in_console(app, client, scim, "auditor")  # created through the fixture token
    html = client.get("/admin/tokens/").get_data(as_text=True)
    row = re.search(r"<td>test</td>.*?</tr>", html, re.S).group(0)
    assert "<time" in row.split("</td>", 3)[3]
    assert "Create token" not in html and "Revoke" not in html


def test_revoke(app: Flask, client: FlaskClient, scim: Scim) -> None:
    sign_in_console(app, client, scim, "org_admin")
    html = client.get("/admin/tokens/").get_data(as_text=True)
    token_id = re.search(r"/admin/tokens/([0-9a-f-]{36})/revoke", html).group(1)
    resp = client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(client)})
    assert resp.status_code == 303
    assert scim.get("/scim/v2/Users").status_code == 401
    assert "Revoked" in client.get("/admin/tokens/").get_data(as_text=True)


def test_bad_input_and_permissions(app: Flask, client: FlaskClient, scim: Scim) -> None:
    sign_in_console(app, client, scim, "user_manager")
    assert client.get("/admin/tokens/").status_code == 403
    assert 'href="/admin/tokens/"' not in client.get("/admin/").get_data(as_text=True)
    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    token = csrf_token(client)
    resp = client.post("/admin/tokens/", data={"csrf_token": token, "name": "", "kind": "scim"})
    assert resp.status_code == 400 and 'id="name-error"' in resp.get_data(as_text=True)
    resp = client.post("/admin/tokens/", data={"csrf_token": token, "name": "x", "kind": "root"})
    assert resp.status_code == 400 and "Unknown token kind" in resp.get_data(as_text=True)


def test_tokens_are_made_by_an_org_admin_only(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """A token acts as the whole organization with no console role to limit it (an admin
    token resets any password to any address; a SCIM token sets any account's password and
    e-mail, as the IdP does): a security admin who could make one would hold more than
    their role. They see and revoke tokens; the page offers no form, a forged POST is 403."""
    sign_in_console(app, client, scim, "security_admin", "sec@example.com")
    page = client.get("/admin/tokens/").get_data(as_text=True)
    assert "Create token" not in page and "Tokens are made by an organization admin" in page
    assert "Revoke" in page
    for kind in ("scim", "admin"):
        resp = client.post(
            "/admin/tokens/", data={"csrf_token": csrf_token(client), "name": "x", "kind": kind}
        )
        assert resp.status_code == 403
    assert "<td>x</td>" not in client.get("/admin/tokens/").get_data(as_text=True)
    boss = app.test_client()
    sign_in_console(app, boss, scim, "org_admin", "boss@example.com")
    assert 'value="admin"' in boss.get("/admin/tokens/").get_data(as_text=True)
    resp = boss.post(
        "/admin/tokens/",
        data={"csrf_token": csrf_token(boss), "name": "Reporting", "kind": "admin"},
    )
    assert resp.status_code == 303


def test_a_second_revoke_of_a_token_writes_no_second_event(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A double click, a second tab or a replayed form: the token stays revoked at its
    first time, and the log holds one ``token.revoke`` (two gave "when was access removed"
    two answers)."""
    from sqlalchemy import select

    from scim_server.db import db
    from scim_server.models import AuditEvent, ScimToken
    from scim_server.services import tokens

    with db.reader(app)() as s:
        token, _secret = tokens.create_token(s, scim.org_id, "leaked")
        token_id = token.id
    sign_in_console(app, client, scim, "org_admin", "boss@acme.example")
    csrf = csrf_token(client)
    for _ in range(2):
        resp = client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf})
        assert resp.status_code == 303
    with db.reader(app)() as s:
        revoked = s.scalars(
            select(AuditEvent).where(
                AuditEvent.org_id == scim.org_id,
                AuditEvent.action == "token.revoke",
                AuditEvent.resource_id == token_id,
            )
        ).all()
        row = s.get(ScimToken, (scim.org_id, token_id))
        assert row is not None and row.revoked_at is not None
    assert len(revoked) == 1
