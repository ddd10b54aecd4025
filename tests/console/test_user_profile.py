"""A user's profile through the HTTP client: contact edit, status, license, roles, delete."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import AuditEvent, Contact, User
from scim_server.services import licenses, roles
from tests.support import Scim
from tests.support.console import console_user, csrf_token, sign_in_console


@pytest.fixture
def manager(app: Flask, client: FlaskClient, scim: Scim) -> FlaskClient:
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    return client


@pytest.fixture
def ada(scim: Scim) -> str:
    return str(
        scim.create_user("ada", displayName="Ada Lovelace", emails=[{"value": "ada@example.com"}])[
            "id"
        ]
    )


def _post(client: FlaskClient, url: str, **data: object) -> object:
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


def test_profile_shows_account_contact_license_roles(manager: FlaskClient, ada: str) -> None:
    html = manager.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert "<h1>Ada Lovelace</h1>" in html
    assert "Not activated" in html and ">SCIM<" in html
    assert 'value="ada@example.com"' in html
    assert "changes what your organization is billed" in html
    assert "Type the username ada to confirm" in html


def test_unknown_user_is_404_page(manager: FlaskClient) -> None:
    resp = manager.get("/admin/users/00000000-0000-0000-0000-000000000000")
    assert resp.status_code == 404 and "not found" in resp.get_data(as_text=True).lower()


def test_contact_edit_saves_and_validates(
    app: Flask, manager: FlaskClient, scim: Scim, ada: str
) -> None:
    """A valid edit is saved (contact.update); a bad e-mail is 400 next to its field, unsaved."""
    resp = _post(
        manager,
        f"/admin/users/{ada}/contact",
        name="Ada King",
        email="ada.king@example.com",
        phone="+44 1",
    )
    assert resp.status_code == 303 and resp.headers["Location"].endswith(
        f"/admin/users/{ada}#contact"
    )
    assert "Contact details saved." in manager.get(resp.headers["Location"]).get_data(as_text=True)
    with db.reader(app)() as s:
        user = s.get(User, (scim.org_id, ada))
        contact = s.get(Contact, (scim.org_id, user.contact_id))
        assert (contact.name, contact.email, contact.phone) == (
            "Ada King",
            "ada.king@example.com",
            "+44 1",
        )
    resp = _post(manager, f"/admin/users/{ada}/contact", name="Ada", email="not-an-email")
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert 'id="email-error"' in html and 'value="not-an-email"' in html
    with db.reader(app)() as s:
        assert s.get(Contact, (scim.org_id, user.contact_id)).email == "ada.king@example.com"


def test_status_toggle(app: Flask, manager: FlaskClient, scim: Scim, ada: str) -> None:
    """Deactivate then activate; an action the status does not allow is a 409 page."""
    assert _post(manager, f"/admin/users/{ada}/status", op="deactivate").status_code == 303
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, ada)).status == "DEACTIVATED"
    html = manager.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert 'value="activate"' in html and 'value="lock"' not in html
    resp = _post(manager, f"/admin/users/{ada}/status", op="lock")
    assert resp.status_code == 409 and "Cannot lock" in resp.get_data(as_text=True)
    assert _post(manager, f"/admin/users/{ada}/status", op="activate").status_code == 303
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, ada)).status == "PROVISIONED"


def test_license_picker_shows_seats_and_price_and_assigns(
    app: Flask, manager: FlaskClient, scim: Scim, ada: str
) -> None:
    """Options say price and seats left; a full license is disabled and refused (409)."""
    with db.reader(app)() as s:
        engineer = licenses.create_license(s, scim.org_id, "Engineer", 2, 4900, "EUR").id
    with db.reader(app)() as s:
        full = licenses.create_license(s, scim.org_id, "Full", 0, 1000, "EUR").id
    html = manager.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert "Engineer · 49.00 EUR/month ·" in html and "2 of 2 seats left" in html
    assert f'value="{full}" disabled' in html
    assert _post(manager, f"/admin/users/{ada}/license", license=engineer).status_code == 303
    html = manager.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert "<strong>Engineer</strong>" in html and "1 of 2 seats left" in html
    assert f'<option value="{engineer}" selected>' in html
    resp = _post(manager, f"/admin/users/{ada}/license", license=full)
    assert resp.status_code == 409
    assert _post(manager, f"/admin/users/{ada}/license", license="rules").status_code == 303
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, ada)).license_id is None


@pytest.mark.parametrize("name", ["none", "rules"])
def test_the_license_picker_assigns_a_license_named_as_one_of_its_other_choices(
    app: Flask, manager: FlaskClient, scim: Scim, ada: str, name: str
) -> None:
    """A license may be named "none" or "rules" (the admin API allows any name): the picker
    offers it by id, apart from its "No license" and "Let the mapping rules decide" choices,
    and picking it assigns it (it removed the user's license, or handed it to the rules)."""
    with db.reader(app)() as s:
        lic = licenses.create_license(s, scim.org_id, name, None).id
        engineer = licenses.create_license(s, scim.org_id, "Engineer", None).id
    assert _post(manager, f"/admin/users/{ada}/license", license=engineer).status_code == 303
    html = manager.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert f'<option value="{lic}">' in html
    assert '<option value="none">No license</option>' in html
    assert '<option value="rules">Let the mapping rules decide</option>' in html

    resp = _post(manager, f"/admin/users/{ada}/license", license=lic)

    assert resp.status_code == 303
    assert manager.get(resp.headers["Location"]).status_code == 200
    with db.reader(app)() as s:
        user = s.get(User, (scim.org_id, ada))
        assert (user.license_id, user.license_source) == (lic, "manual")
        (event,) = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "user.license", AuditEvent.resource_id == ada)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
        assert event.detail == f"manual license {name!r}"
    html = manager.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert f"<strong>{name}</strong>" in html
    assert f'<option value="{lic}" selected>' in html
    assert '<option value="none">No license</option>' in html


def test_the_license_picker_refuses_an_unknown_license(
    app: Flask, manager: FlaskClient, scim: Scim, ada: str
) -> None:
    """A license id that is not the organization's (deleted since the page was shown) is a
    400 naming it; the user's license stays."""
    with db.reader(app)() as s:
        engineer = licenses.create_license(s, scim.org_id, "Engineer", None).id
    assert _post(manager, f"/admin/users/{ada}/license", license=engineer).status_code == 303

    resp = _post(manager, f"/admin/users/{ada}/license", license="Engineer")

    assert resp.status_code == 400
    assert "Unknown license" in resp.get_data(as_text=True)
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, ada)).license_id == engineer


def test_user_manager_cannot_take_the_license_of_the_org_admin_and_lock_them_out(
    app: Flask, manager: FlaskClient, scim: Scim
) -> None:
    """No license is as good as a lock (sign-in refuses it): on an account holding console
    roles beyond the actor's, every license choice is 403 and the license stays; the
    profile offers no license form there."""
    from sso.signin.decision import check_license

    boss = console_user(app, scim, "boss@example.com", "org_admin")
    with db.reader(app)() as s:
        lic = licenses.create_license(s, scim.org_id, "Engineer", None)
    with db.reader(app)() as s, s.begin():
        licenses.assign(s, scim.org_id, s.get(User, (scim.org_id, boss)), lic, source="manual")
    for choice in ("none", "rules", lic.id):
        resp = _post(manager, f"/admin/users/{boss}/license", license=choice)
        assert resp.status_code == 403, choice
    with db.reader(app)() as s:
        user = s.get(User, (scim.org_id, boss))
        assert (user.license_id, user.license_source) == (lic.id, "manual")
        check_license(s, user)  # still signs in
    html = manager.get(f"/admin/users/{boss}").get_data(as_text=True)
    assert "Save license" not in html and "console roles beyond yours" in html


def test_role_pickers_and_other_roles(
    app: Flask, manager: FlaskClient, scim: Scim, ada: str
) -> None:
    """Role task replaces the manual task role; other roles are added and removed; sources shown."""
    with db.reader(app)() as s:
        t1 = roles.create_role(s, scim.org_id, "Planner", "task")
    with db.reader(app)() as s:
        t2 = roles.create_role(s, scim.org_id, "Dispatcher", "task")
    with db.reader(app)() as s:
        portal = roles.create_role(s, scim.org_id, "Portal", "portal")
    _post(manager, f"/admin/users/{ada}/picked-role", kind="task", role=t1.id)
    _post(manager, f"/admin/users/{ada}/picked-role", kind="task", role=t2.id)
    _post(manager, f"/admin/users/{ada}/roles", role="Portal")
    with db.reader(app)() as s:
        held = {r["name"]: r["sources"] for r in roles.roles_of(s, scim.org_id, [ada])[ada]}
    assert held == {"Dispatcher": ["manual"], "Portal": ["manual"]}
    html = manager.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert f'<option value="{t2.id}" selected>Dispatcher</option>' in html
    assert _post(manager, f"/admin/users/{ada}/roles/{portal.id}/remove").status_code == 303
    resp = _post(manager, f"/admin/users/{ada}/picked-role", kind="task", role=portal.id)
    assert resp.status_code == 400 and "No task role" in resp.get_data(as_text=True)
    with db.reader(app)() as s:
        assert [r["name"] for r in roles.roles_of(s, scim.org_id, [ada])[ada]] == ["Dispatcher"]


def test_delete_needs_the_username_typed(
    app: Flask, manager: FlaskClient, scim: Scim, ada: str
) -> None:
    resp = _post(manager, f"/admin/users/{ada}/delete", confirm="Ada")
    assert resp.status_code == 400 and "Type the username ada exactly" in resp.get_data(
        as_text=True
    )
    resp = _post(manager, f"/admin/users/{ada}/delete", confirm="ada")
    assert resp.status_code == 303 and resp.headers["Location"] == "/admin/users/"
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, ada)) is None
        event = s.scalars(
            select(AuditEvent).where(
                AuditEvent.org_id == scim.org_id, AuditEvent.action == "user.delete"
            )
        ).one()
    assert event.actor_type == "console" and event.actor_name == "manager@example.com"


def test_auditor_sees_the_profile_read_only(
    app: Flask, client: FlaskClient, scim: Scim, ada: str
) -> None:
    sign_in_console(app, client, scim, "auditor")
    html = client.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert "Ada Lovelace" in html and "<form" in html  # sign-out only
    assert "Save contact details" not in html and "Delete user" not in html
    assert _post(client, f"/admin/users/{ada}/delete", confirm="ada").status_code == 403


def test_profile_shows_the_timeline_newest_first(
    app: Flask, manager: FlaskClient, scim: Scim, ada: str
) -> None:
    """The user's events (create, then a lock by the console user) and no sign-in yet."""
    _post(manager, f"/admin/users/{ada}/status", op="lock")
    html = manager.get(f"/admin/users/{ada}").get_data(as_text=True)
    timeline = html.split('id="timeline-title"')[1].split("</section>")[0]
    assert timeline.index("user.lock") < timeline.index("user.create")
    assert "manager@example.com" in timeline
    assert "Never signed in." in html


@pytest.mark.parametrize("role", ["org_admin", "user_manager"])
def test_own_profile_offers_no_lock_or_deactivate(
    app: Flask, client: FlaskClient, scim: Scim, role: str
) -> None:
    """Locking or deactivating oneself is always refused (400): one's own profile offers
    neither; another active user's profile offers both."""
    me = sign_in_console(app, client, scim, role, "me@example.com")
    other = scim.create_user("other", emails=[{"value": "other@example.com"}])["id"]
    html = client.get(f"/admin/users/{me}").get_data(as_text=True)
    assert 'value="lock"' not in html and 'value="deactivate"' not in html
    html = client.get(f"/admin/users/{other}").get_data(as_text=True)
    assert 'value="lock"' in html and 'value="deactivate"' in html
    refused = _post(client, f"/admin/users/{me}/status", op="lock")
    assert refused.status_code == 400
