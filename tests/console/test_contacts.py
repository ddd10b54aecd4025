"""The Contacts pages through the HTTP client: list (search, filters, keyset pages), a
contact's page (edit, Enable access with warnings and override, availability hours),
permissions, CSRF and escaping."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scim_server.db import db
from scim_server.models import AuditEvent, Contact, ContactAvailability, MailOutbox, User
from scim_server.services import contacts, directory, licenses
from tests.support import Scim
from tests.support.console import console_user, csrf_token, sign_in_console


@pytest.fixture
def manager(app: Flask, client: FlaskClient, scim: Scim) -> FlaskClient:
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    return client


def _contact(app: Flask, org_id: str, kind: str, name: str, **fields: str) -> str:
    with db.reader(app)() as s:
        return directory.create_contact(s, org_id, kind, name, fields).id


def _post(client: FlaskClient, url: str, **data: object) -> object:
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


def _names(html: str) -> list[str]:
    return re.findall(
        r'<td class="name"><a href="/admin/contacts/[^"]+" hx-boost="false">([^<]*)</a>', html
    )


def test_list_search_filters_and_rows(app: Flask, manager: FlaskClient, scim: Scim) -> None:
    """Persons and organizations by name; search, kind and account filters; a row with an
    account links to it (Open user), one without offers Enable access; names escaped."""
    company = _contact(app, scim.org_id, "organization", "Initech")
    _contact(
        app,
        scim.org_id,
        "person",
        "Peter Gibbons",
        email="peter@initech.example",
        organization_contact_id=company,
    )
    _contact(app, scim.org_id, "person", "<script>alert(1)</script>")
    html = manager.get("/admin/contacts/").get_data(as_text=True)
    assert ">Contacts</a>" in html  # in the menu
    names = _names(html)
    assert "Initech" in names and "Peter Gibbons" in names and "manager@example.com" in names
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "Open user" in html and "Enable access" in html

    assert _names(manager.get("/admin/contacts/?q=gibb").get_data(as_text=True)) == [
        "Peter Gibbons"
    ]
    assert _names(manager.get("/admin/contacts/?q=initech.example").get_data(as_text=True)) == [
        "Peter Gibbons"
    ]
    assert _names(manager.get("/admin/contacts/?kind=organization").get_data(as_text=True)) == [
        "Initech"
    ]
    assert _names(manager.get("/admin/contacts/?account=yes").get_data(as_text=True)) == [
        "manager@example.com"
    ]
    assert "manager@example.com" not in _names(
        manager.get("/admin/contacts/?account=no").get_data(as_text=True)
    )
    # htmx gets only the results block.
    part = manager.get("/admin/contacts/?q=gibb", headers={"HX-Request": "true"})
    body = part.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="results"') and "<html" not in body
    assert manager.get("/admin/contacts/?kind=robot").status_code == 400
    assert manager.get("/admin/contacts/?after=!!!").status_code == 400


def test_keyset_pages_walk_forward_and_back(app: Flask, manager: FlaskClient, scim: Scim) -> None:
    """120 contacts: three pages by name with Next, then Previous returns the same page."""
    with db.reader(app)() as s, s.begin():
        for i in range(120):
            s.add(contacts.create_contact(s, scim.org_id, "person", f"Person {i:03d}", audit=False))
    first = manager.get("/admin/contacts/?kind=person&q=Person+").get_data(as_text=True)
    seen = _names(first)
    assert seen[:2] == ["Person 000", "Person 001"] and len(seen) == 50
    nxt = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = manager.get(nxt).get_data(as_text=True)
    assert _names(second)[0] == "Person 050"
    prev = re.search(r'href="([^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    assert _names(manager.get(prev).get_data(as_text=True)) == seen
    third = re.search(r'href="([^"]+)" rel="next"', second).group(1).replace("&amp;", "&")
    last = manager.get(third).get_data(as_text=True)
    assert _names(last)[-1] == "Person 119" and 'rel="next"' not in last


def test_enable_access_warns_then_override_opens_user(
    app: Flask, manager: FlaskClient, scim: Scim
) -> None:
    """The page shows the plan and its warning; enabling without the checkbox is 409 and
    writes nothing; with it, the account exists and the page offers Open user."""
    with db.reader(app)() as s:
        licenses.create_license(s, scim.org_id, "Planner", 0)
    with db.reader(app)() as s:
        directory.update_settings(s, scim.org_id, {"default_license": "Planner"})
    grace = _contact(app, scim.org_id, "person", "Grace Hopper", email="grace@example.com")
    html = manager.get(f"/admin/contacts/{grace}").get_data(as_text=True)
    assert "No seat left on license Planner" in html
    assert "I understand, enable anyway" in html
    assert "grace@example.com" in html

    refused = _post(manager, f"/admin/contacts/{grace}/access")
    assert refused.status_code == 409
    assert "No seat left on license Planner" in refused.get_data(as_text=True)
    with db.reader(app)() as s:
        assert s.scalar(select(User).where(User.contact_id == grace)) is None

    done = _post(manager, f"/admin/contacts/{grace}/access", override="yes")
    assert done.status_code == 303
    page = manager.get(done.headers["Location"]).get_data(as_text=True)
    assert "Access enabled: username grace@example.com." in page
    with db.reader(app)() as s:
        user = s.scalar(select(User).where(User.contact_id == grace))
        assert user is not None and user.source == "manual"
        event = s.scalar(
            select(AuditEvent).where(
                AuditEvent.action == "user.create", AuditEvent.resource_id == user.id
            )
        )
        assert event.actor_type == "console"
        assert event.explanation["access"]["override"] is True
    assert f'href="/admin/users/{user.id}">Open user</a>' in page


def test_organization_and_person_with_account_refuse(
    app: Flask, manager: FlaskClient, scim: Scim
) -> None:
    """An organization contact has no Enable access; posting anyway is a 409 page."""
    company = _contact(app, scim.org_id, "organization", "Globex")
    html = manager.get(f"/admin/contacts/{company}").get_data(as_text=True)
    assert "Enable access</button>" not in html and "only persons" in html
    resp = _post(manager, f"/admin/contacts/{company}/access", override="yes")
    assert resp.status_code == 409 and "only persons get access" in resp.get_data(as_text=True)


def test_edit_contact_through_the_directory_service(
    app: Flask, manager: FlaskClient, scim: Scim
) -> None:
    """Saving edits the fields (contact.update event); a bad e-mail is 400, unsaved."""
    company = _contact(app, scim.org_id, "organization", "Initech")
    ann = _contact(app, scim.org_id, "person", "Ann")
    resp = _post(
        manager,
        f"/admin/contacts/{ann}",
        name="Ann Smith",
        email="ann@example.com",
        organization_contact_id=company,
        resource_system="PlanIt",
    )
    assert resp.status_code == 303
    with db.reader(app)() as s:
        c = s.get(Contact, (scim.org_id, ann))
        assert (c.name, c.email, c.organization_contact_id, c.resource_system) == (
            "Ann Smith",
            "ann@example.com",
            company,
            "PlanIt",
        )
        assert s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "contact.update")
        )
    bad = _post(manager, f"/admin/contacts/{ann}", name="Ann", email="not-an-address")
    assert bad.status_code == 400 and 'aria-invalid="true"' in bad.get_data(as_text=True)
    with db.reader(app)() as s:
        assert s.get(Contact, (scim.org_id, ann)).email == "ann@example.com"


def test_saving_an_organization_keeps_what_its_form_does_not_show(
    app: Flask, manager: FlaskClient, scim: Scim
) -> None:
    """An organization's form has no person fields: saving its name leaves them as they were."""
    company = _contact(app, scim.org_id, "organization", "Initech", email="info@initech.example")
    resp = _post(manager, f"/admin/contacts/{company}", name="Initech AG", resource_system="")
    assert resp.status_code == 303
    with db.reader(app)() as s:
        c = s.get(Contact, (scim.org_id, company))
        assert (c.name, c.email) == ("Initech AG", "info@initech.example")


def test_availability_grid_saves_and_shows_errors(
    app: Flask, manager: FlaskClient, scim: Scim
) -> None:
    """Only a resource has the grid; valid days are saved, a bad day is 400 next to its
    field and nothing is saved."""
    plain = _contact(app, scim.org_id, "person", "Clerk")
    assert "Availability hours" not in manager.get(f"/admin/contacts/{plain}").get_data(
        as_text=True
    )
    crane = _contact(app, scim.org_id, "person", "Crane 7", resource_system="PlanIt")
    html = manager.get(f"/admin/contacts/{crane}").get_data(as_text=True)
    assert "Availability hours" in html and 'id="odd_monday"' in html and 'id="even_sunday"' in html
    resp = _post(
        manager,
        f"/admin/contacts/{crane}/availability",
        odd_monday="13:00-17:00, 08:00-12:00",
        even_friday="07:30-15:30",
    )
    assert resp.status_code == 303
    html = manager.get(f"/admin/contacts/{crane}").get_data(as_text=True)
    assert 'value="08:00-12:00, 13:00-17:00"' in html and 'value="07:30-15:30"' in html
    bad = _post(
        manager,
        f"/admin/contacts/{crane}/availability",
        odd_monday="08:00-12:00, 11:00-13:00",
        odd_tuesday="25:00-26:00",
    )
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "Odd weeks, Monday: 11:00-13:00 overlaps 08:00-12:00." in text
    assert "Odd weeks, Tuesday: &#39;25:00&#39; is not a time of day" in text
    with db.reader(app)() as s:
        assert s.scalar(select(func.count()).select_from(ContactAvailability)) == 3


def test_roles_without_the_capability_get_403_and_no_menu(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """An auditor or security admin: no Contacts in the menu, 403 on the pages and posts."""
    ann = _contact(app, scim.org_id, "person", "Ann", email="ann@example.com")
    sign_in_console(app, client, scim, "auditor", "audit@example.com")
    assert ">Contacts</a>" not in client.get("/admin/").get_data(as_text=True)
    assert client.get("/admin/contacts/").status_code == 403
    assert client.get(f"/admin/contacts/{ann}").status_code == 403
    assert _post(client, f"/admin/contacts/{ann}/access", override="yes").status_code == 403
    with db.reader(app)() as s:
        assert s.scalar(select(User).where(User.contact_id == ann)) is None


def test_post_without_csrf_is_refused(app: Flask, manager: FlaskClient, scim: Scim) -> None:
    """A form posted without its CSRF token changes nothing."""
    ann = _contact(app, scim.org_id, "person", "Ann", email="ann@example.com")
    resp = manager.post(f"/admin/contacts/{ann}/access", data={"override": "yes"})
    assert resp.status_code == 400
    with db.reader(app)() as s:
        assert s.scalar(select(User).where(User.contact_id == ann)) is None


def test_enable_access_plan_lists_the_default_groups(
    app: Flask, manager: FlaskClient, scim: Scim
) -> None:
    """The plan names the groups the account joins; enabling access makes it a member."""
    staff = scim.create_group("Staff")
    with db.reader(app)() as s:
        directory.update_settings(s, scim.org_id, {"default_groups": [staff["id"]]})
    ada = _contact(app, scim.org_id, "person", "Ada Lovelace", email="ada@example.com")
    html = manager.get(f"/admin/contacts/{ada}").get_data(as_text=True)
    assert '<dt>Groups</dt><dd>Staff <span class="muted">(the default groups)</span></dd>' in html
    assert _post(manager, f"/admin/contacts/{ada}/access").status_code == 303
    with db.reader(app)() as s:
        user = s.scalar(select(User).where(User.contact_id == ada))
    assert user is not None
    members = scim.get(f"/scim/v2/Groups/{staff['id']}").get_json()["members"]
    assert [m["value"] for m in members] == [user.id]


def test_user_manager_cannot_change_an_org_admins_email_through_the_contacts_page(
    app: Flask, manager: FlaskClient, scim: Scim
) -> None:
    """The contact of an account holding console roles beyond the actor's is an org admin's
    to edit (its e-mail, then "forgot password" to it, is a takeover): 403, nothing changed,
    the reset link still goes to the admin; its availability hours are refused too."""
    boss = console_user(app, scim, "boss@example.com", "org_admin", displayName="Boss")
    with db.reader(app)() as s:
        contact_id = s.get(User, (scim.org_id, boss)).contact_id
    with db.reader(app)() as s:
        directory.update_contact(s, scim.org_id, contact_id, {"resource_system": "PlanIt"})
    resp = _post(
        manager, f"/admin/contacts/{contact_id}", name="Boss", email="mallory@evil.example"
    )
    assert resp.status_code == 403
    assert "console roles beyond yours" in resp.get_data(as_text=True)
    hours = _post(manager, f"/admin/contacts/{contact_id}/availability", odd_monday="08:00-12:00")
    assert hours.status_code == 403
    manager.post("/sso/forgot", data={"identifier": "mallory@evil.example"})
    with db.reader(app)() as s:
        assert s.get(Contact, (scim.org_id, contact_id)).email == "boss@example.com"
        assert s.scalar(select(func.count()).select_from(ContactAvailability)) == 0
        mailed = s.scalars(
            select(MailOutbox.recipient).where(
                MailOutbox.org_id == scim.org_id, MailOutbox.user_id == boss
            )
        ).all()
    assert "mallory@evil.example" not in mailed


def test_user_manager_edits_their_own_contact_and_a_plain_users(
    app: Flask, manager: FlaskClient, scim: Scim
) -> None:
    """The refusal is for accounts beyond the actor only: their own contact and a user's
    without console roles are saved."""
    ada = scim.create_user("ada", emails=[{"value": "ada@example.com"}])["id"]
    with db.reader(app)() as s:
        me = s.scalar(select(User).where(User.user_name == "manager@example.com")).contact_id
        ada_contact = s.get(User, (scim.org_id, ada)).contact_id
    for contact_id, email in ((me, "mgr@example.com"), (ada_contact, "ada@example.org")):
        resp = _post(manager, f"/admin/contacts/{contact_id}", name="Someone", email=email)
        assert resp.status_code == 303
        with db.reader(app)() as s:
            assert s.get(Contact, (scim.org_id, contact_id)).email == email


def test_user_manager_is_not_offered_the_forms_of_an_org_admins_contact(
    app: Flask, manager: FlaskClient, scim: Scim
) -> None:
    """The contact page of an account beyond the viewer's roles shows its details and
    hours read-only with the profile's hint, no "Save contact" or "Save availability
    hours" that would answer 403; their own and a plain user's contact keep the forms."""
    boss = console_user(app, scim, "boss@example.com", "org_admin", displayName="Boss")
    ada = scim.create_user("ada", emails=[{"value": "ada@example.com"}])["id"]
    with db.reader(app)() as s:
        boss_contact = s.get(User, (scim.org_id, boss)).contact_id
        ada_contact = s.get(User, (scim.org_id, ada)).contact_id
        me = s.scalar(select(User).where(User.user_name == "manager@example.com")).contact_id
    for contact_id in (boss_contact, ada_contact):
        with db.reader(app)() as s:
            directory.update_contact(s, scim.org_id, contact_id, {"resource_system": "PlanIt"})
    resp = manager.get(f"/admin/contacts/{boss_contact}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "console roles beyond yours" in html
    assert "Save contact" not in html and "Save availability hours" not in html
    assert f'action="/admin/contacts/{boss_contact}"' not in html
    assert f'action="/admin/contacts/{boss_contact}/availability"' not in html
    assert "boss@example.com" in html and 'id="odd_monday"' in html  # shown, read-only
    assert re.search(r'id="odd_monday"[^>]*\breadonly\b', html)
    for contact_id in (me, ada_contact):
        html = manager.get(f"/admin/contacts/{contact_id}").get_data(as_text=True)
        assert "console roles beyond yours" not in html
        assert "Save contact" in html
        if contact_id == ada_contact:
            assert "Save availability hours" in html
