"""``licenses.assign``: what it reports is what changed, no more; the last seat goes once."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import pytest

from scim_server.db import db
from scim_server.models import License, User
from scim_server.services import licenses
from scim_server.services.tokens import create_token
from tests.support import USER_SCHEMA, Scim
from tests.support.admin_api import make_license, person
from tests.support.holds import Hold, client_like, main_thread_only, postgresql_only
from tests.support.threads import run_together


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


# -- the last seat, taken at once (PostgreSQL) ------------------------------------------------


def _admin_of(app: Any, scim: Scim) -> Scim:
    with db.reader(app)() as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    return Scim(app.test_client(), secret, scim.org_id)


def test_the_last_strict_seat_taken_by_two_creates(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strict seats, one left: a create holds the license (its seat counted) while another
    create runs; the second waits, then finds no seat (409). One user, one seat used."""
    app, scim = live
    postgresql_only(app)
    admin = _admin_of(app, scim)
    admin.post("/api/v1/licenses", {"name": "Seat", "seat_limit": 1})
    r = admin.put("/api/v1/settings", {"strict_seats": True, "default_license": "Seat"})
    assert r.status_code == 200, r.get_json()

    def create() -> int:
        body = {"schemas": [USER_SCHEMA], "userName": "b@example.com"}
        return client_like(app, scim).post("/scim/v2/Users", body).status_code

    hold = Hold(monkeypatch, app, licenses, "assign", create, when=main_thread_only())
    first = scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "a@example.com"})
    hold.join()
    (lic,) = admin.get("/api/v1/licenses").get_json()["licenses"]
    assert (first.status_code, hold.results, lic["used"]) == (201, [409], 1), hold.waited
    assert hold.waited == [True]
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 1


def test_the_last_strict_seat_taken_by_two_patches(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two users move into the title the rules give the 1-seat license (strict seats) at
    once: one gets it (200), the other waits and is refused (409)."""
    app, scim = live
    postgresql_only(app)
    admin = _admin_of(app, scim)
    admin.post("/api/v1/licenses", {"name": "Seat", "seat_limit": 1})
    admin.put("/api/v1/settings", {"strict_seats": True})
    doc = {
        "mode": "first-match",
        "rules": [
            {
                "name": "eng",
                "when": {"attribute": "title", "equals": "eng"},
                "then": {"license": "Seat"},
            }
        ],
    }
    rs = admin.post("/api/v1/rulesets", {"name": "main", "document": doc}).get_json()
    assert admin.post(f"/api/v1/rulesets/{rs['id']}/activate", None).status_code == 200
    ids = [
        scim.create_user(f"{n}@example.com", emails=[{"value": f"{n}@example.com"}])["id"]
        for n in "ab"
    ]
    op = {"op": "replace", "path": "title", "value": "eng"}

    def patch() -> int:
        return client_like(app, scim).patch_ops(f"/scim/v2/Users/{ids[1]}", op).status_code

    hold = Hold(monkeypatch, app, licenses, "assign", patch, when=main_thread_only())
    first = scim.patch_ops(f"/scim/v2/Users/{ids[0]}", op)
    hold.join()
    (lic,) = admin.get("/api/v1/licenses").get_json()["licenses"]
    assert (first.status_code, lic["used"], hold.results) == (200, 1, [409]), hold.waited


def test_the_last_seat_given_by_four_admins_at_once(live: Any) -> None:
    """Four PUT /users/{id}/license of the 1-seat license at once: one 200, three 409."""
    app, scim = live
    postgresql_only(app)
    admin = _admin_of(app, scim)
    admin.post("/api/v1/licenses", {"name": "Seat", "seat_limit": 1})
    ids = [scim.create_user(f"{n}@example.com")["id"] for n in "abcd"]
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def put(uid: str) -> None:
        a = _admin_of(app, scim)
        barrier.wait()
        statuses.append(a.put(f"/api/v1/users/{uid}/license", {"license": "Seat"}).status_code)

    run_together(*(partial(put, u) for u in ids))
    (lic,) = admin.get("/api/v1/licenses").get_json()["licenses"]
    assert sorted(statuses) == [200, 409, 409, 409] and lic["used"] == 1, (statuses, lic)
