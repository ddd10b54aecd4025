"""Rule sets (``services.rule_sets``): activation and apply under concurrency (PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from scim_server.db import db
from scim_server.services.tokens import create_token
from tests.support import USER_SCHEMA, Scim
from tests.support.admin_api import run_jobs
from tests.support.holds import Hold, main_thread_only, postgresql_only

ENG_RULES = {
    "mode": "first-match",
    "rules": [{"name": "all", "when": {"always": True}, "then": {"license": "Eng"}}],
}


def test_create_racing_activation_and_apply_ends_evaluated_by_the_final_rules(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create reads the rules (old: no license), then the activation of rules giving every
    user the license and the apply job both run to their end before it commits: the
    create's user must end up with the license (evaluated by the final rules)."""
    from scim_server.services import users as users_service

    app, scim = live
    postgresql_only(app)
    with db.reader(app)() as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    admin = Scim(app.test_client(), secret, scim.org_id)
    other_admin = Scim(app.test_client(), secret, scim.org_id)
    admin.post("/api/v1/licenses", {"name": "Eng", "seat_limit": None})
    rs = admin.post("/api/v1/rulesets", {"name": "main", "document": ENG_RULES}).get_json()
    scim.create_user("before@example.com", emails=[{"value": "before@example.com"}])

    def activate_and_apply() -> tuple[int, int, int]:
        act = other_admin.post(f"/api/v1/rulesets/{rs['id']}/activate", None).status_code
        job = other_admin.post("/api/v1/rulesets/apply", None)
        return act, job.status_code, run_jobs(other_admin)

    hold = Hold(
        monkeypatch,
        app,
        users_service,
        "identity_config",
        activate_and_apply,
        when=main_thread_only(),
    )
    created = scim.post(
        "/scim/v2/Users",
        {
            "schemas": [USER_SCHEMA],
            "userName": "racer@example.com",
            "emails": [{"value": "racer@example.com"}],
        },
    )
    hold.join()
    assert created.status_code == 201
    assert hold.results and hold.results[0][:2] == (200, 202), hold.results
    assert hold.waited == [True], "the apply did not wait for the create that read the rules"
    accounts = {u["userName"]: u for u in admin.get("/api/v1/users").get_json()["users"]}
    assert accounts["before@example.com"].get("license") is not None
    assert accounts["racer@example.com"].get("license") is not None, (
        "a user created while the rules were activated and applied ended without the "
        f"license the final rules give: {accounts['racer@example.com']}"
    )
