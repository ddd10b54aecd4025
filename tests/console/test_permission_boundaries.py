"""The console's permission boundaries where a person could lock the organization out, keep
powers they lost, or act unseen. Each test failed before its fix (found by a probe of the
console's and the admin API's permission boundaries)."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import AuditEvent, ImportRow, Job, User
from scim_server.models.console_access import ConsoleGrant
from scim_server.services import console_access
from scim_server.user_import.jobs import STARTER_GONE
from scim_server.worker import Worker
from tests.console.test_imports import _preview
from tests.support import Scim
from tests.support.admin_api import admin_of, make_license
from tests.support.console import console_user, csrf_token, sign_in_as, sign_in_console


def _user(app: Flask, org_id: str, user_id: str) -> User:
    with db.reader(app)() as s:
        user = s.get(User, (org_id, user_id))
        assert user is not None
        return user


def _grants(app: Flask, org_id: str) -> set[tuple[str, str]]:
    with db.reader(app)() as s:
        return {
            (g.user_id, g.role)
            for g in s.scalars(select(ConsoleGrant).where(ConsoleGrant.org_id == org_id))
        }


def _failures(app: Flask, org_id: str) -> list[AuditEvent]:
    with db.reader(app)() as s:
        return list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.org_id == org_id, AuditEvent.outcome == "failure")
                .order_by(AuditEvent.seq)
            )
        )


def test_no_one_removes_their_own_license(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """Without a license no one signs in: the only org admin removed their own (as a lock of
    oneself, which is refused) and the organization had no console left. Refused now,
    "none" and a hand-back to rules that give none alike; nothing changes."""
    admin = admin_of(scim)
    make_license(admin, "E3")
    me = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    assert admin.put(f"/api/v1/users/{me}/license", {"license": "E3"}).status_code == 200
    token = csrf_token(client)
    for choice in ("none", "rules"):
        resp = client.post(
            f"/admin/users/{me}/license", data={"csrf_token": token, "license": choice}
        )
        assert resp.status_code == 409
        assert "your own account without a license" in resp.get_data(as_text=True)
        assert _user(app, scim.org_id, me).license_id is not None
    assert client.get("/admin/users/").status_code == 200  # still signed in


def test_a_deactivated_org_admin_does_not_count_as_the_last_one(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The other org admin deactivated, revoking one's own role left no one who could sign
    in to grant roles. Refused as the last one now."""
    other = console_user(app, scim, "other@example.com", "org_admin")
    me = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    token = csrf_token(client)
    resp = client.post(
        f"/admin/users/{other}/status", data={"csrf_token": token, "op": "deactivate"}
    )
    assert resp.status_code == 303
    resp = client.post(f"/admin/access/{me}/org_admin/revoke", data={"csrf_token": token})
    assert resp.status_code == 400
    assert "last org_admin who can sign in" in resp.get_data(as_text=True)
    assert (me, "org_admin") in _grants(app, scim.org_id)


def test_a_license_taken_away_ends_the_persons_sessions(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """An admin removes a user manager's license: the OIDC provider refused their tokens,
    the console kept serving them with all their powers. Their sessions end now."""
    admin = admin_of(scim)
    make_license(admin, "E3")
    manager = console_user(app, scim, "manager@example.com", "user_manager")
    assert admin.put(f"/api/v1/users/{manager}/license", {"license": "E3"}).status_code == 200
    sign_in_as(app, client, scim.org_id, manager)
    assert client.get("/admin/users/").status_code == 200
    assert admin.put(f"/api/v1/users/{manager}/license", {"license": None}).status_code == 200
    resp = client.get("/admin/users/")
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/sso/login")


def test_an_mfa_reset_ends_the_persons_sessions(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Second factors reset (a lost or stolen device): sessions opened with them end."""
    manager = sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    assert client.get("/admin/users/").status_code == 200
    resp = admin_of(scim).post(f"/api/v1/users/{manager}/mfa/reset", {})
    assert resp.status_code < 300
    assert client.get("/admin/users/").status_code == 303


def test_an_import_stops_when_its_starter_no_longer_manages_users(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A user manager starts an import changing a user's e-mail, then loses the role: the
    worker applied it all the same. The import stops now, with the reason, nothing done."""
    plain = scim.create_user(
        "plain@example.com", emails=[{"value": "plain@example.com", "primary": True}]
    )
    me = sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    token = csrf_token(client, "/admin/import/")
    data = b"userName,email\nplain@example.com,mallory@evil.example\n"
    _page, body = _preview(app, client, token, data)
    start = re.search(r'action="(/admin/import/[0-9a-f-]{36}/start)"', body)
    assert start
    assert client.post(start.group(1), data={"csrf_token": token}).status_code == 303
    with db.reader(app)() as s:
        console_access.revoke(s, scim.org_id, me, "user_manager")
    Worker(db.writer(app)).run_jobs()
    emails = [e["value"] for e in _user(app, scim.org_id, plain["id"]).data["emails"]]
    assert emails == ["plain@example.com"]
    with db.reader(app)() as s:
        job = s.scalar(select(Job).where(Job.org_id == scim.org_id, Job.kind == "users.import"))
        assert job is not None and job.state == "failed" and job.error == STARTER_GONE
        done = s.scalars(select(ImportRow.action).where(ImportRow.org_id == scim.org_id)).all()
        assert done == [None]


def test_a_refused_change_in_the_console_is_in_the_log(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A user manager asks for the org admin's password reset "to me": 403, and the log had
    nothing (the admin API logs every refused change). A failure event now, by the person,
    naming the account, the status and the reason."""
    boss = console_user(app, scim, "boss@example.com", "org_admin")
    manager = sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    resp = client.post(
        f"/admin/users/{boss}/credentials/reset",
        data={"csrf_token": csrf_token(client), "to": "me"},
    )
    assert resp.status_code == 403
    (event,) = _failures(app, scim.org_id)
    assert (event.action, event.resource_type, event.resource_id, event.status) == (
        "console.users.credentials_action",
        "User",
        boss,
        403,
    )
    assert (event.actor_type, event.actor_id) == ("console", manager)
    assert event.detail


def test_revoking_a_role_not_held_says_so(
    app: Flask, client: FlaskClient, scim: Scim, other_scim: Scim
) -> None:
    """Another organization's admin (or any account without the role): nothing changed, and
    the console said "Console role org_admin taken back." It answers 404 now."""
    victim = other_scim.create_user("victim@globex.example")["id"]
    with db.reader(app)() as s:
        console_access.grant(s, other_scim.org_id, victim, "org_admin")
    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    resp = client.post(
        f"/admin/access/{victim}/org_admin/revoke", data={"csrf_token": csrf_token(client)}
    )
    assert resp.status_code == 404
    assert "does not hold the console role org_admin" in resp.get_data(as_text=True)
    assert (victim, "org_admin") in _grants(app, other_scim.org_id)
