"""The organization's OIDC clients page: register (secret once), list, revoke."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import AuditEvent
from sso.provider import clients
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console


def test_register_shows_the_secret_once_then_revoke(
    app: Flask, client: FlaskClient, scim: Scim, other_scim: Scim
) -> None:
    sign_in_console(app, client, scim, "security_admin")
    with db.reader(app)() as s:
        clients.create_client(
            s, "Globex app", ["https://globex.example/cb"], org_id=other_scim.org_id
        )
    token = csrf_token(client)
    resp = client.post(
        "/admin/oidc-clients/",
        data={
            "csrf_token": token,
            "name": "Field app",
            "redirect_uris": "https://app.example/cb\nhttp://localhost:3000/cb",
        },
    )
    assert resp.status_code == 303
    html = client.get("/admin/oidc-clients/").get_data(as_text=True)
    secret = re.search(r'<p class="secret" id="new-client-secret">([^<]+)</p>', html).group(1)
    assert len(secret) > 20 and "https://app.example/cb" in html
    assert "Globex app" not in html  # another organization's client
    again = client.get("/admin/oidc-clients/").get_data(as_text=True)
    assert secret not in again
    client_id = re.search(r'/admin/oidc-clients/([^/"]+)/revoke', again).group(1)
    assert (
        client.post(
            f"/admin/oidc-clients/{client_id}/revoke", data={"csrf_token": token}
        ).status_code
        == 303
    )
    with db.reader(app)() as s:
        assert clients.list_org_clients(s, scim.org_id)[0].revoked_at is not None
        actions = s.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.org_id == scim.org_id, AuditEvent.action.like("oauth.client%"))
            # The chain's order: without it PostgreSQL may return the rows in any order.
            .order_by(AuditEvent.seq)
        ).all()
    assert actions == ["oauth.client_create", "oauth.client_revoke"]


def test_bad_redirect_uri_and_permissions(
    app: Flask, client: FlaskClient, scim: Scim, other_scim: Scim
) -> None:
    sign_in_console(app, client, scim, "security_admin")
    token = csrf_token(client)
    resp = client.post(
        "/admin/oidc-clients/",
        data={"csrf_token": token, "name": "App", "redirect_uris": "http://app.example/cb"},
    )
    assert resp.status_code == 400 and "must use https" in resp.get_data(as_text=True)
    with db.reader(app)() as s:
        foreign, _secret = clients.create_client(
            s, "Globex app", ["https://globex.example/cb"], org_id=other_scim.org_id
        )
    resp = client.post(
        f"/admin/oidc-clients/{foreign.client_id}/revoke", data={"csrf_token": token}
    )
    assert resp.status_code == 404
    sign_in_console(app, client, scim, "user_manager", "um@example.com")
    assert client.get("/admin/oidc-clients/").status_code == 403
