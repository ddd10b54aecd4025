"""``licenses.assign``: what it reports is what changed, no more."""

from __future__ import annotations

from scim_server.models import License, User
from scim_server.services import licenses
from tests.support.admin_api import make_license, person


def test_assign_reports_a_shortage_once_and_its_end(scim, admin, session):
    """No seat left (lenient): the first assignment records the shortage; the same one again
    changes nothing and reports nothing; taking the license away ends the wait, reported."""
    lic_id = make_license(admin, "Engineer", 0)["id"]
    user_id = person(scim, "wait@example.com")["id"]
    user = session.get(User, (admin.org_id, user_id))
    lic = session.get(License, (admin.org_id, lic_id))
    first = licenses.assign(session, admin.org_id, user, lic, source="rule", rule="r")
    assert first == {"license_shortage": {"wanted": "Engineer", "seat_limit": 0}}
    assert user.license_wanted_id == lic_id
    assert licenses.assign(session, admin.org_id, user, lic, source="rule", rule="r") == {}
    assert user.license_wanted_id == lic_id
    ended = licenses.assign(session, admin.org_id, user, None, source="rule")
    assert ended == {"license_wanted": {"before": lic_id, "after": None}}
    assert user.license_wanted_id is None
    assert licenses.assign(session, admin.org_id, user, None, source="rule") == {}
