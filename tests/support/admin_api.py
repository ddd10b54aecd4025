"""Admin API helpers: licenses, roles, accounts, events, jobs, as a test arranges them."""

from __future__ import annotations

from typing import Any

from scim_server.db import db
from scim_server.services.tokens import create_token
from tests.support import ENTERPRISE, Scim

PRODUCT = "urn:scim-server:schemas:extension:product:1.0:User"


def ok(resp: Any, status: int = 200) -> Any:
    """The JSON body of a response that must have ``status``."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    return resp.get_json()


def admin_of(org: Scim) -> Scim:
    """An admin API client of the organization ``org`` (its SCIM client), on the same client."""
    with db.reader(org.client.application)() as s:
        _token, secret = create_token(s, org.org_id, "admin", kind="admin")
    return Scim(org.client, secret, org.org_id)


def make_license(admin: Scim, name: str, seats: int | None = None, **extra: Any) -> dict[str, Any]:
    return ok(admin.post("/api/v1/licenses", {"name": name, "seat_limit": seats, **extra}), 201)


def make_role(admin: Scim, name: str, kind: str = "task") -> dict[str, Any]:
    return ok(admin.post("/api/v1/roles", {"name": name, "kind": kind}), 201)


def licenses_by_name(admin: Scim) -> dict[str, dict[str, Any]]:
    return {lic["name"]: lic for lic in ok(admin.get("/api/v1/licenses"))["licenses"]}


def account(admin: Scim, user_id: str) -> dict[str, Any]:
    return ok(admin.get(f"/api/v1/users/{user_id}"))


def events(admin: Scim, **params: Any) -> list[dict[str, Any]]:
    """Audit events, oldest first."""
    body = ok(admin.get("/api/v1/audit", query_string={"limit": 1000, **params}))
    return list(reversed(body["events"]))


def person(scim: Scim, user_name: str, department: str | None = None, **attrs: Any) -> dict:
    """A SCIM user with a work e-mail (and a department, when given)."""
    if department is not None:
        attrs[ENTERPRISE] = {"department": department}
    return scim.create_user(
        user_name, emails=[{"type": "work", "value": user_name, "primary": True}], **attrs
    )


def person_sorting_before(
    scim: Scim, holder: dict[str, Any], department: str | None = None, **attrs: Any
) -> dict[str, Any]:
    """A new ``person`` whose id sorts before ``holder``'s: the order the database reads them
    in. A test whose outcome must not depend on the random ids fixes the order that would
    show a dependence, instead of leaving it to chance (about one run in two). The users
    made on the way, whose ids sorted after, are deleted again."""
    for i in range(64):
        newcomer = person(scim, f"new{i}@example.com", department, **attrs)
        if newcomer["id"] < holder["id"]:
            return newcomer
        assert scim.delete(f"/scim/v2/Users/{newcomer['id']}").status_code == 204
    raise AssertionError("no id sorted first in 64 tries")


def run_jobs(admin: Scim) -> int:
    """Run every due job as ``scim-server worker --once`` would, on the test's database."""
    from scim_server.worker import Worker

    return Worker(db.writer(admin.client.application)).run_once()


def apply_rules(admin: Scim) -> dict[str, Any]:
    """POST rulesets/apply (202 and a Location), run the worker, return the finished job."""
    resp = admin.post("/api/v1/rulesets/apply", None)
    job = ok(resp, 202)
    assert resp.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "queued"
    assert run_jobs(admin) >= 1
    return ok(admin.get(resp.headers["Location"]))
