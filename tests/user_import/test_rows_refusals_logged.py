"""A row the import refuses is in the provisioning log, as a refused SCIM write is
(``rows.record_refusal``): a failure event naming the person, found by a search of the log
by userName, saying the line and why. Refused by the preview (and so skipped by the
console's import), by the run itself, or repeated in the file: each is logged once, in
line order with the rows the import applied."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.user_import import rows as import_rows
from scim_server.user_import.sheets import Row
from tests.console.test_imports import _preview
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console
from tests.user_import.test_rows_repeated import _start
from tests.user_import.test_rows_seats import NO_SEAT, SALES, _organization

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _log(admin: Scim, **query: str) -> list[dict[str, Any]]:
    resp = admin.get("/api/v1/audit", query_string=query)
    assert resp.status_code == 200
    return list(reversed(resp.get_json()["events"]))  # oldest first


def test_the_console_import_logs_the_rows_it_refuses(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """Strict seats, Planner's 2 seats: the preview refuses lines 5 and 6, the import skips
    them and logs each as a failed ``user.create`` by the console person who imported,
    found by the person's userName; the created users' events are there as before."""
    _organization(admin, strict=True)
    person = sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(app, client, token, SALES.encode())
    assert _log(admin, outcome="failure") == []  # a preview writes nothing, nor logs
    _start(app, client, token, body)

    failed = _log(admin, outcome="failure")
    assert [(e["action"], e["user_name"], e["detail"]) for e in failed] == [
        ("user.create", "s3@example.com", f"Import, line 5: {NO_SEAT}"),
        ("user.create", "s4@example.com", f"Import, line 6: {NO_SEAT}"),
    ]
    assert {(e["actor_type"], e["actor_id"], e["resource_id"]) for e in failed} == {
        ("console", person, None)
    }
    (found,) = _log(admin, user_name="s4@example.com")
    assert found["outcome"] == "failure"
    created = _log(admin, action="user.create", outcome="success")
    assert [e["user_name"] for e in created if e["actor_id"] == person] == [
        "s1@example.com",
        "s2@example.com",
        "ops@example.com",
    ]


def test_the_run_logs_what_it_refuses_as_an_update_of_the_account_the_row_names(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """The command line's run (no preview): a row whose value is refused names an existing
    account, so its failure is that account's ``user.patch`` (its id and externalId); a
    create the strict seats refuse at the run is a ``user.create``; a repeated row is
    logged too. Nothing of the refused rows is written."""
    _organization(admin, strict=True, seats=1)
    known = scim.create_user("known@example.com", externalId="ext-known")
    rows = [
        Row(2, {"userName": "known@example.com", "active": "maybe"}),
        Row(3, {"userName": "first@example.com", "department": "Sales"}),
        Row(4, {"userName": "second@example.com", "department": "Sales"}),
        Row(5, {"userName": "FIRST@example.com", "title": "Again"}),
    ]
    with db.writer(app)() as session:
        applied = list(import_rows.apply_rows(session, scim.org_id, rows))
    assert [o.action for o in applied] == ["error", "create", "error", "error"]
    failed = _log(admin, outcome="failure")
    assert [(e["action"], e["user_name"], e["resource_id"], e["external_id"]) for e in failed] == [
        ("user.patch", "known@example.com", known["id"], "ext-known"),
        ("user.create", "second@example.com", None, None),
        ("user.patch", "FIRST@example.com", applied[1].user_id, None),
    ]
    assert [e["detail"] for e in failed] == [
        "Import, line 2: active must be true or false, not 'maybe'.",
        f"Import, line 4: {NO_SEAT.replace('all 2 seats', 'all 1 seats')}",
        "Import, line 5: the same userName as line 3",
    ]
    assert scim.get(f"/scim/v2/Users/{known['id']}").get_json()["active"] is True
