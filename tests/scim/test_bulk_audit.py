"""Bulk (RFC 7644 §3.7) and the provisioning log: each operation's events carry the Bulk
request's own context, and an operation refused before it runs is logged as refused."""

from __future__ import annotations

from scim_server.audit.context import SYSTEM, current_context
from tests.support import PATCH_OP, USER_SCHEMA

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def _log(admin) -> list[dict]:
    """The organization's events, oldest first."""
    events = admin.get("/api/v1/audit", query_string={"limit": 100}).get_json()["events"]
    return list(reversed(events))


def _posts(count: int) -> list[dict]:
    return [
        {
            "method": "POST",
            "bulkId": f"u{i}",
            "path": "/Users",
            "data": {"schemas": [USER_SCHEMA], "userName": f"bulk{i}@example.com"},
        }
        for i in range(count)
    ]


def test_operation_events_carry_the_bulk_requests_source_agent_and_ids(scim, admin):
    """README: every event carries the source IP, the user agent, our request id (the
    X-Request-Id the client got) and the IdP's correlation id; an IdP provisioning through
    /Bulk (Okta, Entra) got none of them, and a request id per operation it never saw."""
    resp = scim.post(
        "/scim/v2/Bulk",
        {"schemas": [BULK], "Operations": _posts(2)},
        headers={"User-Agent": "Okta SCIM Client 1.0", "client-request-id": "corr-42"},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )
    assert resp.status_code == 200, resp.get_json()
    assert [op["status"] for op in resp.get_json()["Operations"]] == ["201", "201"]
    request_id = resp.headers["X-Request-Id"]
    made = [e for e in _log(admin) if e["action"] == "user.create"]
    assert len(made) == 2
    for event in made:
        assert (
            event["source_ip"],
            event["user_agent"],
            event["correlation_id"],
            event["request_id"],
        ) == ("203.0.113.7", "Okta SCIM Client 1.0", "corr-42", request_id), event
    # The latency report measures from the Bulk request's arrival.
    assert made[0]["received_at"] is not None
    assert made[0]["received_at"] == made[1]["received_at"]


def test_the_bulk_response_keeps_the_request_id_the_client_sent(scim):
    """The X-Request-Id the client sent comes back on the Bulk response, not the last
    operation's."""
    resp = scim.post(
        "/scim/v2/Bulk",
        {"schemas": [BULK], "Operations": _posts(2)},
        headers={"X-Request-Id": "idp-run-7"},
    )
    assert resp.status_code == 200
    assert resp.headers["X-Request-Id"] == "idp-run-7"


def test_a_bulk_request_leaves_no_actor_behind(scim):
    """After the request, the thread's audit context is the system's again (each
    operation's own actor undone, and the Bulk request's too)."""
    resp = scim.post("/scim/v2/Bulk", {"schemas": [BULK], "Operations": _posts(2)})
    assert resp.status_code == 200
    assert current_context() is SYSTEM


def test_operations_refused_before_they_run_are_in_the_log(scim, admin):
    """README: every provisioning operation, each Bulk item, successful or refused, is in
    the log: one whose bulkId reference cannot be resolved (409) or whose version is not
    an ETag (400) was answered as refused and left no failure event."""
    user = scim.create_user("target@example.com")
    deactivate = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    body = {
        "schemas": [BULK],
        "Operations": [
            {"method": "PATCH", "path": "/Users/bulkId:nobody", "data": deactivate},
            {
                "method": "PATCH",
                "path": f"/Users/{user['id']}",
                "version": 'W/"1\r\nX-Evil: 1"',
                "data": deactivate,
            },
            {
                "method": "POST",
                "bulkId": "g1",
                "path": "/Groups",
                "data": {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Loop",
                    "members": [{"value": "bulkId:g1"}],
                },
            },
        ],
    }
    before = len(_log(admin))
    resp = scim.post(
        "/scim/v2/Bulk", body, headers={"User-Agent": "Entra", "client-request-id": "c-9"}
    )
    assert resp.status_code == 200
    assert [op["status"] for op in resp.get_json()["Operations"]] == ["409", "400", "409"]
    failures = [e for e in _log(admin)[before:] if e["outcome"] == "failure"]
    assert [(e["action"], e["status"], e["resource_id"]) for e in failures] == [
        ("user.patch", 409, None),
        ("user.patch", 400, user["id"]),
        ("group.create", 409, None),
    ]
    assert {(e["request_id"], e["user_agent"], e["correlation_id"]) for e in failures} == {
        (resp.headers["X-Request-Id"], "Entra", "c-9")
    }
    assert all(e["actor_type"] == "token" for e in failures)
