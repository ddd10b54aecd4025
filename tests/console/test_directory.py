"""Licenses and roles pages through the HTTP client."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import License, Organization, Role, User
from scim_server.services import licenses, roles
from tests.support import Scim
from tests.support.console import console_user, csrf_token, sign_in_console


@pytest.fixture
def manager(app: Flask, client: FlaskClient, scim: Scim) -> FlaskClient:
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    return client


def _post(client: FlaskClient, url: str, **data: object) -> object:
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


def test_create_license_and_see_cost(
    app: Flask, manager: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """Created from the form (price in currency units); the table shows used, left, monthly cost."""
    resp = _post(
        manager, "/admin/licenses/", name="Engineer", seat_limit="10", price="49.90", currency="eur"
    )
    assert resp.status_code == 303
    with db.reader(app)() as s:
        lic = s.scalars(select(License).where(License.org_id == scim.org_id)).one()
    assert (lic.seat_limit, lic.price_cents, lic.currency) == (10, 4990, "EUR")
    uid = scim.create_user("ada")["id"]
    admin.put(f"/api/v1/users/{uid}/license", {"license": "Engineer"})
    html = manager.get("/admin/licenses/").get_data(as_text=True)
    assert "49.90 EUR" in html and "Monthly total (EUR)" in html
    assert '<td class="num">9</td>' in html  # seats left


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "price": "1", "currency": "EUR"}, "name", "Required."),
        ({"name": "X", "price": "1.234", "currency": "EUR"}, "price", "two decimals"),
        ({"name": "X", "price": "-1", "currency": "EUR"}, "price", "not negative"),
        ({"name": "X", "price": "abc", "currency": "EUR"}, "price", "A price such as"),
        # Decimal parses these, and compares them by raising: a 500 before.
        ({"name": "X", "price": "NaN", "currency": "EUR"}, "price", "A price such as"),
        ({"name": "X", "price": "sNaN", "currency": "EUR"}, "price", "A price such as"),
        ({"name": "X", "price": "Infinity", "currency": "EUR"}, "price", "A price such as"),
        ({"name": "X", "price": "1", "currency": "EURO"}, "currency", "three-letter"),
        (
            {"name": "X", "price": "1", "currency": "EUR", "seat_limit": "-3"},
            "seat_limit",
            "0 to 2,147,483,647, or empty for unlimited.",
        ),
        (
            {"name": "X", "price": "1", "currency": "EUR", "seat_limit": "2147483648"},
            "seat_limit",
            "0 to 2,147,483,647, or empty for unlimited.",
        ),
        (
            {"name": "X", "price": "21474836.48", "currency": "EUR"},
            "price",
            "at most 21,474,836.47",
        ),
        ({"name": "X", "price": "1E+99", "currency": "EUR"}, "price", "at most 21,474,836.47"),
        (
            {"name": "X", "price": "1", "currency": "EUR", "seat_limit": "many"},
            "seat_limit",
            "Not a valid integer",
        ),
    ],
)
def test_license_form_errors_are_shown_by_the_field(
    app: Flask, manager: FlaskClient, scim: Scim, data: dict[str, str], field: str, message: str
) -> None:
    resp = _post(manager, "/admin/licenses/", **data)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert f'id="{field}-error"' in html and message in html
    with db.reader(app)() as s:
        assert s.scalars(select(License).where(License.org_id == scim.org_id)).all() == []


def test_the_console_edits_a_license_at_the_admin_apis_limits(
    app: Flask, manager: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """The admin API takes seat limits and prices (in cents) up to 2^31-1; the console's form
    stopped at 10,000,000 seats and a price under 10,000,000.00, answering "0 or more." on a
    field the admin did not touch: such a license could not be repriced or renamed there.
    The form takes what the API takes, and the largest values show back unchanged."""
    resp = admin.post(
        "/api/v1/licenses", {"name": "Site", "seat_limit": 20_000_000, "price_cents": 100}
    )
    assert resp.status_code == 201, resp.get_json()
    lic = resp.get_json()["id"]

    resp = _post(
        manager,
        f"/admin/licenses/{lic}",
        name="Site",
        seat_limit="20000000",
        price="2.00",
        currency="EUR",
    )
    assert resp.status_code == 303, resp.get_data(as_text=True)[-400:]
    with db.reader(app)() as s:
        got = s.get(License, (scim.org_id, lic))
        assert (got.seat_limit, got.price_cents) == (20_000_000, 200)

    resp = _post(
        manager,
        f"/admin/licenses/{lic}",
        name="Site",
        seat_limit="2147483647",
        price="21474836.47",
        currency="EUR",
    )
    assert resp.status_code == 303, resp.get_data(as_text=True)[-400:]
    with db.reader(app)() as s:
        got = s.get(License, (scim.org_id, lic))
        assert (got.seat_limit, got.price_cents) == (2**31 - 1, 2**31 - 1)
    html = manager.get(f"/admin/licenses/{lic}").get_data(as_text=True)
    assert 'value="2147483647"' in html and 'value="21474836.47"' in html


def test_duplicate_license_name_is_refused(app: Flask, manager: FlaskClient, scim: Scim) -> None:
    with db.reader(app)() as s:
        licenses.create_license(s, scim.org_id, "Engineer", None)
    resp = _post(manager, "/admin/licenses/", name="engineer", price="1", currency="EUR")
    assert resp.status_code == 409 and "already exists" in resp.get_data(as_text=True)


def test_edit_and_delete_license(app: Flask, manager: FlaskClient, scim: Scim) -> None:
    """Reprice and resize (seats 0 stays 0, not unlimited); the default license cannot be deleted."""
    with db.reader(app)() as s:
        lic = licenses.create_license(s, scim.org_id, "Engineer", 5, 100)
    assert (
        _post(
            manager,
            f"/admin/licenses/{lic.id}",
            name="Engineer",
            seat_limit="0",
            price="2.50",
            currency="EUR",
        ).status_code
        == 303
    )
    with db.reader(app)() as s:
        got = s.get(License, (scim.org_id, lic.id))
        assert (got.seat_limit, got.price_cents) == (0, 250)
    assert 'value="0"' in manager.get(f"/admin/licenses/{lic.id}").get_data(as_text=True)
    with db.reader(app)() as s, s.begin():
        s.get(Organization, scim.org_id).settings = {"default_license": "Engineer"}
    resp = _post(manager, f"/admin/licenses/{lic.id}/delete")
    assert resp.status_code == 409 and "default license" in resp.get_data(as_text=True)
    with db.reader(app)() as s, s.begin():
        s.get(Organization, scim.org_id).settings = {}
    assert _post(manager, f"/admin/licenses/{lic.id}/delete").status_code == 303
    with db.reader(app)() as s:
        assert s.get(License, (scim.org_id, lic.id)) is None


def test_a_license_the_org_admin_holds_is_neither_deleted_nor_taken_by_a_smaller_limit(
    app: Flask, manager: FlaskClient, scim: Scim
) -> None:
    """A user manager cannot lock the org admin out through the licenses page: deleting a
    held license is refused (nothing deleted), and fewer seats than are used keeps every
    holder's license (new assignments wait)."""
    from sso.signin.decision import check_license

    boss = console_user(app, scim, "boss@example.com", "org_admin")
    with db.reader(app)() as s:
        lic = licenses.create_license(s, scim.org_id, "Engineer", 5, 100)
    with db.reader(app)() as s, s.begin():
        licenses.assign(s, scim.org_id, s.get(User, (scim.org_id, boss)), lic, source="manual")
    resp = _post(manager, f"/admin/licenses/{lic.id}/delete")
    assert resp.status_code == 400 and "is held by users" in resp.get_data(as_text=True)
    shrink = _post(
        manager,
        f"/admin/licenses/{lic.id}",
        name="Engineer",
        seat_limit="0",
        price="1",
        currency="EUR",
    )
    assert shrink.status_code == 303
    with db.reader(app)() as s:
        assert s.get(License, (scim.org_id, lic.id)).seat_limit == 0
        user = s.get(User, (scim.org_id, boss))
        assert user.license_id == lic.id
        check_license(s, user)  # still signs in


def test_roles_by_kind_create_and_delete(app: Flask, manager: FlaskClient, scim: Scim) -> None:
    assert _post(manager, "/admin/roles/", name="Dispatcher", kind="task").status_code == 303
    assert _post(manager, "/admin/roles/", name="Helpdesk", kind="ticket").status_code == 303
    html = manager.get("/admin/roles/").get_data(as_text=True)
    assert "Task roles" in html and "Dispatcher" in html and "Helpdesk" in html
    resp = _post(manager, "/admin/roles/", name="X", kind="wizard")
    assert resp.status_code == 400 and 'id="kind-error"' in resp.get_data(as_text=True)
    with db.reader(app)() as s:
        role = s.scalars(
            select(Role).where(Role.org_id == scim.org_id, Role.name == "Dispatcher")
        ).one()
    assert _post(manager, f"/admin/roles/{role.id}/delete").status_code == 303
    with db.reader(app)() as s:
        assert [r.name for r in roles.list_roles(s, scim.org_id)] == ["Helpdesk"]


def test_auditor_reads_licenses_but_cannot_create(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    sign_in_console(app, client, scim, "auditor")
    html = client.get("/admin/licenses/").get_data(as_text=True)
    assert "Create license" not in html
    assert _post(client, "/admin/licenses/", name="X", price="1", currency="EUR").status_code == 403
    assert _post(client, "/admin/roles/", name="X", kind="task").status_code == 403
