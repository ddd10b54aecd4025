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
    sign_in_console(app, client, scim, "security_admin")
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
    sign_in_console(app, client, scim, "security_admin", "sec@example.com")
    token = csrf_token(client)
    resp = client.post("/admin/tokens/", data={"csrf_token": token, "name": "", "kind": "scim"})
    assert resp.status_code == 400 and 'id="name-error"' in resp.get_data(as_text=True)
    resp = client.post("/admin/tokens/", data={"csrf_token": token, "name": "x", "kind": "root"})
    assert resp.status_code == 400 and "Unknown token kind" in resp.get_data(as_text=True)


def test_an_admin_api_token_is_made_by_an_org_admin_only(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """An admin API token acts as the whole organization with no console role to limit it
    (it resets any account's password to any address): a security admin who could mint
    one would hold more than their role. They make SCIM tokens; the form offers no other."""
    sign_in_console(app, client, scim, "security_admin", "sec@example.com")
    page = client.get("/admin/tokens/").get_data(as_text=True)
    assert 'value="scim"' in page and 'value="admin"' not in page
    resp = client.post(
        "/admin/tokens/", data={"csrf_token": csrf_token(client), "name": "x", "kind": "admin"}
    )
    assert resp.status_code == 403
    assert "organization admin" in resp.get_data(as_text=True)
    assert "<td>x</td>" not in client.get("/admin/tokens/").get_data(as_text=True)
    boss = app.test_client()
    sign_in_console(app, boss, scim, "org_admin", "boss@example.com")
    assert 'value="admin"' in boss.get("/admin/tokens/").get_data(as_text=True)
    resp = boss.post(
        "/admin/tokens/",
        data={"csrf_token": csrf_token(boss), "name": "Reporting", "kind": "admin"},
    )
    assert resp.status_code == 303
