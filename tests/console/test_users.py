"""The users dashboard through the HTTP client: columns, search, filters, sort, keyset pages,
bulk actions with a result per row, permissions, CSRF, escaping."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import AuditEvent, User
from scim_server.services import licenses, roles
from tests.support import Scim
from tests.support.console import console_user, csrf_token, sign_in_console


@pytest.fixture
def admin_client(app: Flask, client: FlaskClient, scim: Scim) -> FlaskClient:
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    return client


def _names(html: str) -> list[str]:
    """The user names in the table, in order (the profile links)."""
    return re.findall(r'<a href="/admin/users/[0-9a-f-]{36}" hx-boost="false">([^<]+)</a>', html)


def _user(scim: Scim, name: str, display: str | None = None, **kw: object) -> str:
    attrs = {"emails": [{"value": f"{name}@example.com", "primary": True}], **kw}
    if display:
        attrs["displayName"] = display
    return str(scim.create_user(name, **attrs)["id"])


def test_list_shows_the_columns_and_links_each_profile(
    app: Flask, admin_client: FlaskClient, scim: Scim
) -> None:
    """Name, e-mail, username, roles, license, status badge; red (not activated) for new users."""
    with db.reader(app)() as s:
        licenses.create_license(s, scim.org_id, "Engineer", 5)
    _user(scim, "ada", "Ada Lovelace")
    resp = admin_client.get("/admin/users/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    for header in (
        "Name",
        "E-mail",
        "Username",
        "Role task",
        "Role ticket",
        "License",
        "Status",
        "Last signed in",
        "Added",
        "Modified",
    ):
        assert f">{header}" in html
    assert "ada<wbr>@example.com" in html  # may wrap before the @
    assert 'class="badge badge-PROVISIONED">Not activated' in html
    assert "Ada Lovelace" in _names(html)


def test_search_matches_name_email_and_username(admin_client: FlaskClient, scim: Scim) -> None:
    """q finds by any of the three, case-insensitively; the count says how many."""
    _user(scim, "ada", "Ada Lovelace")
    _user(scim, "grace", "Grace Hopper")
    assert _names(admin_client.get("/admin/users/?q=LOVE").get_data(as_text=True)) == [
        "Ada Lovelace"
    ]
    assert _names(admin_client.get("/admin/users/?q=grace@").get_data(as_text=True)) == [
        "Grace Hopper"
    ]
    html = admin_client.get("/admin/users/?q=nobody").get_data(as_text=True)
    assert _names(html) == [] and "0 users match this search" in html


def test_search_treats_like_wildcards_as_text(admin_client: FlaskClient, scim: Scim) -> None:
    """% and _ in a search are characters, not patterns."""
    _user(scim, "ada", "Ada Lovelace")
    assert _names(admin_client.get("/admin/users/?q=%25").get_data(as_text=True)) == []
    assert _names(admin_client.get("/admin/users/?q=_").get_data(as_text=True)) == []


def test_htmx_gets_only_the_results_block(admin_client: FlaskClient, scim: Scim) -> None:
    """An htmx search answers the results block of the same template, not a whole page."""
    _user(scim, "ada", "Ada Lovelace")
    resp = admin_client.get("/admin/users/?q=ada", headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert html.lstrip().startswith('<div id="results"') and "<html" not in html
    assert _names(html) == ["Ada Lovelace"]


def test_filters_by_status_license_role_and_source(
    app: Flask, admin_client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """Each filter narrows the list; an unknown value is a clear 400 page."""
    ada = _user(scim, "ada", "Ada Lovelace")
    _user(scim, "grace", "Grace Hopper")
    with db.reader(app)() as s:
        lic = licenses.create_license(s, scim.org_id, "Engineer", 5)
    with db.reader(app)() as s:
        role = roles.create_role(s, scim.org_id, "Dispatcher", "task")
    assert admin.put(f"/api/v1/users/{ada}/license", {"license": "Engineer"}).status_code == 200
    assert admin.post(f"/api/v1/users/{ada}/roles", {"role": "Dispatcher"}).status_code == 200
    assert admin.post(f"/api/v1/users/{ada}/actions/lock", {}).status_code == 200
    get = lambda qs: _names(admin_client.get(f"/admin/users/?{qs}").get_data(as_text=True))  # noqa: E731
    assert get("status=LOCKED_BY_ADMIN") == ["Ada Lovelace"]
    assert get(f"license={lic.id}") == ["Ada Lovelace"]
    assert get("license=none") == ["Grace Hopper", "manager@example.com"]
    assert get(f"role={role.id}") == ["Ada Lovelace"]
    assert get("source=scim") == ["Ada Lovelace", "Grace Hopper", "manager@example.com"]
    assert get("source=jit") == []
    resp = admin_client.get("/admin/users/?status=SLEEPING")
    assert resp.status_code == 400 and "Unknown status" in resp.get_data(as_text=True)


def test_role_task_column_and_sort(
    app: Flask, admin_client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """The role task column shows the task roles; sorting on it puts users without one last."""
    ada = _user(scim, "ada", "Ada Lovelace")
    grace = _user(scim, "grace", "Grace Hopper")
    with db.reader(app)() as s:
        roles.create_role(s, scim.org_id, "Zeta", "task")
    with db.reader(app)() as s:
        roles.create_role(s, scim.org_id, "Alpha", "task")
    admin.post(f"/api/v1/users/{ada}/roles", {"role": "Zeta"})
    admin.post(f"/api/v1/users/{grace}/roles", {"role": "Alpha"})
    html = admin_client.get("/admin/users/?sort=role_task").get_data(as_text=True)
    assert _names(html) == ["Grace Hopper", "Ada Lovelace", "manager@example.com"]
    assert "<td>Zeta</td>" in html
    html = admin_client.get("/admin/users/?sort=role_task&dir=desc").get_data(as_text=True)
    assert _names(html) == ["Ada Lovelace", "Grace Hopper", "manager@example.com"]
    assert 'aria-sort="descending"' in html


@pytest.mark.parametrize(
    "sort",
    [
        "name",
        "email",
        "username",
        "license",
        "status",
        "last_login",
        "added",
        "modified",
        "role_task",
        "role_ticket",
    ],
)
def test_every_column_sorts(admin_client: FlaskClient, scim: Scim, sort: str) -> None:
    """Each column sorts both ways without error; descending is not ascending reversed when
    empty values exist (they stay last), so only the set of users is compared."""
    for n in ("ada", "bob", "cyd"):
        _user(scim, n, n.title())
    up = _names(admin_client.get(f"/admin/users/?sort={sort}").get_data(as_text=True))
    down = _names(admin_client.get(f"/admin/users/?sort={sort}&dir=desc").get_data(as_text=True))
    assert sorted(up) == sorted(down) == ["Ada", "Bob", "Cyd", "manager@example.com"]


def test_unknown_sort_is_a_clear_400(admin_client: FlaskClient) -> None:
    resp = admin_client.get("/admin/users/?sort=password")
    assert resp.status_code == 400 and "Cannot sort by" in resp.get_data(as_text=True)


def test_keyset_pages_and_remembered_page_size(admin_client: FlaskClient, scim: Scim) -> None:
    """26 users at 25 a page: Next gives the 26th (a cursor, no offset), Previous the first 25;
    the page size chosen is remembered for the next visit."""
    for i in range(25):
        _user(scim, f"user{i:02d}", f"User {i:02d}")
    html = admin_client.get("/admin/users/?size=25").get_data(as_text=True)
    first = _names(html)
    assert len(first) == 25 and "26 users" in html
    after = re.search(r'href="([^"]*after=[^"]+)"', html).group(1).replace("&amp;", "&")
    assert "offset" not in after
    html2 = admin_client.get(after).get_data(as_text=True)
    second = _names(html2)
    assert len(second) == 1 and len(set(first + second)) == 26 and 'rel="next"' not in html2
    assert second == ["User 24"]  # by username: "manager@example.com" sorts before "user00"
    before = re.search(r'href="([^"]*before=[^"]+)"', html2).group(1).replace("&amp;", "&")
    assert _names(admin_client.get(before).get_data(as_text=True)) == first
    # Remembered: no size given, still 25 a page.
    assert len(_names(admin_client.get("/admin/users/").get_data(as_text=True))) == 25


def test_a_forged_cursor_is_a_clear_400(admin_client: FlaskClient) -> None:
    resp = admin_client.get("/admin/users/?after=not-a-cursor")
    assert resp.status_code == 400 and "not valid any more" in resp.get_data(as_text=True)


def test_script_display_name_is_shown_as_text(admin_client: FlaskClient, scim: Scim) -> None:
    """A displayName of <script> is escaped in the list and on the profile."""
    uid = _user(scim, "mallory", "<script>alert(1)</script>")
    for page in ("/admin/users/", f"/admin/users/{uid}"):
        html = admin_client.get(page).get_data(as_text=True)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>alert(1)" not in html


def test_bulk_lock_reports_each_row(app: Flask, admin_client: FlaskClient, scim: Scim) -> None:
    """Lock two users, one already locked: one done, one refused with the reason; audited."""
    ada = _user(scim, "ada", "Ada Lovelace")
    grace = _user(scim, "grace", "Grace Hopper")
    token = csrf_token(admin_client)
    admin_client.post(
        "/admin/users/bulk", data={"csrf_token": token, "op": "lock", "user": [grace]}
    )
    resp = admin_client.post(
        "/admin/users/bulk",
        data={"csrf_token": token, "op": "lock", "user": [ada, grace], "back": "q=a"},
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "1 of 2 done" in html
    assert re.search(r'result-ok"><strong>ada</strong>: Locked', html)
    assert re.search(
        r'result-error"><strong>grace</strong>: Cannot lock a user whose status is LOCKED_BY_ADMIN',
        html,
    )
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, ada)).status == "LOCKED_BY_ADMIN"
        locks = s.scalars(
            select(AuditEvent).where(
                AuditEvent.org_id == scim.org_id, AuditEvent.action == "user.lock"
            )
        ).all()
    assert {e.actor_type for e in locks} == {"console"} and len(locks) == 2


def test_bulk_unlock_and_deactivate(
    app: Flask, admin_client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    ada = _user(scim, "ada")
    admin.post(f"/api/v1/users/{ada}/actions/lock", {})
    token = csrf_token(admin_client)
    admin_client.post(
        "/admin/users/bulk", data={"csrf_token": token, "op": "unlock", "user": [ada]}
    )
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, ada)).status == "PROVISIONED"
    admin_client.post(
        "/admin/users/bulk", data={"csrf_token": token, "op": "deactivate", "user": [ada]}
    )
    with db.reader(app)() as s:
        user = s.get(User, (scim.org_id, ada))
        assert user.status == "DEACTIVATED" and user.active is False


def test_bulk_delete_asks_to_type_delete(app: Flask, admin_client: FlaskClient, scim: Scim) -> None:
    """Delete first asks for DELETE (nothing deleted), a wrong word is 400, then it deletes."""
    ada = _user(scim, "ada")
    token = csrf_token(admin_client)
    data = {"csrf_token": token, "op": "delete", "user": [ada]}
    html = admin_client.post("/admin/users/bulk", data=data).get_data(as_text=True)
    assert "Type DELETE to confirm" in html
    assert re.search(rf'value="{ada}" id="sel-{ada}" aria-label="[^"]+" checked', html)
    assert (
        admin_client.post("/admin/users/bulk", data={**data, "confirm": "yes"}).status_code == 400
    )
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, ada)) is not None
    html = admin_client.post("/admin/users/bulk", data={**data, "confirm": "DELETE"}).get_data(
        as_text=True
    )
    assert "ada</strong>: Deleted" in html
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, ada)) is None


def test_bulk_never_acts_on_yourself(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """Locking your own account in bulk is refused for that row."""
    me = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    token = csrf_token(client)
    html = client.post(
        "/admin/users/bulk", data={"csrf_token": token, "op": "lock", "user": [me]}
    ).get_data(as_text=True)
    assert "your own account" in html
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, me)).status == "PROVISIONED"


def test_bulk_without_selection_or_csrf(admin_client: FlaskClient, scim: Scim) -> None:
    """No user selected: 400 with the reason; no CSRF token: 400, nothing done."""
    ada = _user(scim, "ada")
    token = csrf_token(admin_client)
    resp = admin_client.post("/admin/users/bulk", data={"csrf_token": token, "op": "lock"})
    assert resp.status_code == 400 and "Select at least one user" in resp.get_data(as_text=True)
    resp = admin_client.post("/admin/users/bulk", data={"op": "lock", "user": [ada]})
    assert resp.status_code == 400 and "Form expired" in resp.get_data(as_text=True)


def test_auditor_reads_but_cannot_act(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """An auditor sees the list (no checkboxes, no bulk bar); a bulk post is 403."""
    ada = _user(scim, "ada")
    sign_in_console(app, client, scim, "auditor")
    html = client.get("/admin/users/").get_data(as_text=True)
    assert "ada<wbr>@example.com" in html and 'name="op"' not in html and 'name="user"' not in html
    token = csrf_token(client)
    resp = client.post("/admin/users/bulk", data={"csrf_token": token, "op": "lock", "user": [ada]})
    assert resp.status_code == 403 and "Not allowed" in resp.get_data(as_text=True)
    resp = client.post(f"/admin/users/{ada}/status", data={"csrf_token": token, "op": "lock"})
    assert resp.status_code == 403


def test_menu_hides_what_a_role_cannot_open(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """security_admin has no Users write; auditor sees Users; the menu only lists allowed pages."""
    sign_in_console(app, client, scim, "auditor")
    html = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/users/"' in html


def test_a_bulk_row_refused_is_a_failure_event(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """README: a change the console refuses is a failure event. A user manager's bulk lock
    of the org admin is refused per row ("beyond yours") and was in no event (the same
    lock from the profile was): now each refused row is one, with who tried."""
    from sqlalchemy import select

    from scim_server.db import db
    from scim_server.models import AuditEvent, User

    boss = console_user(app, scim, "boss@acme.example", "org_admin")
    manager = sign_in_console(app, client, scim, "user_manager", "manager@acme.example")
    page = client.post(
        "/admin/users/bulk",
        data={"csrf_token": csrf_token(client), "op": "lock", "user": [boss, "no-such-id"]},
    ).get_data(as_text=True)
    assert "Not done: this account holds console roles beyond yours." in page
    with db.reader(app)() as s:
        assert s.get(User, (scim.org_id, boss)).status != "LOCKED"  # type: ignore[union-attr]
        failures = s.scalars(
            select(AuditEvent).where(
                AuditEvent.org_id == scim.org_id,
                AuditEvent.action == "console.users.bulk",
                AuditEvent.outcome == "failure",
            )
        ).all()
    refused = {e.resource_id: e for e in failures}
    assert set(refused) == {boss, "no-such-id"}
    assert refused[boss].actor_id == manager
    assert (refused[boss].detail or "").startswith("lock: Not done")
