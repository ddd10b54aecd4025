"""The organization's OIDC clients page: register (secret once), list, revoke; who may
register or revoke a client (``sso.configure``: org admins) and what a security admin sees."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import AuditEvent
from sso.provider import clients
from sso.provider.models import OAuthClient
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console


def test_register_shows_the_secret_once_then_revoke(
    app: Flask, client: FlaskClient, scim: Scim, other_scim: Scim
) -> None:
    """An org admin registers a client (the secret shown once), then revokes it: audited."""
    sign_in_console(app, client, scim, "org_admin")
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
    """An http redirect URI is 400, another organization's client 404, a user manager 403."""
    sign_in_console(app, client, scim, "org_admin")
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


def _clients(app: Flask, org_id: str) -> list[OAuthClient]:
    with db.reader(app)() as s:
        return clients.list_org_clients(s, org_id)


def test_security_admin_can_neither_register_nor_revoke_a_client(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A registered client is handed the identity of whoever of the organization opens its
    sign-in link, org admins included, at the redirect URIs it names: a security admin's
    own client would receive the org admin's. Registering and revoking are an org admin's
    (``sso.configure``, as making an SSO connection): 403, nothing changed, nothing logged."""
    with db.reader(app)() as s:
        existing, _secret = clients.create_client(
            s, "Field app", ["https://app.example/cb"], org_id=scim.org_id
        )
    sign_in_console(app, client, scim, "security_admin", "sec@example.com")
    token = csrf_token(client, "/admin/oidc-clients/")
    made = client.post(
        "/admin/oidc-clients/",
        data={"csrf_token": token, "name": "Mine", "redirect_uris": "https://evil.example/cb"},
    )
    revoked = client.post(
        f"/admin/oidc-clients/{existing.client_id}/revoke", data={"csrf_token": token}
    )
    assert (made.status_code, revoked.status_code) == (403, 403)
    (row,) = _clients(app, scim.org_id)
    assert (row.client_id, row.revoked_at) == (existing.client_id, None)
    with db.reader(app)() as s:
        actions = s.scalars(
            select(AuditEvent.action).where(
                AuditEvent.org_id == scim.org_id, AuditEvent.action.like("oauth.client%")
            )
        ).all()
    assert actions == ["oauth.client_create"]  # the org admin's, made above


def test_a_security_admin_is_told_who_registers_clients_and_offered_no_control(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The page says an org admin registers and revokes clients, and why; it lists them
    with no Register form and no Revoke. An org admin sees both and no hint; an auditor
    reads the list without either."""
    with db.reader(app)() as s:
        clients.create_client(s, "Field app", ["https://app.example/cb"], org_id=scim.org_id)
    hint = "registered and revoked by an organization admin"
    sign_in_console(app, client, scim, "security_admin", "sec@example.com")
    page = client.get("/admin/oidc-clients/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and hint in html
    assert "Field app" in html and "https://app.example/cb" in html
    assert "Register a client" not in html and "/revoke" not in html
    boss = app.test_client()
    sign_in_console(app, boss, scim, "org_admin", "boss@example.com")
    html = boss.get("/admin/oidc-clients/").get_data(as_text=True)
    assert hint not in html
    assert "Register a client" in html and "/revoke" in html
    reader = app.test_client()
    sign_in_console(app, reader, scim, "auditor", "ada@example.com")
    html = reader.get("/admin/oidc-clients/").get_data(as_text=True)
    assert "Field app" in html and hint not in html
    assert "Register a client" not in html and "/revoke" not in html
