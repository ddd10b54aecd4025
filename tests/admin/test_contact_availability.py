"""Admin API: availability hours of contacts that are resources of an external system."""

from __future__ import annotations

from sqlalchemy import func, select

from scim_server.db import utcnow
from scim_server.models import ContactAvailability
from scim_server.services.availability import parity_of
from tests.support.admin_api import events, ok

EMPTY_WEEK = {
    d: [] for d in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
}


def _resource(admin, name="Crane 7", system="PlanIt"):
    return ok(
        admin.post("/api/v1/contacts", {"kind": "person", "name": name, "resource_system": system}),
        201,
    )


def _rows(session):
    return session.scalar(select(func.count()).select_from(ContactAvailability))


def test_put_then_get_round_trips_and_logs_the_changed_days(admin, session):
    """PUT stores the two weeks (ranges sorted), GET returns them with this week's parity;
    one contact.availability event with each changed day; the same PUT again logs nothing."""
    contact = _resource(admin)
    url = f"/api/v1/contacts/{contact['id']}/availability"
    assert ok(admin.get(url))["odd"] == EMPTY_WEEK
    body = {
        "odd": {
            "monday": [{"start": "13:00", "end": "17:00"}, {"start": "08:00", "end": "12:00"}],
            "friday": [{"start": "00:00", "end": "24:00"}],
        },
        "even": {
            "monday": [{"start": "08:00", "end": "12:00"}, {"start": "12:00", "end": "16:30"}]
        },
    }
    out = ok(admin.put(url, body))
    assert out["odd"]["monday"] == [
        {"start": "08:00", "end": "12:00"},
        {"start": "13:00", "end": "17:00"},
    ]
    assert out["odd"]["friday"] == [{"start": "00:00", "end": "24:00"}]
    assert out["even"]["tuesday"] == []
    assert out["resource_system"] == "PlanIt"
    today = utcnow().date()
    assert (
        out["this_week"]["parity"]
        == parity_of(today)
        == ("odd" if today.isocalendar().week % 2 else "even")
    )
    assert ok(admin.get(url)) == out
    assert _rows(session) == 5
    (event,) = events(admin, action="contact.availability")
    assert event["resource_id"] == contact["id"]
    assert event["changes"] == {
        "odd.monday": {"before": [], "after": ["08:00-12:00", "13:00-17:00"]},
        "odd.friday": {"before": [], "after": ["00:00-24:00"]},
        "even.monday": {"before": [], "after": ["08:00-12:00", "12:00-16:30"]},
    }
    ok(admin.put(url, body))
    assert len(events(admin, action="contact.availability")) == 1


def test_bad_hours_are_400_naming_the_place_and_change_nothing(admin, session):
    """Bad times, start after end, overlaps, unknown keys or days, missing week: 400."""
    contact = _resource(admin)
    url = f"/api/v1/contacts/{contact['id']}/availability"
    ok(admin.put(url, {"odd": {"monday": [{"start": "08:00", "end": "09:00"}]}, "even": {}}))
    cases = [
        ({"odd": {}}, "'even' is required"),
        ({"odd": {}, "even": {}, "daily": {}}, "Unknown key(s) daily"),
        ({"odd": {"funday": []}, "even": {}}, "unknown weekday(s) funday"),
        ({"odd": {"monday": [{"start": "8:00", "end": "09:00"}]}, "even": {}}, "odd.monday[0]"),
        ({"odd": {"monday": [{"start": "24:30", "end": "24:45"}]}, "even": {}}, "not a time"),
        ({"odd": {"monday": [{"start": "10:00", "end": "09:00"}]}, "even": {}}, "ends before"),
        ({"odd": {"monday": [{"start": "10:00", "end": "10:00"}]}, "even": {}}, "ends before"),
        (
            {
                "odd": {},
                "even": {
                    "sunday": [
                        {"start": "08:00", "end": "12:00"},
                        {"start": "11:00", "end": "13:00"},
                    ]
                },
            },
            "even.sunday: 11:00-13:00 overlaps 08:00-12:00",
        ),
        ({"odd": {"monday": [{"start": "08:00"}]}, "even": {}}, "a range is"),
        ({"odd": {"monday": "08:00-12:00"}, "even": {}}, "a list of"),
        ([], "a JSON object"),
    ]
    for body, message in cases:
        resp = admin.put(url, body)
        assert resp.status_code == 400, (body, resp.get_json())
        assert message in resp.get_json()["detail"], (message, resp.get_json())
    assert _rows(session) == 1
    assert len(events(admin, action="contact.availability", outcome="failure")) == len(cases)


def test_only_resources_have_hours_and_clearing_the_flag_removes_them(admin, session):
    """A contact that is not a resource: 409 for GET and PUT; unknown contact: 404;
    clearing resource_system removes the hours, in the contact.update event."""
    plain = ok(admin.post("/api/v1/contacts", {"kind": "person", "name": "Clerk"}), 201)
    url = f"/api/v1/contacts/{plain['id']}/availability"
    assert admin.get(url).status_code == 409
    resp = admin.put(url, {"odd": {}, "even": {}})
    assert resp.status_code == 409 and "resource_system" in resp.get_json()["detail"]
    assert admin.get("/api/v1/contacts/nope/availability").status_code == 404

    contact = _resource(admin)
    url = f"/api/v1/contacts/{contact['id']}/availability"
    ok(admin.put(url, {"odd": {"monday": [{"start": "08:00", "end": "09:00"}]}, "even": {}}))
    patched = ok(admin.patch(f"/api/v1/contacts/{contact['id']}", {"resource_system": None}))
    assert patched["resource_system"] is None
    assert _rows(session) == 0
    (event,) = events(admin, action="contact.update")
    assert event["changes"]["availability"] == {"before": "1 range(s)", "after": None}
    assert admin.get(url).status_code == 409


def test_other_organization_cannot_see_the_hours(admin, other_scim, app):
    """Another organization's admin gets 404 for this contact's hours."""
    from scim_server.db import db
    from scim_server.services.tokens import create_token
    from tests.support import Scim

    contact = _resource(admin)
    with db.reader(app)() as s:
        _t, secret = create_token(s, other_scim.org_id, "other", kind="admin")
    other_admin = Scim(admin.client, secret, other_scim.org_id)
    assert other_admin.get(f"/api/v1/contacts/{contact['id']}/availability").status_code == 404


def test_a_time_with_a_line_break_after_it_is_refused(admin):
    """``08:00\n`` is no HH:MM (the published pattern): stored as 08:00 before."""
    contact = _resource(admin)
    url = f"/api/v1/contacts/{contact['id']}/availability"
    body = {"odd": {"monday": [{"start": "08:00\n", "end": "09:00"}]}, "even": {}}
    assert admin.put(url, body).status_code == 400
    assert ok(admin.get(url))["odd"] == EMPTY_WEEK


def test_a_blank_system_is_refused(admin):
    """A system of spaces made the contact a resource of nothing, taking hours."""
    contact = ok(admin.post("/api/v1/contacts", {"kind": "person", "name": "Blank"}), 201)
    resp = admin.patch(f"/api/v1/contacts/{contact['id']}", {"resource_system": "   "})
    assert resp.status_code == 400
    assert ok(admin.get(f"/api/v1/contacts/{contact['id']}"))["resource_system"] is None
