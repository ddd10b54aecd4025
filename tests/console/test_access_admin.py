"""Console access: an org admin gives and takes back console roles; the last org_admin stays."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.services import console_access
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console


def test_grant_by_email_then_revoke(app: Flask, client: FlaskClient, scim: Scim) -> None:
    boss = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    ada = scim.create_user("ada", emails=[{"value": "Ada@Example.com"}])["id"]
    token = csrf_token(client)
    resp = client.post(
        "/admin/access/", data={"csrf_token": token, "who": "ada@example.com", "role": "auditor"}
    )
    assert resp.status_code == 303
    with db.reader(app)() as s:
        assert console_access.roles_of(s, scim.org_id, ada) == {"auditor"}
    html = client.get("/admin/access/").get_data(as_text=True)
    assert "ada is now auditor." in html and "boss@example.com" in html
    resp = client.post(f"/admin/access/{ada}/auditor/revoke", data={"csrf_token": token})
    assert resp.status_code == 303
    with db.reader(app)() as s:
        assert console_access.roles_of(s, scim.org_id, ada) == set()
    # The last org_admin cannot be taken back.
    resp = client.post(f"/admin/access/{boss}/org_admin/revoke", data={"csrf_token": token})
    assert resp.status_code == 400 and "last org_admin" in resp.get_data(as_text=True)


def test_unknown_person_or_role(app: Flask, client: FlaskClient, scim: Scim) -> None:
    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    token = csrf_token(client)
    resp = client.post(
        "/admin/access/", data={"csrf_token": token, "who": "ghost@example.com", "role": "auditor"}
    )
    assert resp.status_code == 404 and "No user ghost@example.com" in resp.get_data(as_text=True)
    resp = client.post(
        "/admin/access/", data={"csrf_token": token, "who": "boss@example.com", "role": "root"}
    )
    assert resp.status_code == 400 and "Unknown console role" in resp.get_data(as_text=True)


def test_only_org_admins_manage_access(app: Flask, client: FlaskClient, scim: Scim) -> None:
    sign_in_console(app, client, scim, "security_admin")
    assert client.get("/admin/access/").status_code == 403
    assert 'href="/admin/access/"' not in client.get("/admin/").get_data(as_text=True)
