"""The directory as an admin edits it (``services.directory``), under concurrency (PostgreSQL).

A settings save locks the organization row ``FOR NO KEY UPDATE``: every audited write's
audit INSERT checks its foreign key on that row (``FOR KEY SHARE``) while holding the
audit head, which the save takes at its commit; ``FOR UPDATE`` would deadlock the two.

A license or role the settings or the active rules name cannot be deleted (or a license
renamed): the check runs in the delete's transaction after the row is locked, and a
settings save or an activation naming it locks it ``FOR KEY SHARE``. Whichever comes
second waits and then answers as it would alone: never both, leaving a name that is gone.
"""

from __future__ import annotations

from typing import Any

import pytest

from scim_server.db import db
from scim_server.services import directory, licenses, roles, rule_sets
from scim_server.services.tokens import create_token
from tests.support import Scim
from tests.support.holds import Hold, client_like, main_thread_only, postgresql_only

ENG_RULES = {
    "mode": "first-match",
    "rules": [{"name": "all", "when": {"always": True}, "then": {"license": "Eng"}}],
}
PLANNER_RULES = {
    "mode": "first-match",
    "rules": [{"name": "all", "when": {"always": True}, "then": {"roles": ["Planner"]}}],
}


def _admin(app: Any, scim: Scim) -> Scim:
    """A new admin API client (a thread's own) for the organization."""
    with db.reader(app)() as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    return Scim(app.test_client(), secret, scim.org_id)


def _refused(resp: Any, status: int) -> str:
    """The detail of an admin API refusal with this status."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    detail = resp.get_json()["detail"]
    assert isinstance(detail, str) and detail
    return detail


def _license_names(admin: Scim) -> list[str]:
    return [x["name"] for x in admin.get("/api/v1/licenses").get_json()["licenses"]]


def _role_names(admin: Scim) -> list[str]:
    return [x["name"] for x in admin.get("/api/v1/roles").get_json()["roles"]]


def _active_rules(admin: Scim) -> list[str]:
    return [r["id"] for r in admin.get("/api/v1/rulesets").get_json()["rule_sets"] if r["active"]]


# -- settings save and audited writes: no deadlock ----------------------------------------


@pytest.mark.parametrize("write", ["delete_user", "patch_user", "rotate_webhook"])
def test_settings_save_racing_an_audited_write_does_not_deadlock(
    live: Any, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    """PUT /settings holds the organization row when a write takes the audit head and then
    inserts its audit events (their foreign key locks the organization row ``FOR KEY
    SHARE``): the write does not wait for the save, and both succeed (no 503)."""
    app, scim = live
    postgresql_only(app)
    admin, other_admin = _admin(app, scim), _admin(app, scim)
    user = scim.create_user("victim@example.com", title="a")
    hook = admin.post(
        "/api/v1/webhooks", {"url": "https://hooks.example.com/x", "events": ["*"]}
    ).get_json()
    idp = client_like(app, scim)

    def racer() -> int:
        if write == "delete_user":
            return idp.delete(f"/scim/v2/Users/{user['id']}").status_code
        if write == "patch_user":
            op = {"op": "replace", "path": "title", "value": "b"}
            return idp.patch_ops(f"/scim/v2/Users/{user['id']}", op).status_code
        return other_admin.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", None).status_code

    hold = Hold(monkeypatch, app, directory, "record", racer, when=main_thread_only())
    saved = admin.put("/api/v1/settings", {"lockout_threshold": 3})
    hold.join()
    expected = 204 if write == "delete_user" else 200
    assert (saved.status_code, hold.results) == (200, [expected]), hold.waited
    assert admin.get("/api/v1/settings").get_json()["lockout_threshold"] == 3
    assert admin.get("/api/v1/audit/verify").status_code == 200


# -- a license deleted while the settings or the rules come to name it ----------------------


def _recording(action: str) -> Any:
    """``when`` for a service's ``record``: the holder's event ``action``, its rows locked."""
    main = main_thread_only()
    return lambda org_id, recorded, *args, **kw: main() and recorded == action


def test_a_license_deleted_while_the_settings_name_it_as_default(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE /licenses/{id} holds the license when PUT /settings names it as the default
    license: the PUT waits, then finds it gone (400, as after the delete); the settings
    never name a license that does not exist."""
    app, scim = live
    postgresql_only(app)
    admin, other = _admin(app, scim), _admin(app, scim)
    lic = admin.post("/api/v1/licenses", {"name": "Eng", "seat_limit": None}).get_json()

    def put_settings() -> Any:
        return other.put("/api/v1/settings", {"default_license": "Eng"})

    hold = Hold(
        monkeypatch, app, licenses, "record", put_settings, when=_recording("license.delete")
    )
    deleted = admin.delete(f"/api/v1/licenses/{lic['id']}")
    hold.join()
    assert deleted.status_code == 204, deleted.get_json()
    assert hold.waited == [True]
    assert "unknown license" in _refused(hold.results[0], 400)
    assert admin.get("/api/v1/settings").get_json()["default_license"] is None
    assert _license_names(admin) == []


def test_a_license_named_as_default_while_it_is_deleted(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PUT /settings naming the default license holds it when DELETE /licenses/{id} runs:
    the delete waits, then sees the settings name it (409, as after the PUT)."""
    app, scim = live
    postgresql_only(app)
    admin, other = _admin(app, scim), _admin(app, scim)
    lic = admin.post("/api/v1/licenses", {"name": "Eng", "seat_limit": None}).get_json()

    def delete() -> Any:
        return other.delete(f"/api/v1/licenses/{lic['id']}")

    hold = Hold(monkeypatch, app, directory, "record", delete, when=_recording("settings.update"))
    saved = admin.put("/api/v1/settings", {"default_license": "Eng"})
    hold.join()
    assert saved.status_code == 200, saved.get_json()
    assert hold.waited == [True]
    assert "default license" in _refused(hold.results[0], 409)
    assert _license_names(admin) == ["Eng"]


def test_a_license_deleted_while_rules_naming_it_are_activated(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE /licenses/{id} holds the license when a rule set giving it is activated: the
    activation waits, then finds it gone (400 with the rule's problem, as after the
    delete); no active rules name a license that does not exist."""
    app, scim = live
    postgresql_only(app)
    admin, other = _admin(app, scim), _admin(app, scim)
    lic = admin.post("/api/v1/licenses", {"name": "Eng", "seat_limit": None}).get_json()
    rs = admin.post("/api/v1/rulesets", {"name": "main", "document": ENG_RULES}).get_json()

    def activate() -> Any:
        return other.post(f"/api/v1/rulesets/{rs['id']}/activate", None)

    hold = Hold(monkeypatch, app, licenses, "record", activate, when=_recording("license.delete"))
    deleted = admin.delete(f"/api/v1/licenses/{lic['id']}")
    hold.join()
    assert deleted.status_code == 204, deleted.get_json()
    assert hold.waited == [True]
    assert "Eng" in _refused(hold.results[0], 400)
    assert _active_rules(admin) == []
    assert scim.create_user("after@example.com")["userName"] == "after@example.com"


def test_rules_naming_a_license_activated_while_it_is_deleted(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An activation of rules giving the license holds it (after its validation) when
    DELETE /licenses/{id} runs: the delete waits, then sees the active rules use it (409)."""
    app, scim = live
    postgresql_only(app)
    admin, other = _admin(app, scim), _admin(app, scim)
    lic = admin.post("/api/v1/licenses", {"name": "Eng", "seat_limit": None}).get_json()
    rs = admin.post("/api/v1/rulesets", {"name": "main", "document": ENG_RULES}).get_json()

    def delete() -> Any:
        return other.delete(f"/api/v1/licenses/{lic['id']}")

    hold = Hold(monkeypatch, app, rule_sets, "record", delete, when=_recording("ruleset.activate"))
    activated = admin.post(f"/api/v1/rulesets/{rs['id']}/activate", None)
    hold.join()
    assert activated.status_code == 200, activated.get_json()
    assert hold.waited == [True]
    assert "active rule set" in _refused(hold.results[0], 409)
    assert _license_names(admin) == ["Eng"]
    assert _active_rules(admin) == [rs["id"]]


def test_a_license_renamed_while_the_settings_name_it_as_default(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PATCH /licenses/{id} renaming it holds the license when PUT /settings names it by its
    old name: the PUT waits, then finds no license of that name (400)."""
    app, scim = live
    postgresql_only(app)
    admin, other = _admin(app, scim), _admin(app, scim)
    lic = admin.post("/api/v1/licenses", {"name": "Eng", "seat_limit": None}).get_json()

    def put_settings() -> Any:
        return other.put("/api/v1/settings", {"default_license": "Eng"})

    hold = Hold(
        monkeypatch, app, licenses, "record", put_settings, when=_recording("license.update")
    )
    renamed = admin.patch(f"/api/v1/licenses/{lic['id']}", {"name": "Engineering"})
    hold.join()
    assert renamed.status_code == 200, renamed.get_json()
    assert hold.waited == [True]
    assert "unknown license" in _refused(hold.results[0], 400)
    assert _license_names(admin) == ["Engineering"]
    assert admin.get("/api/v1/settings").get_json()["default_license"] is None


# -- a role deleted while the settings or the rules come to name it ---------------------------


def test_a_role_deleted_while_the_settings_name_it_as_default(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE /roles/{id} holds the role when PUT /settings names it as a default role: the
    PUT waits, then finds it gone (400); the settings never name a role that is gone."""
    app, scim = live
    postgresql_only(app)
    admin, other = _admin(app, scim), _admin(app, scim)
    role = admin.post("/api/v1/roles", {"name": "Planner", "kind": "task"}).get_json()

    def put_settings() -> Any:
        return other.put("/api/v1/settings", {"default_roles": ["Planner"]})

    hold = Hold(monkeypatch, app, roles, "record", put_settings, when=_recording("role.delete"))
    deleted = admin.delete(f"/api/v1/roles/{role['id']}")
    hold.join()
    assert deleted.status_code == 204, deleted.get_json()
    assert hold.waited == [True]
    assert "unknown role" in _refused(hold.results[0], 400)
    assert admin.get("/api/v1/settings").get_json()["default_roles"] == []


def test_a_role_deleted_while_rules_naming_it_are_activated(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE /roles/{id} holds the role when rules giving it are activated: the activation
    waits, then finds it gone (400); no active rules name a role that is gone."""
    app, scim = live
    postgresql_only(app)
    admin, other = _admin(app, scim), _admin(app, scim)
    role = admin.post("/api/v1/roles", {"name": "Planner", "kind": "task"}).get_json()
    rs = admin.post("/api/v1/rulesets", {"name": "main", "document": PLANNER_RULES}).get_json()

    def activate() -> Any:
        return other.post(f"/api/v1/rulesets/{rs['id']}/activate", None)

    hold = Hold(monkeypatch, app, roles, "record", activate, when=_recording("role.delete"))
    deleted = admin.delete(f"/api/v1/roles/{role['id']}")
    hold.join()
    assert deleted.status_code == 204, deleted.get_json()
    assert hold.waited == [True]
    assert "Planner" in _refused(hold.results[0], 400)
    assert _active_rules(admin) == []
    assert _role_names(admin) == []


def test_two_settings_saves_take_turns_and_are_logged_in_order(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second PUT /settings waits for the first (the organization row), then saves over
    it; the log shows both changes in order, the second's "before" being the first's."""
    from tests.support.admin_api import events as audit_events

    app, scim = live
    postgresql_only(app)
    admin, other = _admin(app, scim), _admin(app, scim)

    def second() -> int:
        return int(other.put("/api/v1/settings", {"lockout_threshold": 7}).status_code)

    hold = Hold(monkeypatch, app, directory, "record", second, when=main_thread_only())
    first = admin.put("/api/v1/settings", {"lockout_threshold": 3})
    hold.join()
    assert (first.status_code, hold.results, hold.waited) == (200, [200], [True])
    assert admin.get("/api/v1/settings").get_json()["lockout_threshold"] == 7
    changes = [
        e["changes"]["lockout_threshold"]
        for e in audit_events(admin, action="settings.update")
        if e.get("changes") and "lockout_threshold" in e["changes"]
    ]
    assert [c["after"] for c in changes] == [3, 7]
    assert changes[1]["before"] == 3, changes
