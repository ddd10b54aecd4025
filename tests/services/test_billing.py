"""``billing``: a period's seat moves per license, by license id where the log gives one."""

from __future__ import annotations

from scim_server.models import AuditEvent
from scim_server.services import billing
from tests.support import Scim
from tests.support.admin_api import make_license, ok, person


def test_billing_per_license_survives_a_rename(scim, admin):
    """An admin gives Engineer by hand, renames it Engineering, takes it back: one license
    line (its id, its name now), one seat assigned and one released, net 0; the log of the
    admin's choice gives the license id beside its name (``license_id``)."""
    lic = make_license(admin, "Engineer", 5, price_cents=1000)
    user = person(scim, "bill@example.com")
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": "Engineer"}))
    ok(admin.patch(f"/api/v1/licenses/{lic['id']}", {"name": "Engineering"}))
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": None}))
    bill = ok(admin.get("/api/v1/billing"))
    lines = {
        (x["license_id"], x["license"]): (x["assigned"], x["released"], x["net"])
        for x in bill["per_license"]
    }
    assert lines == {(lic["id"], "Engineering"): (1, 1, 0)}, lines
    assert [(c["license_id"], c["change"]) for c in bill["changes"]] == [
        (lic["id"], 1),
        (lic["id"], -1),
    ]


def _event(changes: dict) -> AuditEvent:
    return AuditEvent(action="user.license", changes=changes)


def test_moves_prefer_the_id_and_still_read_events_that_only_name_the_license():
    """An admin's choice logged with ids is read by id (with the name it had); one logged
    before ids were (names only) is still read by name; the rules' events give ids."""
    with_ids = _event(
        {
            "license": {"before": "Old", "after": "New"},
            "license_id": {"before": "id-old", "after": "id-new"},
        }
    )
    assert billing._moves(with_ids) == [("id-old", "Old", -1), ("id-new", "New", +1)]
    by_name = _event({"license": {"before": None, "after": "Engineer"}})
    assert billing._moves(by_name) == [("Engineer", None, +1)]
    by_rules = AuditEvent(
        action="user.mapping", changes={"license": {"before": "a", "after": None}}
    )
    assert billing._moves(by_rules) == [("a", None, -1)]


def test_a_deleted_license_keeps_the_name_the_log_gave(scim, admin, session):
    """A license given by hand, taken back and deleted: the period's moves name it as the log
    did (not by its id), with no license id and no price."""
    lic = make_license(admin, "Temp", 5, price_cents=500)
    user = person(scim, "temp@example.com")
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": "Temp"}))
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": None}))
    assert admin.delete(f"/api/v1/licenses/{lic['id']}").status_code == 204
    bill = ok(admin.get("/api/v1/billing"))
    lines = {
        (x["license_id"], x["license"]): (x["assigned"], x["released"]) for x in bill["per_license"]
    }
    assert lines == {(None, "Temp"): (1, 1)}, lines


def _lines(admin: Scim) -> list[tuple[str | None, str, int, int]]:
    body = ok(admin.get("/api/v1/billing"))
    return [
        (x["license_id"], x["license"], x["assigned"], x["released"]) for x in body["per_license"]
    ]


def _delete(scim: Scim, admin: Scim, lic: dict, *users: dict) -> None:
    for user in users:
        assert scim.delete(f"/scim/v2/Users/{user['id']}").status_code == 204
    ok(admin.put("/api/v1/settings", {"default_license": None}))
    assert admin.delete(f"/api/v1/licenses/{lic['id']}").status_code == 204


def test_a_deleted_license_is_named_and_one_line_whichever_event_moved_its_seats(
    scim: Scim, admin: Scim
) -> None:
    """Temp, the default license, is taken by two creates (their events give its id only),
    one given back by hand (the admin's choice gives name and id), then the users and Temp
    deleted: one line named Temp, 2 assigned and 2 released. It was named by its id in
    the lines, the days and the changes, and split in two lines by how the log named it."""
    lic = make_license(admin, "Temp", 5, price_cents=700)
    ok(admin.put("/api/v1/settings", {"default_license": "Temp"}))
    first, second = person(scim, "t@example.com"), person(scim, "v@example.com")
    ok(admin.put(f"/api/v1/users/{second['id']}/license", {"license": None}))
    _delete(scim, admin, lic, first, second)
    assert _lines(admin) == [(None, "Temp", 2, 2)]
    body = ok(admin.get("/api/v1/billing"))
    assert {c["license"] for c in body["changes"]} == {"Temp"}
    assert [(d["license_id"], d["license"]) for d in body["per_day"]] == [(None, "Temp")]


def test_a_license_renamed_then_deleted_is_one_line_under_its_last_name(
    scim: Scim, admin: Scim
) -> None:
    """Given as Temp, taken back as Temp 2, deleted: one line (it was +1 under one name and
    -1 under the other)."""
    lic = make_license(admin, "Temp", 5, price_cents=700)
    user = person(scim, "u@example.com")
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": "Temp"}))
    ok(admin.patch(f"/api/v1/licenses/{lic['id']}", {"name": "Temp 2"}))
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": None}))
    assert admin.delete(f"/api/v1/licenses/{lic['id']}").status_code == 204
    assert _lines(admin) == [(None, "Temp 2", 1, 1)]


def test_a_deleted_license_and_a_new_one_of_its_name_are_apart_by_day_too(
    scim: Scim, admin: Scim
) -> None:
    """Temp deleted, a new Temp given: two lines, and two rows of the day (they were one,
    by name, adding up to neither line)."""
    lic = make_license(admin, "Temp", 5, price_cents=700)
    user = person(scim, "u@example.com")
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": "Temp"}))
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": None}))
    assert admin.delete(f"/api/v1/licenses/{lic['id']}").status_code == 204
    new = make_license(admin, "Temp", 5, price_cents=900)
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": "Temp"}))
    assert sorted(_lines(admin), key=str) == sorted(
        [(None, "Temp", 1, 1), (new["id"], "Temp", 1, 0)], key=str
    )
    days = ok(admin.get("/api/v1/billing"))["per_day"]
    assert sorted((d["license_id"] or "", d["assigned"], d["released"]) for d in days) == sorted(
        [("", 1, 1), (new["id"], 1, 0)]
    )
