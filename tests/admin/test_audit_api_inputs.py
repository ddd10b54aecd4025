"""Times the admin API takes (``since``, ``until``, ``send_at``) must have a UTC form.

The database holds UTC. An ISO 8601 time such as ``9999-12-31T23:59:59-14:00`` is
well formed, but at UTC it is in year 10000, which no datetime (and no column) holds:
such a value is refused at its parameter with a 400 (common.instant), before any
query, and an export of it never starts streaming.
"""

from __future__ import annotations

import pytest

from tests.support.admin_api import ok

# Valid ISO 8601 instants whose UTC form is in year 10000 / year 0.
LATE = "9999-12-31T23:59:59-14:00"
EARLY = "0001-01-01T00:00:00+14:00"


@pytest.mark.parametrize(
    "path,param,value",
    [
        ("/api/v1/audit", "since", LATE),
        ("/api/v1/audit", "until", EARLY),
        ("/api/v1/audit/reports/failures", "since", LATE),
        ("/api/v1/audit/reports/deprovisioning", "until", EARLY),
        ("/api/v1/audit/export", "since", LATE),
        ("/api/v1/audit/export", "until", EARLY),
    ],
)
def test_a_time_outside_utc_years_1_to_9999_is_400_at_its_parameter(admin, path, param, value):
    """The 400 names the parameter, in the admin API's error body; no export is streamed."""
    resp = admin.get(path, query_string={param: value})
    assert resp.status_code == 400
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert body["error"] == "invalid_request"
    assert list(body["detail"]) == [param]


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00Z"])
def test_the_first_and_last_utc_times_are_accepted(admin, value):
    """The range's ends are times like any other: a search over them answers 200."""
    ok(admin.get("/api/v1/audit", query_string={"since": value}))
    ok(admin.get("/api/v1/audit/reports/failures", query_string={"until": value}))


def test_a_send_at_outside_utc_years_1_to_9999_is_400(admin):
    """send_at is the same kind of field: 400 naming it, nothing scheduled."""
    resp = admin.post("/api/v1/credentials/schedule", {"user_ids": ["u1"], "send_at": LATE})
    assert resp.status_code == 400
    assert list(resp.get_json()["detail"]) == ["send_at"]
    assert ok(admin.get("/api/v1/credentials/schedule"))["total"] == 0
