"""List pages of users from rows kept rendered per process (``scim.user_fragments``).

A kept rendering is used only for the row it was made from (same version, same
``updated_at``, same service root): every change a client, an admin or the rules make
shows on the next page, and each user on a page is byte for byte what GET by id answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, text

from scim_server import create_app, jsonfast
from scim_server.scim.listing import ANCHORS_EXTENSION, RENDERED_EXTENSION
from scim_server.scim.user_fragments import RenderedUsers
from scim_server.services import paging
from tests.admin.rules import RULES, activate, catalogue
from tests.scim.test_read_cost import statements
from tests.support import ENTERPRISE, USER_SCHEMA, Scim, bind_to_connection
from tests.support.admin_api import (
    PRODUCT,
    apply_rules,
    licenses_by_name,
    make_license,
    make_role,
    ok,
    person,
)
from tests.support.local import give_password, sign_in
from tests.support.sso import make_person

PAGE = "/scim/v2/Users?count=50"


def kept(app: Flask) -> RenderedUsers:
    rendered: RenderedUsers = app.extensions[RENDERED_EXTENSION]
    return rendered


def page_as_get(scim: Scim, url: str = PAGE, **headers: str) -> dict[str, dict[str, Any]]:
    """The page's users by id, each checked byte for byte against GET /Users/{id}."""
    resp = scim.get(url, headers=headers or None)
    assert resp.status_code == 200, resp.get_json()
    found = {}
    for resource in resp.get_json()["Resources"]:
        got = scim.get(f"/scim/v2/Users/{resource['id']}", headers=headers or None)
        assert got.status_code == 200
        assert jsonfast.dumps_bytes(resource) == got.get_data(), resource["id"]
        found[resource["id"]] = resource
    return found


@pytest.fixture
def people(scim: Scim, admin: Scim) -> dict[str, Any]:
    """Six users: one with a manager, an externalId and a license given by hand, three in
    a group that the rules give a license and a role, one inactive."""
    catalogue(admin)
    activate(admin)
    engineers = scim.create_group("Engineering")
    users = [person(scim, f"p{i}@example.com", department="R&D") for i in range(4)]
    users.append(
        scim.create_user(
            "managed@example.com",
            externalId="ext-1",
            **{ENTERPRISE: {"manager": {"value": users[0]["id"]}, "costCenter": "7"}},
        )
    )
    users.append(scim.create_user("off@example.com", active=False))
    scim.patch_ops(
        f"/scim/v2/Groups/{engineers['id']}",
        {"op": "add", "path": "members", "value": [{"value": u["id"]} for u in users[:3]]},
    )
    apply_rules(admin)
    make_license(admin, "Spare")
    ok(admin.put(f"/api/v1/users/{users[4]['id']}/license", {"license": "Spare"}))
    return {"users": users, "group": engineers}


def test_a_page_read_again_comes_from_what_was_kept(
    app: Flask, scim: Scim, people: dict[str, Any]
) -> None:
    kept(app).clear()
    first = scim.get(PAGE)
    assert len(kept(app)) == 6
    assert 0 < kept(app).size <= kept(app).max_bytes
    again = scim.get(PAGE)
    assert again.get_data() == first.get_data()
    users = page_as_get(scim)
    assert users[people["users"][0]["id"]][PRODUCT]["license"]["value"] == "Engineer"
    assert users[people["users"][4]["id"]][ENTERPRISE]["manager"]["$ref"].endswith(
        f"/Users/{people['users'][0]['id']}"
    )


def _patch_active(scim: Scim, admin: Scim, people: dict[str, Any]) -> Callable[[dict], None]:
    user = people["users"][1]
    scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "active", "value": False}
    )
    return lambda page: _check(page[user["id"]]["active"] is False)


def _put_name(scim: Scim, admin: Scim, people: dict[str, Any]) -> Callable[[dict], None]:
    user = people["users"][2]
    body = {"schemas": [USER_SCHEMA], "userName": "renamed@example.com", "title": "Lead"}
    assert scim.put(f"/scim/v2/Users/{user['id']}", body).status_code == 200
    return lambda page: _check(page[user["id"]]["userName"] == "renamed@example.com")


def _join_group(scim: Scim, admin: Scim, people: dict[str, Any]) -> Callable[[dict], None]:
    user = people["users"][3]
    scim.patch_ops(
        f"/scim/v2/Groups/{people['group']['id']}",
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
    )
    return lambda page: _check(
        [g["display"] for g in page[user["id"]]["groups"]] == ["Engineering"]
    )


def _leave_group(scim: Scim, admin: Scim, people: dict[str, Any]) -> Callable[[dict], None]:
    user = people["users"][0]
    scim.patch_ops(
        f"/scim/v2/Groups/{people['group']['id']}",
        {"op": "remove", "path": f'members[value eq "{user["id"]}"]'},
    )
    return lambda page: _check("groups" not in page[user["id"]])


def _rename_group(scim: Scim, admin: Scim, people: dict[str, Any]) -> Callable[[dict], None]:
    # The members' versions stay: their groups are written per page, not kept.
    scim.patch_ops(
        f"/scim/v2/Groups/{people['group']['id']}",
        {"op": "replace", "path": "displayName", "value": "Platform"},
    )
    members = [u["id"] for u in people["users"][:3]]
    return lambda page: _check(all(page[m]["groups"][0]["display"] == "Platform" for m in members))


def _new_manager(scim: Scim, admin: Scim, people: dict[str, Any]) -> Callable[[dict], None]:
    user, boss = people["users"][4], people["users"][3]
    scim.patch_ops(
        f"/scim/v2/Users/{user['id']}",
        {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": boss["id"]},
    )
    return lambda page: _check(page[user["id"]][ENTERPRISE]["manager"]["value"] == boss["id"])


def _admin_deactivates(scim: Scim, admin: Scim, people: dict[str, Any]) -> Callable[[dict], None]:
    user = people["users"][0]
    ok(admin.post(f"/api/v1/users/{user['id']}/actions/deactivate", {"reason": "leaver"}))
    return lambda page: _check(
        page[user["id"]]["active"] is False and page[user["id"]][PRODUCT]["status"] == "DEACTIVATED"
    )


def _license_renamed(scim: Scim, admin: Scim, people: dict[str, Any]) -> Callable[[dict], None]:
    # The holders' rows do not change: the product view is written per page, not kept.
    spare = licenses_by_name(admin)["Spare"]
    ok(admin.patch(f"/api/v1/licenses/{spare['id']}", {"name": "Reserve"}))
    holder = people["users"][4]["id"]
    return lambda page: _check(page[holder][PRODUCT]["license"]["value"] == "Reserve")


def _role_given(scim: Scim, admin: Scim, people: dict[str, Any]) -> Callable[[dict], None]:
    # A role held changes no user row: the product view is current through the audit head.
    make_role(admin, "Auditor")
    user = people["users"][5]
    ok(admin.post(f"/api/v1/users/{user['id']}/roles", {"role": "Auditor"}))
    return lambda page: _check(
        [r["value"] for r in page[user["id"]][PRODUCT].get("roles", [])] == ["Auditor"]
    )


def _group_deleted(scim: Scim, admin: Scim, people: dict[str, Any]) -> Callable[[dict], None]:
    assert scim.delete(f"/scim/v2/Groups/{people['group']['id']}").status_code == 204
    members = [u["id"] for u in people["users"][:3]]
    return lambda page: _check(all("groups" not in page[m] for m in members))


def _deleted(scim: Scim, admin: Scim, people: dict[str, Any]) -> Callable[[dict], None]:
    user = people["users"][5]
    assert scim.delete(f"/scim/v2/Users/{user['id']}").status_code == 204
    return lambda page: _check(user["id"] not in page and len(page) == 5)


def _check(condition: bool) -> None:
    assert condition


@pytest.mark.parametrize(
    "change",
    [
        _patch_active,
        _put_name,
        _join_group,
        _leave_group,
        _rename_group,
        _new_manager,
        _admin_deactivates,
        _license_renamed,
        _role_given,
        _group_deleted,
        _deleted,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_every_change_shows_on_the_next_page(
    app: Flask, scim: Scim, admin: Scim, people: dict[str, Any], change: Callable[..., Any]
) -> None:
    page_as_get(scim)
    assert len(kept(app)) == 6
    page_as_get(scim)  # written from the kept users alone (nothing changed since)
    expect = change(scim, admin, people)
    expect(page_as_get(scim))


def test_a_change_made_by_another_worker_shows(
    app: Flask, scim: Scim, people: dict[str, Any], engine: Engine, connection: Connection
) -> None:
    """Two processes keep their own renderings: what one of them changes, the other's next
    page shows (the page's row has moved on)."""
    user = people["users"][1]
    page_as_get(scim)
    other = create_app({"TESTING": True, "DATABASE_URL": app.config["DATABASE_URL"]})
    bind_to_connection(other, engine, connection)
    elsewhere = Scim(other.test_client(), scim.token, scim.org_id)
    resp = elsewhere.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Elsewhere"}
    )
    assert resp.get_json()["title"] == "Elsewhere"
    assert len(kept(other)) == 0
    assert page_as_get(scim)[user["id"]]["title"] == "Elsewhere"


def test_a_group_renamed_by_another_worker_shows(
    app: Flask, scim: Scim, people: dict[str, Any], engine: Engine, connection: Connection
) -> None:
    """A group renamed changes none of its members' rows: the other process's change moves
    the audit head, and this one's next page reads the groups again."""
    member = people["users"][0]
    page_as_get(scim)
    assert page_as_get(scim)[member["id"]]["groups"][0]["display"] == "Engineering"
    other = create_app({"TESTING": True, "DATABASE_URL": app.config["DATABASE_URL"]})
    bind_to_connection(other, engine, connection)
    elsewhere = Scim(other.test_client(), scim.token, scim.org_id)
    elsewhere.patch_ops(
        f"/scim/v2/Groups/{people['group']['id']}",
        {"op": "replace", "path": "displayName", "value": "Platform"},
    )
    assert page_as_get(scim)[member["id"]]["groups"][0]["display"] == "Platform"


def test_a_sign_in_shows_on_the_next_page(
    app: Flask, client: FlaskClient, scim: Scim, people: dict[str, Any]
) -> None:
    """A sign-in after the first moves only the user's last login: no version, no audit
    event. The product view shows it on the next page all the same."""
    user_id = make_person(app, scim, "alice@example.com")
    give_password(app, scim.org_id, user_id)
    assert sign_in(client, "alice@example.com").headers["Location"] == "/after"
    page_as_get(scim)
    before = page_as_get(scim)[user_id][PRODUCT]["lastLogin"]
    assert sign_in(app.test_client(), "alice@example.com").headers["Location"] == "/after"
    assert page_as_get(scim)[user_id][PRODUCT]["lastLogin"] > before


def test_a_role_given_by_other_rules_shows_while_rules_apply_runs(
    app: Flask, scim: Scim, admin: Scim, people: dict[str, Any]
) -> None:
    """``rules apply`` whose only change for a user is which rules give a role it holds
    (``user_roles.rule``, shown in the role's ``sources``): after each of the job's steps the
    list page shows what GET by id shows (the batch's step is a change of the user, with its
    event, so a page kept from before it is not served)."""
    from scim_server.db import db
    from scim_server.worker import Worker

    member = people["users"][0]["id"]

    def sources(resource: dict[str, Any]) -> list[tuple[str, list[str]]]:
        return [(r["value"], r["sources"]) for r in resource[PRODUCT].get("roles", [])]

    page_as_get(scim)
    assert sources(page_as_get(scim)[member]) == [("Engineer", ["rule:engineering"])]
    # The same license by the same rule; the role now from two rules.
    platform = {"name": "platform", "when": {"member_of": "Engineering"}}
    platform["then"] = {"roles": ["Engineer"]}
    activate(admin, {"mode": "all-match", "rules": [*RULES["rules"], platform]})
    job = ok(admin.post("/api/v1/rulesets/apply", None), 202)
    seen: list[tuple[Any, Any]] = []

    def after_step(done: int, total: int | None) -> None:
        listed = {r["id"]: r for r in scim.get(PAGE).get_json()["Resources"]}
        by_id = scim.get(f"/scim/v2/Users/{member}").get_json()
        seen.append((sources(listed[member]), sources(by_id)))

    assert Worker(db.writer(app)).run_job(job["id"], on_progress=after_step)
    assert ok(admin.get(f"/api/v1/jobs/{job['id']}"))["state"] == "succeeded"
    assert seen[-1][1] == [("Engineer", ["rule:engineering, platform"])]
    assert [listed for listed, _ in seen] == [by_id for _, by_id in seen]


def test_a_page_read_again_unchanged_reads_no_extras(
    app: Flask, scim: Scim, people: dict[str, Any]
) -> None:
    """With nothing changed in the organization since (its audit head where it was), a page
    of kept users reads the head instead of their groups, roles and licenses, and is the
    same bytes; after any change in the organization the next page reads them again."""
    kept(app).clear()
    first = scim.get(PAGE).get_data()
    with statements(app) as seen:
        again = scim.get(PAGE).get_data()
    assert again == first
    assert not any("group_members" in sql or "user_roles" in sql for sql in seen), seen
    assert sum("audit_heads" in sql for sql in seen) == 1
    scim.create_user("newcomer@example.com")
    with statements(app) as seen:
        after = scim.get(PAGE)
    assert any("group_members" in sql for sql in seen)
    assert len(after.get_json()["Resources"]) == 7
    with statements(app) as seen:
        assert scim.get(PAGE).get_data() == after.get_data()
    assert not any("group_members" in sql for sql in seen), seen


def test_a_deep_page_reads_the_audit_head_with_its_rows(
    app: Flask, scim: Scim, people: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deep page read from an anchor (``paging._guessed_page``) reads the organization's
    audit head in its own statement: its kept users need no other statement, and a group
    renamed since shows."""
    monkeypatch.setattr(paging, "DEFERRED_JOIN_OFFSET", 1)
    monkeypatch.setattr(paging, "ANCHOR_STEP", 4)
    monkeypatch.setattr(paging, "REBUILD_EVERY_S", 3600.0)
    app.extensions[ANCHORS_EXTENSION].clear()
    url = "/scim/v2/Users?startIndex=2&count=3"
    member = people["users"][1]["id"]
    page_as_get(scim, url)  # anchors built, users kept
    first = page_as_get(scim, url)
    with statements(app) as seen:
        assert scim.get(url).get_json()["Resources"] == list(first.values())
    assert len(seen) == 2, seen  # the token, then the page with its count and head
    assert "audit_heads" in seen[1] and "resource_counts" in seen[1] and "FROM users" in seen[1]
    scim.patch_ops(
        f"/scim/v2/Groups/{people['group']['id']}",
        {"op": "replace", "path": "displayName", "value": "Platform"},
    )
    assert page_as_get(scim, url)[member]["groups"][0]["display"] == "Platform"


def test_a_page_of_kept_users_reads_no_stored_document(
    app: Flask, scim: Scim, people: dict[str, Any]
) -> None:
    """Once a page found its users kept, the next is not read whole again: the page's
    statement leaves their documents out, and a user whose row moved on is read again,
    alone, with its document. After a page of users not kept (the first, a scan) the next
    page is read whole, in one statement."""
    kept(app).clear()
    with statements(app) as seen:
        first = page_as_get(scim)  # nothing kept: read whole; then every GET by id
    assert sum("users.data" in sql for sql in seen) == 1 + len(first)
    with statements(app) as seen:
        assert scim.get(PAGE).status_code == 200  # after a cold page: whole, found kept
    assert sum("users.data" in sql for sql in seen) == 1
    with statements(app) as seen:
        assert scim.get(PAGE).status_code == 200
    assert seen and not any("users.data" in sql for sql in seen)
    user = people["users"][2]
    scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Moved"}
    )
    with statements(app) as seen:
        again = page_as_get(scim)
    assert sum("users.data" in sql for sql in seen) == 1 + len(again)  # the page's one + GETs
    assert again[user["id"]]["title"] == "Moved"
    assert {k: v for k, v in again.items() if k != user["id"]} == {
        k: v for k, v in first.items() if k != user["id"]
    }


@pytest.mark.parametrize(("url", "left"), [(PAGE, 5), ("/scim/v2/Users?startIndex=2&count=2", 1)])
def test_a_user_deleted_while_its_page_is_read_is_left_out(
    app: Flask,
    scim: Scim,
    people: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    left: int,
) -> None:
    """A user not kept is read again with its document after the page's statement: deleted
    in between, it is left out of the page, as if the page had been read after (a page of
    two then holds one kept user)."""
    page_as_get(scim)
    assert scim.get(url).status_code == 200  # found kept: the next is read without documents
    user = people["users"][2]
    scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Moved"}
    )
    read_again = paging.with_stored

    def deleted_meanwhile(conn: Connection, org_id: str, rows: Any, ids: set[str]) -> Any:
        assert ids == {user["id"]}
        conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": user["id"]})
        return read_again(conn, org_id, rows, ids)

    monkeypatch.setattr(paging, "with_stored", deleted_meanwhile)
    resp = scim.get(url)
    assert resp.status_code == 200
    ids = [r["id"] for r in resp.get_json()["Resources"]]
    assert user["id"] not in ids and len(ids) == left
    for resource in resp.get_json()["Resources"]:
        got = scim.get(f"/scim/v2/Users/{resource['id']}")
        assert jsonfast.dumps_bytes(resource) == got.get_data()


def test_each_service_root_has_its_own_rendering(
    app: Flask, scim: Scim, people: dict[str, Any]
) -> None:
    """``meta.location`` and the manager's ``$ref`` follow the URL the page was asked at."""
    page_as_get(scim)
    there = page_as_get(scim, Host="scim.example.org")
    managed = there[people["users"][4]["id"]]
    assert managed["meta"]["location"].startswith("http://scim.example.org/scim/v2/Users/")
    assert managed[ENTERPRISE]["manager"]["$ref"].startswith("http://scim.example.org/")
    here = page_as_get(scim)
    assert here[people["users"][4]["id"]]["meta"]["location"].startswith("http://localhost/")


def test_the_memory_bound_holds(app: Flask, scim: Scim, people: dict[str, Any]) -> None:
    """Beyond ``SCIM_PAGE_CACHE_MB`` the least recently used are dropped; with 0 nothing is
    kept; the pages are the same either way."""
    full = scim.get(PAGE).get_data()
    one_user = kept(app).size // len(kept(app))
    kept(app).clear()
    kept(app).max_bytes = 2 * one_user + one_user // 2
    assert scim.get(PAGE).get_data() == full
    assert len(kept(app)) == 2 and kept(app).size <= kept(app).max_bytes
    kept(app).clear()
    kept(app).max_bytes = 0
    assert scim.get(PAGE).get_data() == full
    assert len(kept(app)) == 0


def test_the_bound_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, app: Flask) -> None:
    monkeypatch.setenv("SCIM_PAGE_CACHE_MB", "3")
    other = create_app({"TESTING": True, "DATABASE_URL": app.config["DATABASE_URL"]})
    assert kept(other).max_bytes == 3 * 1024 * 1024


def test_a_document_holding_a_key_the_server_places_is_rendered_whole(
    app: Flask, scim: Scim, session: Any
) -> None:
    """A stored document with ``groups`` or ``meta`` of its own (written by another tool;
    SCIM never stores them) cannot be cut around them: such a user is rendered whole on
    every page, as GET renders it, and not kept."""
    from scim_server.models import User

    odd = scim.create_user("odd@example.com")
    scim.create_user("plain@example.com")
    row = session.get(User, (scim.org_id, odd["id"]))
    assert row is not None
    row.data = {**row.data, "groups": [{"value": "x"}], "meta": {"note": "kept"}}
    session.commit()
    kept(app).clear()
    for _ in range(2):
        page_as_get(scim)
    assert len(kept(app)) == 1


def test_a_scan_beyond_the_bound_keeps_only_some_of_its_pages(app: Flask, scim: Scim) -> None:
    """Near the bound, a page that finds none of its users kept is taken for part of a scan:
    only every fourth such page is cut and kept, the others are rendered whole; every page
    is the same either way."""
    from scim_server.scim.user_fragments import COLD_ADMIT_EVERY

    ids = [scim.create_user(f"s{i:02d}@example.com")["id"] for i in range(16)]
    starts = range(1, 17, 2)
    full = {s: scim.get(f"/scim/v2/Users?startIndex={s}&count=2").get_data() for s in starts}
    assert len(kept(app)) == 16  # with room, every page is kept
    one_user = kept(app).size // 16
    kept(app).clear()
    kept(app).max_bytes = 4 * one_user + one_user // 4  # two pages' worth
    for s in starts:
        assert scim.get(f"/scim/v2/Users?startIndex={s}&count=2").get_data() == full[s]
    # Pages 1 and 2 while there was room, then page 6 (the fourth cold page), which pushed
    # out page 1, the least recently used.
    assert COLD_ADMIT_EVERY == 4
    held = [i for i, user_id in enumerate(ids) if (scim.org_id, user_id) in kept(app)]
    assert held == [2, 3, 10, 11]
