"""The log, sign-ins, reports and billing pages with a time, date or position at the edge of
what the pages can reckon with: a message at its field and a 400 page (console/filters.py),
never a 500; within the bounds the pages answer as usual.

A time is taken between 0002-01-01 and 9998-12-31 in UTC (``filters.EARLIEST``/``LATEST``):
the pages reckon from it (a report's week before its end, a chart's hour after it, a
billing period's next day), and a time near datetime's own ends would overflow there. A
position (the log's ``before``, an event's number) is at most ``MAX_INT``, the bound of
its column (PostgreSQL's int4 refuses a larger one even in a comparison).
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scim_server.text import MAX_INT
from tests.support import Scim
from tests.support.console import sign_in_console

OUT_OF_RANGE = "Enter a date between 0002-01-01 and 9998-12-31."
# Valid ISO 8601 times whose UTC form is in year 10000 / year 0 ('+' sent as %2B).
LATE = "9999-12-31T23:59:59-14:00"
EARLY = "0001-01-01T00:00:00%2B14:00"


@pytest.fixture
def console(app: Flask, client: FlaskClient, scim: Scim) -> FlaskClient:
    sign_in_console(app, client, scim, "org_admin")
    return client


@pytest.mark.parametrize(
    "url",
    [
        f"/admin/log/?since={LATE}",
        f"/admin/log/?until={EARLY}",
        "/admin/log/?since=0001-12-31T23:59",
        f"/admin/log/export?since={LATE}",
        f"/admin/sign-ins/?since={LATE}",
        f"/admin/sign-ins/?until={EARLY}",
        f"/admin/reports/?since={LATE}",
        "/admin/reports/?until=0001-01-01",  # the default period starts a week before
        "/admin/reports/?until=9999-12-31T23:30",  # the chart counts the hour after
        "/admin/billing/?from=9999-12-31&to=9999-12-31",  # the period ends the day after
        "/admin/billing/?from=0001-01-01&to=0001-01-01",
    ],
)
def test_a_time_out_of_range_is_a_message_at_its_field(console: FlaskClient, url: str) -> None:
    """400 with the bounds named at the field; the page is shown, not a 500."""
    resp = console.get(url)
    assert resp.status_code == 400
    assert OUT_OF_RANGE in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/log/?since=0002-01-01T00:00&until=9998-12-31T23:59",
        "/admin/sign-ins/?since=0002-01-01T00:00&until=9998-12-31T23:59",
        "/admin/reports/?until=0002-01-01",
        "/admin/reports/?until=9998-12-31T23:59",
        "/admin/reports/?since=9998-12-31T23:00%2B14:00",
        "/admin/billing/?from=9998-12-31&to=9998-12-31",
        "/admin/billing/?from=0002-01-01&to=0002-01-01",
    ],
)
def test_times_at_the_bounds_are_searched(console: FlaskClient, url: str) -> None:
    """The bounds themselves are times like any other: 200."""
    assert console.get(url).status_code == 200


@pytest.mark.parametrize("seq", [MAX_INT + 1, 2**70])
def test_an_event_number_past_the_column_is_no_event(console: FlaskClient, seq: int) -> None:
    """/admin/log/events/<n>: a number no event can have is 404, as a missing one is."""
    assert console.get(f"/admin/log/events/{seq}").status_code == 404
    assert console.get(f"/admin/log/events/{MAX_INT}").status_code == 404  # looked up: none


@pytest.mark.parametrize("before", [str(MAX_INT + 1), "999999999999", "1" * 40])
def test_a_cursor_past_the_column_is_400(console: FlaskClient, before: str) -> None:
    """The log's ``before`` beyond any position a page gives: 400 (the search page, its
    results not read), as for a cursor that is no number; the largest position is read."""
    assert console.get(f"/admin/log/?before={before}").status_code == 400
    assert console.get(f"/admin/log/?before={MAX_INT}").status_code == 200
