"""A console person may not act on an account that holds console capabilities they do not
(``console_access.beyond``): its password, second factors, e-mail, status, its deletion,
one by one, in bulk or by an import. Otherwise a user manager takes over an
organization admin's account (reset "to me"), or leaves the organization with none.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import MailOutbox, User
from scim_server.services import console_access
from tests.support import Scim
from tests.support.console import console_user, csrf_token, sign_in_console


def _boss(app: Flask, scim: Scim) -> str:
    """The organization's one org_admin (a person with a password, not signed in here)."""
    return console_user(app, scim, "boss@example.com", "org_admin")


def test_user_manager_cannot_have_an_org_admins_password_reset_mailed_to_themselves(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Reset password "to me" on the org_admin's account hands a user_manager the
    org_admin's new credentials: a takeover of the one role that grants console roles.
    A user_manager may not act on the credentials of a console admin above them."""
    boss = _boss(app, scim)
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    token = csrf_token(client)
    resp = client.post(
        f"/admin/users/{boss}/credentials/reset", data={"csrf_token": token, "to": "me"}
    )
    with db.reader(app)() as s:
        to_manager = s.scalars(
            select(MailOutbox).where(
                MailOutbox.org_id == scim.org_id,
                MailOutbox.user_id == boss,
                MailOutbox.recipient == "manager@example.com",
            )
        ).all()
    sent = [
        (m.kind, m.recipient, "temporary password" in (m.body_text or "").lower())
        for m in to_manager
    ]
    assert resp.status_code == 403, (resp.status_code, sent)
    assert sent == []


def test_user_manager_cannot_delete_the_last_org_admin(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Console access keeps one org_admin (revoking the last is refused); a user_manager
    deleting that person's account must not leave the organization with none."""
    boss = _boss(app, scim)
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    token = csrf_token(client)
    resp = client.post(
        f"/admin/users/{boss}/delete", data={"csrf_token": token, "confirm": "boss@example.com"}
    )
    with db.reader(app)() as s:
        admins = [
            m.user_id
            for m in console_access.list_members(s, scim.org_id)
            if console_access.ORG_ADMIN in m.roles
        ]
        still_there = s.get(User, (scim.org_id, boss)) is not None
    assert resp.status_code == 403, resp.status_code
    assert still_there and admins == [boss]


def test_bulk_actions_and_sends_leave_accounts_beyond_the_actor_alone(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Selected with others: the admin's row says why it was not done; the others are done."""
    boss = _boss(app, scim)
    plain = scim.create_user("plain@example.com")["id"]
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    token = csrf_token(client)
    page = client.post(
        "/admin/users/bulk",
        data={"csrf_token": token, "op": "lock", "user": [boss, plain]},
    ).get_data(as_text=True)
    assert "Not done: this account holds console roles beyond yours." in page
    with db.reader(app)() as s:
        status = {u.id: u.status for u in s.scalars(select(User).where(User.org_id == scim.org_id))}
    assert status[boss] == "PROVISIONED" and status[plain] == "LOCKED_BY_ADMIN"
    client.post("/admin/users/bulk", data={"csrf_token": token, "op": "resend", "user": [boss]})
    with db.reader(app)() as s:
        assert s.scalars(select(MailOutbox).where(MailOutbox.user_id == boss)).all() == []


def test_an_import_by_a_user_manager_leaves_an_admins_account_alone(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """An import row changing the admin's e-mail (to then reset its password to it) is an
    error row, in the preview and in the import; the other rows are imported."""
    import io
    import re

    from werkzeug.test import EnvironBuilder

    from scim_server.user_import.rows import BEYOND
    from scim_server.worker import Worker

    _boss(app, scim)
    scim.create_user("plain@example.com")
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    token = csrf_token(client, "/admin/import/")
    data = (
        b"userName,email\n"
        b"boss@example.com,mallory@evil.example\n"
        b"plain@example.com,plain2@example.com\n"
    )
    environ = EnvironBuilder(
        path="/admin/import/preview",
        method="POST",
        data={"csrf_token": token, "file": (io.BytesIO(data), "people.csv")},
        content_type="multipart/form-data",
    ).get_environ()
    try:
        preview = client.open(environ).headers["Location"]
    finally:
        environ["wsgi.input"].close()
    assert Worker(db.writer(app)).run_jobs() == 1
    body = client.get(preview).get_data(as_text=True)
    assert BEYOND in body
    start = re.search(r'action="(/admin/import/[0-9a-f-]{36}/start)"', body)
    assert start
    assert client.post(start.group(1), data={"csrf_token": token}).status_code == 303
    assert Worker(db.writer(app)).run_jobs() == 1
    with db.reader(app)() as s:
        emails = {
            u.user_name: u.data["emails"][0]["value"]
            for u in s.scalars(select(User).where(User.org_id == scim.org_id))
            if u.user_name in ("boss@example.com", "plain@example.com")
        }
    assert emails == {
        "boss@example.com": "boss@example.com",
        "plain@example.com": "plain2@example.com",
    }
