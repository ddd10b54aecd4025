"""``audit.web``: the audit context of a request, made only when the request records an
event, names the request as it came in (address, user agent, ids, arrival time, actor)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from scim_server.audit import web
from scim_server.models import AuditEvent, ScimToken
from tests.support import USER_SCHEMA


def _events_of(session, resource_id: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.resource_id == resource_id)
    return list(session.scalars(query.order_by(AuditEvent.seq)))


def test_a_scim_write_s_events_name_the_request_as_it_came_in(scim, session):
    """A PATCH that deactivates (two events) names, in both, the caller's address, its user
    agent as sent, our request id, the IdP's correlation id, the token as actor, and the
    time the request arrived: after it was sent, before the events occurred."""
    user = scim.create_user("arrival@example.com")
    sent = datetime.now(UTC)
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}",
        {"op": "replace", "path": "active", "value": False},
        headers={
            "User-Agent": "Entra ID SCIM 2.0",
            "X-Request-Id": "req-42",
            "client-request-id": "entra-42",
        },
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert resp.status_code == 200, resp.get_json()
    token = session.scalars(select(ScimToken).where(ScimToken.org_id == scim.org_id)).one()
    patch, deactivate = _events_of(session, user["id"])[1:]
    assert (patch.action, deactivate.action) == ("user.patch", "user.deactivate")
    for event in (patch, deactivate):
        assert event.source_ip == "203.0.113.9"
        assert event.user_agent == "Entra ID SCIM 2.0"
        assert event.request_id == "req-42" and event.correlation_id == "entra-42"
        assert (event.actor_type, event.actor_id, event.actor_name) == ("token", token.id, "test")
        assert sent <= event.received_at < event.occurred_at
    assert patch.received_at == deactivate.received_at


def test_a_read_records_no_event_and_makes_no_context(scim, session, monkeypatch):
    """GETs (by id, a list) write no audit event and never make the request's context; a
    write makes it once for all its events."""
    user = scim.create_user("reader@example.com")
    made: list[str] = []
    real = web._made

    def counting(*args):
        made.append(args[1])
        return real(*args)

    monkeypatch.setattr(web, "_made", counting)
    before = session.scalar(select(func.count()).select_from(AuditEvent))
    assert scim.get(f"/scim/v2/Users/{user['id']}").status_code == 200
    assert scim.get("/scim/v2/Users?count=5").status_code == 200
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == before
    assert made == []
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "active", "value": False}
    )
    assert resp.status_code == 200
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == before + 2
    assert made == ["token"]


def test_a_bulk_operation_s_event_names_the_bulk_request(scim, session):
    """The operations of a Bulk request share its app context: each one's event carries
    the Bulk request's id (the X-Request-Id its client got) and arrival time."""
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": f"b{i}",
                "data": {"schemas": [USER_SCHEMA], "userName": f"bulk{i}@example.com"},
            }
            for i in range(2)
        ],
    }
    sent = datetime.now(UTC)
    resp = scim.post("/scim/v2/Bulk", body)
    assert resp.status_code == 200, resp.get_json()
    ids = [op["location"].rsplit("/", 1)[1] for op in resp.get_json()["Operations"]]
    first, second = (_events_of(session, i)[0] for i in ids)
    assert first.action == second.action == "user.create"
    assert first.request_id == second.request_id == resp.headers["X-Request-Id"]
    received = first.received_at
    assert received is not None and received == second.received_at
    assert sent <= received < first.occurred_at
    assert first.occurred_at <= second.occurred_at
