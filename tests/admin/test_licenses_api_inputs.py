"""Seat limits and prices are whole numbers an Integer column holds: 0 to 2**31-1.

PostgreSQL's INTEGER is 32-bit and SQLite's 64-bit; the API's schema and the
service's own check (which the console and every other caller go through) both
bound them at ``MAX_INT``, so a larger number is a 400 that creates or changes
nothing, on every backend alike.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from scim_server.errors import InvalidValueError
from scim_server.models import License
from scim_server.services import licenses
from tests.support.admin_api import licenses_by_name, make_license, ok

MAX_INT = 2**31 - 1


def _count(session, org_id: str) -> int:
    session.rollback()
    stmt = select(func.count()).select_from(License).where(License.org_id == org_id)
    return int(session.scalar(stmt))


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "Huge", "seat_limit": MAX_INT + 1}, "seat_limit"),
        ({"name": "Huge", "seat_limit": 2**70}, "seat_limit"),
        ({"name": "Huge", "seat_limit": 1, "price_cents": MAX_INT + 1}, "price_cents"),
        ({"name": "Huge", "seat_limit": 1, "price_cents": 2**63}, "price_cents"),
    ],
)
def test_a_number_beyond_the_column_is_400_and_creates_nothing(admin, session, body, field):
    """POST /licenses: 400 naming the field; no license."""
    before = _count(session, admin.org_id)
    resp = admin.post("/api/v1/licenses", body)
    assert resp.status_code == 400
    assert list(resp.get_json()["detail"]) == [field]
    assert _count(session, admin.org_id) == before


def test_the_largest_number_the_column_holds_is_accepted(admin):
    """2**31-1 seats at 2**31-1 cents is stored and read back as given."""
    make_license(admin, "Max", MAX_INT, price_cents=MAX_INT)
    lic = licenses_by_name(admin)["Max"]
    assert (lic["seat_limit"], lic["price_cents"]) == (MAX_INT, MAX_INT)


@pytest.mark.parametrize("field,value", [("seat_limit", 2**63), ("price_cents", MAX_INT + 1)])
def test_a_patch_beyond_the_column_is_400_and_changes_nothing(admin, field, value):
    """PATCH /licenses/<id>: 400 naming the field; the license keeps its values."""
    lic = make_license(admin, "Engineer", 5)
    resp = admin.patch(f"/api/v1/licenses/{lic['id']}", {field: value})
    assert resp.status_code == 400
    assert list(resp.get_json()["detail"]) == [field]
    kept = ok(admin.get("/api/v1/licenses"))["licenses"][0]
    assert (kept["seat_limit"], kept["price_cents"]) == (5, 0)


@pytest.mark.parametrize(
    "seat_limit,price_cents", [(MAX_INT + 1, 0), (1, MAX_INT + 1), (-1, 0), (True, 0)]
)
def test_the_service_refuses_what_the_column_cannot_hold(admin, session, seat_limit, price_cents):
    """services.licenses checks the bound itself: no caller reaches the column with it."""
    session.rollback()
    with pytest.raises(InvalidValueError):
        licenses.create_license(session, admin.org_id, "Huge", seat_limit, price_cents)
    assert _count(session, admin.org_id) == 0
