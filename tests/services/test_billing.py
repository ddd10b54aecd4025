"""``billing``: a period's seat moves per license, by license id where the log gives one."""

from __future__ import annotations

from scim_server.models import AuditEvent
from scim_server.services import billing
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
