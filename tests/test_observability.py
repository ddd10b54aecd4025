"""``observability``: a request dispatched inside another (a SCIM Bulk operation) is
logged under its parent's request id, and leaves its parent's timing alone."""

from __future__ import annotations

import logging

from tests.support import USER_SCHEMA

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def test_a_bulk_request_s_access_lines_share_its_id_and_its_time_covers_them(scim, caplog):
    """Each operation's line has the Bulk request's id; the Bulk request's duration is
    measured from its own start (an operation's start used to replace it on ``g``)."""
    ops = [
        {
            "method": "POST",
            "bulkId": f"u{i}",
            "path": "/Users",
            "data": {"schemas": [USER_SCHEMA], "userName": f"timed{i}@example.com"},
        }
        for i in range(3)
    ]
    with caplog.at_level(logging.INFO, logger="scim_server.access"):
        resp = scim.post("/scim/v2/Bulk", {"schemas": [BULK], "Operations": ops})
    assert resp.status_code == 200
    lines = [r.fields for r in caplog.records if r.name == "scim_server.access"]
    assert [(f["method"], f["path"]) for f in lines] == [("POST", "/scim/v2/Users")] * 3 + [
        ("POST", "/scim/v2/Bulk")
    ]
    assert {f["request_id"] for f in lines} == {resp.headers["X-Request-Id"]}
    *operations, whole = lines
    assert whole["duration_ms"] >= sum(f["duration_ms"] for f in operations)
