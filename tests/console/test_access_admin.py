"""Console access: an org admin gives and takes back console roles; the last org_admin stays."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.services import console_access
from tests.support import Scim
from tests.support.console import console_user, csrf_token, sign_in_as, sign_in_console


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


def test_granting_a_role_by_address_goes_to_the_account_named_not_to_an_older_lookalike(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A user manager (an older account) sets their own contact e-mail to the CTO's
    userName; org_admin granted to that address goes to the CTO, whose userName it is."""
    manager = console_user(app, scim, "manager@example.com", "user_manager")
    cto = scim.create_user(
        "cto@example.com", emails=[{"type": "work", "value": "cto@example.com", "primary": True}]
    )["id"]
    mgr_client = app.test_client()
    sign_in_as(app, mgr_client, scim.org_id, manager)
    changed = mgr_client.post(
        f"/admin/users/{manager}/contact",
        data={"csrf_token": csrf_token(mgr_client), "name": "Manager", "email": "cto@example.com"},
    )
    assert changed.status_code == 303, changed.get_data(as_text=True)

    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    resp = client.post(
        "/admin/access/",
        data={"csrf_token": csrf_token(client), "who": "CTO@example.com", "role": "org_admin"},
    )
    assert resp.status_code == 303
    with db.reader(app)() as s:
        assert console_access.roles_of(s, scim.org_id, manager) == {"user_manager"}
        assert console_access.roles_of(s, scim.org_id, cto) == {"org_admin"}


def test_an_address_of_several_accounts_and_no_username_is_refused(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Two accounts have the contact e-mail, neither has it as userName: 409 naming both
    userNames and asking for one, nothing granted; the userName then finds the account."""
    jdoe = scim.create_user("jdoe", emails=[{"value": "cto@example.com"}])["id"]
    other = scim.create_user("other", emails=[{"value": "CTO@example.com"}])["id"]
    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    token = csrf_token(client)
    resp = client.post(
        "/admin/access/", data={"csrf_token": token, "who": "cto@example.com", "role": "auditor"}
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 409, html
    assert "several accounts (jdoe, other)" in html and "give the userName" in html
    with db.reader(app)() as s:
        assert console_access.roles_of(s, scim.org_id, jdoe) == set()
        assert console_access.roles_of(s, scim.org_id, other) == set()
    resp = client.post(
        "/admin/access/", data={"csrf_token": token, "who": "jdoe", "role": "auditor"}
    )
    assert resp.status_code == 303
    with db.reader(app)() as s:
        assert console_access.roles_of(s, scim.org_id, jdoe) == {"auditor"}
