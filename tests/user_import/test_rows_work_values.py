"""The template's ``email`` and ``phone`` cells are one work address and one work number, not
the user's whole lists: the import patches them by path (``emails[type eq "work"].value``,
RFC 7644 §3.5.2.3), so the home address and mobile number the IdP provisioned stay. A user
without a work value gets one; a work value already equal to the cell is no change. A new
user is created with the cells as its lists, as before."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.models import ImportRow
from scim_server.worker import Worker
from tests.console.test_imports import _plans, _preview, _users
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console


def _start(app: Flask, client: FlaskClient, token: str, body: str) -> None:
    """Press Import on a preview page and let the worker run the import."""
    start = re.search(r'action="(/admin/import/[0-9a-f-]{36}/start)"', body)
    assert start, body
    assert client.post(start.group(1), data={"csrf_token": token}).status_code == 303
    assert Worker(db.writer(app)).run_jobs() == 1


def _keeper(scim: Scim) -> str:
    """A user with a work and a home address, a mobile number; its id."""
    user = scim.create_user(
        "keep@example.com",
        emails=[
            {"value": "keep@example.com", "type": "work", "primary": True},
            {"value": "keep.private@example.org", "type": "home"},
        ],
        phoneNumbers=[{"value": "+1 555 0100", "type": "mobile"}],
        name={"givenName": "Keep", "familyName": "Family"},
    )
    return str(user["id"])


def test_the_email_and_phone_cells_leave_the_users_other_values(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The row repeats the work address and gives a work number the user lacks: the name
    changes, a work number is added, the home address and the mobile number stay."""
    user_id = _keeper(scim)
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    data = "userName,email,givenName,phone\nkeep@example.com,keep@example.com,Kept,+1 555 0199\n"
    _page, body = _preview(app, client, token, data.encode())
    with db.reader(app)() as s:
        (row,) = s.query(ImportRow).filter_by(org_id=scim.org_id).all()
        assert (row.plan, row.plan_reason) == ("update", "changes name, phoneNumbers")
    _start(app, client, token, body)
    after = scim.get(f"/scim/v2/Users/{user_id}").get_json()
    assert after["name"] == {"givenName": "Kept", "familyName": "Family"}
    assert sorted((e["type"], e["value"]) for e in after["emails"]) == [
        ("home", "keep.private@example.org"),
        ("work", "keep@example.com"),
    ]
    assert [e["value"] for e in after["emails"] if e.get("primary")] == ["keep@example.com"]
    assert sorted((p["type"], p["value"]) for p in after["phoneNumbers"]) == [
        ("mobile", "+1 555 0100"),
        ("work", "+1 555 0199"),
    ]


def test_a_new_work_address_replaces_the_old_one_only(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A different address in the cell replaces the work address; the home one stays."""
    user_id = _keeper(scim)
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    data = "userName,email\nkeep@example.com,keep.new@example.com\n"
    _page, body = _preview(app, client, token, data.encode())
    assert "changes emails" in body
    _start(app, client, token, body)
    after = scim.get(f"/scim/v2/Users/{user_id}").get_json()
    assert sorted((e["type"], e["value"]) for e in after["emails"]) == [
        ("home", "keep.private@example.org"),
        ("work", "keep.new@example.com"),
    ]
    assert after["phoneNumbers"] == [{"value": "+1 555 0100", "type": "mobile"}]


def test_a_work_address_already_held_is_unchanged(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The preview does not say "changes emails" of a row whose address is the user's work
    address already, whatever other addresses the user has: the row changes nothing."""
    _keeper(scim)
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    data = "userName,email,givenName\nkeep@example.com,keep@example.com,Keep\n"
    _page, body = _preview(app, client, token, data.encode())
    assert _plans(body) == ["unchanged"]
    assert "changes emails" not in body and "/start" not in body


def test_a_new_user_gets_the_cells_as_its_lists(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A create is unchanged: the address is the primary work address, the number work."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    data = "userName,email,phone\nnew@example.com,new@example.com,+1 555 0123\n"
    _page, body = _preview(app, client, token, data.encode())
    _start(app, client, token, body)
    user = _users(app, scim.org_id)["new@example.com"]
    assert user.data["emails"] == [{"value": "new@example.com", "type": "work", "primary": True}]
    assert user.data["phoneNumbers"] == [{"value": "+1 555 0123", "type": "work"}]
