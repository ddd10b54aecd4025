"""Billing: monthly totals per license now and the period's seat changes from the log, on the
console page, its CSV and ``GET /api/v1/billing``."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from scim_server.db import db
from scim_server.services import billing
from tests.support import Scim
from tests.support.console import sign_in_console

TODAY = datetime.now(UTC).date()


def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.fixture
def seats(admin: Scim, scim: Scim) -> dict[str, str]:
    """Engineer (49.90 EUR) is the default license; Planner (10 USD) is given by hand.

    ada and bob are created on Engineer (SCIM creates), cy is moved to Planner (an admin),
    bob is deleted (a seat given back): Engineer +2 -2 (cy's move, bob's delete), Planner +1.
    """
    ok(
        admin.post("/api/v1/licenses", {"name": "Engineer", "seat_limit": 10, "price_cents": 4990}),
        201,
    )
    ok(
        admin.post(
            "/api/v1/licenses",
            {"name": "Planner", "seat_limit": None, "price_cents": 1000, "currency": "USD"},
        ),
        201,
    )
    ok(admin.put("/api/v1/settings", {"default_license": "Engineer"}))
    ids = {name: scim.create_user(name)["id"] for name in ("ada", "bob", "cy")}
    ok(admin.put(f"/api/v1/users/{ids['cy']}/license", {"license": "Planner"}))
    assert scim.delete(f"/scim/v2/Users/{ids['bob']}").status_code == 204
    return ids


def test_api_totals_and_changes(admin: Scim, seats: dict[str, str]) -> None:
    """Totals now per license and currency; this month's moves per license, per day, per event."""
    body = ok(admin.get("/api/v1/billing"))
    first, last = billing.default_period(TODAY)
    assert body["period"] == {"from": first.isoformat(), "to": last.isoformat()}
    current = {lic["name"]: lic for lic in body["licenses"]}
    assert (current["Engineer"]["used"], current["Engineer"]["monthly_cents"]) == (1, 4990)
    assert (current["Planner"]["used"], current["Planner"]["monthly_cents"]) == (1, 1000)
    assert body["totals"] == [
        {"currency": "EUR", "monthly_cents": 4990},
        {"currency": "USD", "monthly_cents": 1000},
    ]
    per = {s["license"]: s for s in body["per_license"]}
    assert (per["Engineer"]["assigned"], per["Engineer"]["released"]) == (3, 2)
    assert (per["Engineer"]["net"], per["Engineer"]["monthly_cost_cents"]) == (1, 4990)
    assert (per["Planner"]["assigned"], per["Planner"]["released"], per["Planner"]["net"]) == (
        1,
        0,
        1,
    )
    ids = {name: per[name]["license_id"] for name in ("Engineer", "Planner")}
    assert body["per_day"] == [
        {
            "day": TODAY.isoformat(),
            "license_id": ids["Engineer"],
            "license": "Engineer",
            "assigned": 3,
            "released": 2,
        },
        {
            "day": TODAY.isoformat(),
            "license_id": ids["Planner"],
            "license": "Planner",
            "assigned": 1,
            "released": 0,
        },
    ]
    moves = [(c["action"], c["license"], c["change"], c["user_name"]) for c in body["changes"]]
    assert moves == [
        ("user.create", "Engineer", 1, "ada"),
        ("user.create", "Engineer", 1, "bob"),
        ("user.create", "Engineer", 1, "cy"),
        ("user.license", "Engineer", -1, "cy"),
        ("user.license", "Planner", 1, "cy"),
        ("user.delete", "Engineer", -1, "bob"),
    ]
    assert body["changes"][3]["actor"] == "compliance"  # the admin token's name
    assert body["changes"][5]["monthly_cost_cents"] == -4990
    assert body["changes_truncated"] is False


def test_api_period_excludes_other_days(admin: Scim, seats: dict[str, str]) -> None:
    """A period that ended yesterday holds none of today's moves; the limit truncates the list."""
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    body = ok(admin.get(f"/api/v1/billing?from={yesterday}&to={yesterday}"))
    assert body["changes"] == [] and body["per_day"] == []
    assert all(s["assigned"] == s["released"] == 0 for s in body["per_license"])
    body = ok(admin.get(f"/api/v1/billing?from={TODAY.isoformat()}&to={TODAY.isoformat()}&limit=2"))
    assert len(body["changes"]) == 2 and body["changes_truncated"] is True
    assert {s["license"]: s["assigned"] for s in body["per_license"]} == {
        "Engineer": 3,
        "Planner": 1,
    }


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("from=2026-13-01", "from", "A date such as"),
        ("to=yesterday", "to", "A date such as"),
        ("from=2026-03-02&to=2026-03-01", "to", "must not be after"),
        ("from=2024-01-01&to=2026-01-01", "to", "at most 366 days"),
        ("limit=-1", "limit", "greater than or equal"),
        # The last day's end is past what a date holds: a 500 before.
        ("from=9999-12-01&to=9999-12-31", "to", "between 0002-01-01 and 9998-12-31"),
        ("from=0001-01-01&to=0001-01-02", "to", "between 0002-01-01 and 9998-12-31"),
    ],
)
def test_api_bad_period(admin: Scim, query: str, field: str, message: str) -> None:
    """A bad date or period is a 400 naming the field."""
    body = ok(admin.get(f"/api/v1/billing?{query}"), 400)
    assert message in str(body["detail"][field])


def test_period_bounds_what_is_read(
    app: Flask, engine: Any, admin: Scim, seats: dict[str, str]
) -> None:
    """Every query of the log the service makes carries the period's bounds (never the whole
    log), and a period with no event yields nothing."""
    seen: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM audit_events" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", spy)
    try:
        with db.reader(app)() as s:
            future = TODAY + timedelta(days=400)
            assert list(billing.period_changes(s, admin.org_id, future, future)) == []
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert len(seen) == len(billing.ACTIONS)  # one keyset stream per action
    assert all("occurred_at >=" in q and "occurred_at <" in q and "action =" in q for q in seen)
    assert all("LIMIT" in q for q in seen)


def test_console_page(app: Flask, client: FlaskClient, scim: Scim, seats: dict[str, str]) -> None:
    """An auditor sees the Billing menu entry, the totals, the per-license and per-event tables."""
    sign_in_console(app, client, scim, "auditor", "audit@example.com")
    home = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/billing/"' in home
    resp = client.get("/admin/billing/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Monthly total (EUR)" in html and "49.90 EUR" in html and "10.00 USD" in html
    summary = html.split('id="billing-summary"')[1].split("</table>")[0]
    # the auditor's own account took an Engineer seat too (the default license)
    assert "<td>Engineer</td>" in summary and '<td class="num">+2</td>' in summary
    assert "+99.80 EUR" in summary and "+10.00 USD" in summary
    changes = html.split('id="billing-changes"')[1].split("</table>")[0]
    assert changes.count("<tr>") == 8  # header + 7 moves
    assert "user.delete" in changes and "bob" in changes


def test_console_csv(app: Flask, client: FlaskClient, scim: Scim, seats: dict[str, str]) -> None:
    """The CSV has every move of the period, one per line, with who and when."""
    sign_in_console(app, client, scim, "user_manager", "um@example.com")
    day = TODAY.isoformat()
    resp = client.get(f"/admin/billing/changes.csv?from={day}&to={day}")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert f"license-changes-{day}-{day}.csv" in resp.headers["Content-Disposition"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"  # a download is not sniffed
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [(r["license"], r["change"], r["user_name"]) for r in rows] == [
        ("Engineer", "1", "ada"),
        ("Engineer", "1", "bob"),
        ("Engineer", "1", "cy"),
        ("Engineer", "-1", "cy"),
        ("Planner", "1", "cy"),
        ("Engineer", "-1", "bob"),
        ("Engineer", "1", "um@example.com"),  # the console user's own account
    ]
    assert rows[4]["currency"] == "USD" and rows[4]["monthly_cost_cents"] == "1000"
    assert all(r["occurred_at"].startswith(day) for r in rows)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=31.01.2026", "Enter a date such as 2026-01-31."),
        ("from=2026-02-10&to=2026-02-01", "must not be after its end"),
        ("from=2020-01-01&to=2026-01-01", "at most 366 days"),
    ],
)
def test_console_bad_period(
    app: Flask, client: FlaskClient, scim: Scim, query: str, message: str
) -> None:
    """A bad period is a 400 page with the message at its field (and the CSV refuses it too)."""
    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    resp = client.get(f"/admin/billing/?{query}")
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert message in html and 'aria-invalid="true"' in html
    assert client.get(f"/admin/billing/changes.csv?{query}").status_code == 400


def test_security_admin_has_no_billing(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """Billing is for org_admin, user_manager and auditor: a security_admin gets 403, no menu entry."""
    sign_in_console(app, client, scim, "security_admin", "sec@example.com")
    assert client.get("/admin/billing/").status_code == 403
    assert "/admin/billing/" not in client.get("/admin/").get_data(as_text=True)


def test_default_period_is_this_month() -> None:
    """This month, first day to last, across a year end."""
    assert billing.default_period(date(2026, 12, 15)) == (date(2026, 12, 1), date(2026, 12, 31))
    assert billing.default_period(date(2026, 2, 1)) == (date(2026, 2, 1), date(2026, 2, 28))
