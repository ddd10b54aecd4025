"""Credentials and MFA in the console through the HTTP client: the profile's buttons and the
dashboard's bulk actions, each through the credentials / schedule / MFA services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scim_server.db import db
from scim_server.models import AuditEvent, CredentialSchedule, MailOutbox, MfaFactor, User
from scim_server.services import mfa
from tests.sso.saml_idp import FakeIdp
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console
from tests.support.credentials import employee


def _drop_welcomes(app: Flask, org_id: str) -> None:
    """Arrange: the SCIM welcome sends and mails are not what these tests look at."""
    with db.writer(app)() as s, s.begin():
        s.execute(CredentialSchedule.__table__.delete().where(CredentialSchedule.org_id == org_id))
        s.execute(MailOutbox.__table__.delete().where(MailOutbox.org_id == org_id))


@pytest.fixture
def people(app: Flask, scim: Scim) -> list[str]:
    ids = [str(employee(scim, f"{n}@example.com")["id"]) for n in ("ada", "bob")]
    _drop_welcomes(app, scim.org_id)
    return ids


@pytest.fixture
def manager(app: Flask, client: FlaskClient, scim: Scim, people: list[str]) -> FlaskClient:
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    _drop_welcomes(app, scim.org_id)
    return client


def _post(client: FlaskClient, url: str, **data: object) -> object:
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


def _mails(app: Flask, org_id: str) -> list[MailOutbox]:
    with db.reader(app)() as s:
        return list(s.scalars(select(MailOutbox).where(MailOutbox.org_id == org_id)))


def _actions(app: Flask, org_id: str, action: str) -> list[AuditEvent]:
    with db.reader(app)() as s:
        return list(
            s.scalars(
                select(AuditEvent).where(AuditEvent.org_id == org_id, AuditEvent.action == action)
            )
        )


def _schedules(app: Flask, org_id: str) -> dict[str, datetime]:
    with db.reader(app)() as s:
        rows = s.scalars(select(CredentialSchedule).where(CredentialSchedule.org_id == org_id))
        return {r.user_id: r.send_at.replace(tzinfo=UTC) for r in rows}


def _add_factor(app: Flask, org_id: str, user_id: str) -> None:
    with db.writer(app)() as s, s.begin():
        user = s.get(User, (org_id, user_id))
        mfa.add_totp(s, user, mfa.new_factor_id(), "sealed-for-test", 1, "Work phone")


def _future(days: int = 3) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


def test_send_now_to_the_user_and_to_myself(
    app: Flask, manager: FlaskClient, scim: Scim, people: list[str]
) -> None:
    """Send now queues a mail to the user, "myself" to the signed-in admin; each audited."""
    ada = people[0]
    resp = _post(manager, f"/admin/users/{ada}/credentials/send", to="user")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("#credentials")
    page = manager.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Credentials sent: a temporary password is on its way to ada@example.com." in page
    resp = _post(manager, f"/admin/users/{ada}/credentials/send", to="me")
    assert resp.status_code == 303
    assert sorted(m.recipient for m in _mails(app, scim.org_id)) == [
        "ada@example.com",
        "manager@example.com",
    ]
    sent = _actions(app, scim.org_id, "user.credentials.send")
    assert len(sent) == 2 and {e.actor_name for e in sent} == {"manager@example.com"}


def test_resend_reset_and_the_fourth_send_in_an_hour_is_a_clear_429(
    app: Flask, manager: FlaskClient, scim: Scim, people: list[str]
) -> None:
    """Resend and reset go through the services; past three sends an hour: 429, no mail."""
    ada = people[0]
    assert _post(manager, f"/admin/users/{ada}/credentials/resend").status_code == 303
    assert _post(manager, f"/admin/users/{ada}/credentials/reset").status_code == 303
    assert len(_actions(app, scim.org_id, "user.credentials.resend")) == 1
    assert len(_actions(app, scim.org_id, "user.credentials.reset")) == 1
    assert _post(manager, f"/admin/users/{ada}/credentials/send").status_code == 303
    assert _post(manager, f"/admin/users/{ada}/credentials/resend").status_code == 303
    before = len(_mails(app, scim.org_id))
    resp = _post(manager, f"/admin/users/{ada}/credentials/resend")
    assert resp.status_code == 429
    html = resp.get_data(as_text=True)
    assert 'class="alert' in html and "hour" in html
    assert len(_mails(app, scim.org_id)) == before


def test_schedule_set_move_cancel_and_bad_dates_refused(
    app: Flask, manager: FlaskClient, scim: Scim, people: list[str]
) -> None:
    """A send date is saved and shown; a bad or past date is 400 with its reason, unchanged."""
    ada = people[0]
    when = _future()
    resp = _post(manager, f"/admin/users/{ada}/credentials/schedule", send_at=when)
    assert resp.status_code == 303
    saved = _schedules(app, scim.org_id)[ada]
    assert saved.strftime("%Y-%m-%dT%H:%M") == when
    page = manager.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert f'value="{when}"' in page and "Cancel scheduled send" in page
    for bad, reason in (("next tuesday", "is not a date and time"), ("2001-01-01T08:00", "past")):
        resp = _post(manager, f"/admin/users/{ada}/credentials/schedule", send_at=bad)
        assert resp.status_code == 400 and reason in resp.get_data(as_text=True)
        assert _schedules(app, scim.org_id)[ada] == saved
    assert _post(manager, f"/admin/users/{ada}/credentials/schedule/cancel").status_code == 303
    assert ada not in _schedules(app, scim.org_id)
    assert len(_actions(app, scim.org_id, "user.credentials.schedule.cancel")) == 1
    resp = _post(manager, f"/admin/users/{ada}/credentials/schedule/cancel")
    assert resp.status_code == 404 and "No credentials send is scheduled" in resp.get_data(
        as_text=True
    )


def test_profile_shows_sign_in_method_and_factors_never_secrets(
    app: Flask, client: FlaskClient, scim: Scim, people: list[str]
) -> None:
    """The security admin sees the factors (kind, name) and resets them; no secret shown."""
    ada = people[0]
    _add_factor(app, scim.org_id, ada)
    sign_in_console(app, client, scim, "security_admin", "sec@example.com")
    html = client.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert "Authenticator app: Work phone" in html and "sealed-for-test" not in html
    assert "Single sign-on or password" in html
    assert "Send credentials now" not in html  # users.write only
    resp = _post(client, f"/admin/users/{ada}/mfa/reset")
    assert resp.status_code == 303
    with db.reader(app)() as s:
        assert s.scalar(select(func.count()).select_from(MfaFactor)) == 0
    assert len(_actions(app, scim.org_id, "user.mfa.reset")) == 1
    assert [m.kind for m in _mails(app, scim.org_id)] == ["mfa_reset"]


def test_permissions_are_403_and_change_nothing(
    app: Flask, manager: FlaskClient, scim: Scim, people: list[str]
) -> None:
    """A user manager may not reset MFA; an auditor may not send or schedule."""
    ada = people[0]
    _add_factor(app, scim.org_id, ada)
    assert _post(manager, f"/admin/users/{ada}/mfa/reset").status_code == 403
    resp = _post(manager, "/admin/users/bulk", op="reset_mfa", user=people)
    assert resp.status_code == 403
    sign_in_console(app, manager, scim, "auditor", "audit@example.com")
    assert _post(manager, f"/admin/users/{ada}/credentials/send").status_code == 403
    resp = _post(manager, "/admin/users/bulk", op="schedule", user=people, send_at=_future())
    assert resp.status_code == 403
    assert _mails(app, scim.org_id) == [] and not set(_schedules(app, scim.org_id)) & set(people)
    with db.reader(app)() as s:
        assert s.scalar(select(func.count()).select_from(MfaFactor)) == 1


def test_bulk_schedule_shows_dates_in_the_list_then_cancel(
    app: Flask, manager: FlaskClient, scim: Scim, people: list[str]
) -> None:
    """Set send date on two users: a result per row, the dates in the list; cancel removes."""
    when = _future(5)
    resp = _post(manager, "/admin/users/bulk", op="schedule", user=people, send_at=when)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Set credentials send date: 2 of 2 done" in html
    shown = when.replace("T", " ")
    assert html.count(f"Credentials {shown} UTC") == 2
    assert set(_schedules(app, scim.org_id)) == set(people)
    assert len(_actions(app, scim.org_id, "user.credentials.schedule")) == 2
    listing = manager.get("/admin/users/").get_data(as_text=True)
    assert listing.count(f"Credentials {shown} UTC") == 2
    resp = _post(manager, "/admin/users/bulk", op="unschedule", user=people)
    assert "Cancel credentials send: 2 of 2 done" in resp.get_data(as_text=True)
    assert _schedules(app, scim.org_id) == {}


def test_bulk_bad_date_is_refused_clearly_and_changes_nothing(
    app: Flask, manager: FlaskClient, scim: Scim, people: list[str]
) -> None:
    """No date, a non-date or a past date: 400 with the reason; nothing scheduled."""
    for bad, reason in (
        ("", "Choose the date and time"),
        ("31/12/2030", "is not a date and time"),
        ("2001-01-01T08:00", "in the past"),
    ):
        resp = _post(manager, "/admin/users/bulk", op="schedule", user=people, send_at=bad)
        assert resp.status_code == 400, bad
        assert reason in resp.get_data(as_text=True)
    assert _schedules(app, scim.org_id) == {}


def test_bulk_resend_and_reset_mfa_give_a_result_per_row(
    app: Flask, client: FlaskClient, scim: Scim, people: list[str]
) -> None:
    """An org admin resends to two users (two mails) and resets MFA (each row reported)."""
    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    _drop_welcomes(app, scim.org_id)
    _add_factor(app, scim.org_id, people[0])
    resp = _post(client, "/admin/users/bulk", op="resend", user=people)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "Resend new-user e-mail: 2 of 2 done" in html
    assert sorted(m.recipient for m in _mails(app, scim.org_id)) == [
        "ada@example.com",
        "bob@example.com",
    ]
    resp = _post(client, "/admin/users/bulk", op="reset_mfa", user=people)
    assert "Reset MFA: 2 of 2 done" in resp.get_data(as_text=True)
    with db.reader(app)() as s:
        assert s.scalar(select(func.count()).select_from(MfaFactor)) == 0
    assert len(_actions(app, scim.org_id, "user.mfa.reset")) == 2


def test_sso_only_organization_offers_no_credential_buttons(
    app: Flask, manager: FlaskClient, admin: Scim, scim: Scim, people: list[str]
) -> None:
    """SSO-only: one line about the IdP, no buttons; a forged post is refused, no mail.
    (SSO-only by default, an enabled connection: set explicitly it would end this
    manager's session, which these tests open as a sign-in without a connection.)"""
    resp = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Entra ID", "metadata_xml": FakeIdp().metadata_xml()},
    )
    assert resp.status_code == 201, resp.get_json()
    ada = people[0]
    html = manager.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert "sign in through its identity provider" in html
    for absent in ("Send credentials now", "Resend new-user e-mail", "Reset password"):
        assert absent not in html
    assert "Single sign-on only" in html
    listing = manager.get("/admin/users/").get_data(as_text=True)
    assert 'value="resend"' not in listing and 'value="schedule"' not in listing
    resp = _post(manager, f"/admin/users/{ada}/credentials/send")
    assert resp.status_code == 409 and "single sign-on only" in resp.get_data(as_text=True)
    resp = _post(manager, "/admin/users/bulk", op="schedule", user=people, send_at=_future())
    assert resp.status_code == 409
    assert _mails(app, scim.org_id) == [] and _schedules(app, scim.org_id) == {}


def test_a_post_without_csrf_token_is_refused(
    app: Flask, manager: FlaskClient, scim: Scim, people: list[str]
) -> None:
    """No CSRF token: 400, nothing sent."""
    resp = manager.post(f"/admin/users/{people[0]}/credentials/send", data={"to": "user"})
    assert resp.status_code == 400 and _mails(app, scim.org_id) == []
