"""List pages deep into an organization: totals kept on write, anchors, deferred joins.

The thresholds are lowered so that a few dozen resources exercise every path
the server takes for a hundred thousand.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select

from scim_server import create_app
from scim_server.models import Group, ResourceCount, User
from scim_server.scim.listing import ANCHORS_EXTENSION
from scim_server.scim.schema import PRODUCT_SCHEMA
from scim_server.services import paging
from tests.support import Scim


@pytest.fixture(autouse=True)
def small_thresholds(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "DEFERRED_JOIN_OFFSET", 3)
    monkeypatch.setattr(paging, "ANCHOR_STEP", 4)
    monkeypatch.setattr(paging, "REBUILD_EVERY_S", 0.0)
    app.extensions[ANCHORS_EXTENSION].clear()


def stored_order(session: Any, model: Any, org_id: str) -> list[str]:
    session.expire_all()
    return list(
        session.scalars(
            select(model.id).where(model.org_id == org_id).order_by(model.created_at, model.id)
        )
    )


def listed(scim: Scim, kind: str, start: int, count: int) -> tuple[int, list[str]]:
    resp = scim.get(f"/scim/v2/{kind}?startIndex={start}&count={count}&attributes=id")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["startIndex"] == start
    return body["totalResults"], [r["id"] for r in body["Resources"]]


def assert_every_page(scim: Scim, session: Any, kind: str, model: Any, count: int) -> None:
    expected = stored_order(session, model, scim.org_id)
    for start in range(1, len(expected) + 3):
        total, ids = listed(scim, kind, start, count)
        assert total == len(expected)
        assert ids == expected[start - 1 : start - 1 + count], (start, count)


@pytest.mark.parametrize("count", [1, 3, 5])
def test_every_page_is_the_slice_of_the_stored_order(scim: Scim, session: Any, count: int) -> None:
    for i in range(23):
        scim.create_user(f"u{i:02d}@example.com")
    assert_every_page(scim, session, "Users", User, count)


def test_pages_follow_creates_and_deletes_at_once(scim: Scim, session: Any) -> None:
    """A cached set is never used after the set changed: every page stays exact."""
    rng = random.Random(5)
    ids = [scim.create_user(f"p{i:02d}@example.com")["id"] for i in range(18)]
    assert_every_page(scim, session, "Users", User, 4)
    for step in range(12):
        if ids and rng.random() < 0.5:
            victim = ids.pop(rng.randrange(len(ids)))
            assert scim.delete(f"/scim/v2/Users/{victim}").status_code == 204
        else:
            ids.append(scim.create_user(f"n{step:02d}@example.com")["id"])
        expected = stored_order(session, User, scim.org_id)
        start = rng.randrange(1, len(expected) + 1)
        total, page = listed(scim, "Users", start, 5)
        assert total == len(expected)
        assert page == expected[start - 1 : start + 4]


def test_a_changing_set_between_rebuilds_is_still_exact(
    scim: Scim, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While re-anchoring waits, deep pages take the plain path, not stale anchors."""
    monkeypatch.setattr(paging, "REBUILD_EVERY_S", 3600.0)
    for i in range(15):
        scim.create_user(f"r{i:02d}@example.com")
    assert_every_page(scim, session, "Users", User, 3)  # anchors built here
    first = stored_order(session, User, scim.org_id)[0]
    assert scim.delete(f"/scim/v2/Users/{first}").status_code == 204
    scim.create_user("late@example.com")
    assert_every_page(scim, session, "Users", User, 3)


def test_an_anchored_page_reads_its_count_in_the_same_statement(
    app: Flask, scim: Scim, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With anchors held, a deep page is one statement with its total (``_guessed_page``);
    anchors behind the set are caught by the generation read with the page, never used,
    and not guessed from again until rebuilt."""
    from sqlalchemy import event

    from scim_server.db import db

    monkeypatch.setattr(paging, "REBUILD_EVERY_S", 3600.0)
    for i in range(14):
        scim.create_user(f"c{i:02d}@example.com")
    listed(scim, "Users", 9, 3)  # anchors built
    seen: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = db.engine(app)
    event.listen(engine, "before_cursor_execute", spy)
    try:
        expected = stored_order(session, User, scim.org_id)
        assert listed(scim, "Users", 9, 3) == (14, expected[8:11])
        counted = [s for s in seen if "resource_counts" in s]
        assert len(counted) == 1 and "FROM users" in counted[0], counted
        scim.create_user("b00@example.com")  # sorts after the others
        scim.delete(f"/scim/v2/Users/{expected[0]}")
        expected = stored_order(session, User, scim.org_id)
        for _ in range(2):
            seen.clear()
            assert listed(scim, "Users", 9, 3) == (14, expected[8:11])
        # The guess was seen stale once; then no more guesses, only the count row.
        assert not any("FROM users" in s and "resource_counts" in s for s in seen), seen
    finally:
        event.remove(engine, "before_cursor_execute", spy)


def test_groups_page_and_count_the_same_way(scim: Scim, session: Any) -> None:
    groups = [scim.create_group(f"G{i:02d}")["id"] for i in range(11)]
    assert scim.delete(f"/scim/v2/Groups/{groups[4]}").status_code == 204
    assert_every_page(scim, session, "Groups", Group, 3)


def test_totals_are_kept_per_organization(scim: Scim, other_scim: Scim, session: Any) -> None:
    for i in range(4):
        scim.create_user(f"a{i}@example.com")
    victim = other_scim.create_user("b@example.com")["id"]
    other_scim.create_user("c@example.com")
    assert other_scim.delete(f"/scim/v2/Users/{victim}").status_code == 204
    assert listed(scim, "Users", 1, 0)[0] == 4
    assert listed(other_scim, "Users", 1, 0)[0] == 1
    session.expire_all()
    row = session.get(ResourceCount, (other_scim.org_id, "User"))
    assert (row.total, row.generation) == (1, 3)


def test_bulk_creates_and_deletes_keep_the_total(scim: Scim, session: Any) -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": f"b{i}",
                "data": {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": f"bulk{i}@example.com",
                },
            }
            for i in range(6)
        ]
        + [
            # A failing operation changes nothing, the total included.
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "dup",
                "data": {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "bulk0@example.com",
                },
            },
            {"method": "DELETE", "path": "/Users/bulkId:b2"},
        ],
    }
    resp = scim.post("/scim/v2/Bulk", body)
    assert resp.status_code == 200, resp.get_json()
    assert listed(scim, "Users", 1, 0)[0] == 5 == len(stored_order(session, User, scim.org_id))
    assert_every_page(scim, session, "Users", User, 2)


def test_a_missing_count_row_is_counted_and_restarted(scim: Scim, session: Any) -> None:
    """An organization without a count row (created by an older version) still lists right."""
    for i in range(9):
        scim.create_user(f"m{i}@example.com")
    assert_every_page(scim, session, "Users", User, 4)
    session.execute(delete(ResourceCount).where(ResourceCount.org_id == scim.org_id))
    session.commit()
    assert_every_page(scim, session, "Users", User, 4)
    scim.create_user("m9@example.com")
    session.expire_all()
    assert session.get(ResourceCount, (scim.org_id, "User")).total == 10
    assert_every_page(scim, session, "Users", User, 4)


def test_filtered_and_sorted_deep_pages_use_the_same_order(scim: Scim, session: Any) -> None:
    for i in range(12):
        scim.create_user(f"s{i:02d}@example.com", title="Engineer" if i % 2 else "Sales")
    resp = scim.get('/scim/v2/Users?filter=title eq "Engineer"&startIndex=4&count=2&attributes=id')
    engineers = [
        u
        for u in stored_order(session, User, scim.org_id)
        if session.get(User, (scim.org_id, u)).data.get("title") == "Engineer"
    ]
    assert resp.get_json()["totalResults"] == 6
    assert [r["id"] for r in resp.get_json()["Resources"]] == engineers[3:5]
    resp = scim.get("/scim/v2/Users?sortBy=userName&sortOrder=descending&startIndex=5&count=3")
    names = [r["userName"] for r in resp.get_json()["Resources"]]
    assert names == [f"s{i:02d}@example.com" for i in (7, 6, 5)]


def test_reads_on_the_real_database_see_every_commit(live) -> None:
    """GETs on a real pool (statement-level reads on PostgreSQL) see each write at once."""
    _app, scim = live
    ids = [scim.create_user(f"live{i}@example.com")["id"] for i in range(7)]
    assert (
        scim.patch_ops(
            f"/scim/v2/Users/{ids[2]}", {"op": "replace", "path": "title", "value": "Lead"}
        ).status_code
        == 200
    )
    got = scim.get(f"/scim/v2/Users/{ids[2]}")
    assert got.status_code == 200 and got.get_json()["title"] == "Lead"
    assert scim.delete(f"/scim/v2/Users/{ids[0]}").status_code == 204
    assert scim.get(f"/scim/v2/Users/{ids[0]}").status_code == 404
    total, page_ids = listed(scim, "Users", 4, 10)
    assert (total, page_ids) == (6, ids[4:])
    assert scim.get("/scim/v2/Users", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_anchors_belong_to_the_app_that_paged(app: Flask, scim: Scim, session: Any) -> None:
    """Deep pages anchor in their own app: a second app in the process shares no cache."""
    for i in range(12):
        scim.create_user(f"a{i:02d}@example.com")
    assert_every_page(scim, session, "Users", User, 3)
    other = create_app({"TESTING": True, "DATABASE_URL": app.config["DATABASE_URL"]})
    assert len(app.extensions[ANCHORS_EXTENSION]) == 1
    assert len(other.extensions[ANCHORS_EXTENSION]) == 0


def test_a_set_is_anchored_by_one_thread_at_a_time(
    app: Flask, scim: Scim, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one request anchors a set (reading all its keys), another asking for the same
    set takes the plain path instead of reading them too; both pages are exact."""
    for i in range(12):
        scim.create_user(f"t{i:02d}@example.com")
    cache = app.extensions[ANCHORS_EXTENSION]
    build = paging.AnchorCache._build
    meanwhile: list[Any] = []

    def building(conn: Any, model: Any, org_id: str, generation: int) -> Any:
        if not meanwhile:
            meanwhile.append(cache.find(conn, model, org_id, generation, 8))  # another request
        return build(conn, model, org_id, generation)

    monkeypatch.setattr(paging.AnchorCache, "_build", staticmethod(building))
    expected = stored_order(session, User, scim.org_id)
    assert listed(scim, "Users", 9, 3) == (12, expected[8:11])
    assert meanwhile == [None]
    assert listed(scim, "Users", 9, 3) == (12, expected[8:11])
    assert meanwhile == [None]


ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def test_every_page_renders_each_user_byte_for_byte_as_get(scim: Scim, admin: Scim) -> None:
    """First pages, anchored and deferred deep pages, filtered, sorted and projected ones
    render a user exactly as GET /Users/{id} does: its groups in display-name order, roles
    and their sources, a license and a shortage (the page's extras in one statement), the
    manager's $ref, externalId only when set."""
    from scim_server import jsonfast
    from tests.admin.rules import activate, catalogue
    from tests.support.admin_api import PRODUCT, apply_rules, person

    catalogue(admin, engineer_seats=1)
    activate(admin)
    engineers = scim.create_group("Engineering")
    alumni = scim.create_group("Alumni")
    people = [person(scim, f"p{i:02d}@example.com") for i in range(9)]
    boss = people[0]["id"]
    scim.create_user(
        "plain@example.com", externalId="x-1", **{ENTERPRISE: {"manager": {"value": boss}}}
    )
    for group, members in ((engineers, people[:4]), (alumni, people[2:6])):
        scim.patch_ops(
            f"/scim/v2/Groups/{group['id']}",
            {"op": "add", "path": "members", "value": [{"value": p["id"]} for p in members]},
        )
    apply_rules(admin)
    urls = [f"/scim/v2/Users?startIndex={s}&count=3" for s in range(1, 12)]
    urls += [
        '/scim/v2/Users?filter=userName sw "p"&startIndex=2&count=4',
        '/scim/v2/Users?filter=userName sw "p"&startIndex=5&count=4',
        "/scim/v2/Users?sortBy=userName&sortOrder=descending&startIndex=4&count=5",
    ]
    seen: set[str] = set()
    for projection in ("", "&excludedAttributes=groups"):
        for url in urls:
            resp = scim.get(url + projection)
            assert resp.status_code == 200, resp.get_json()
            for resource in resp.get_json()["Resources"]:
                got = scim.get(f"/scim/v2/Users/{resource['id']}?{projection.lstrip('&')}")
                assert jsonfast.dumps_bytes(resource) == got.get_data(), url
                seen.add(resource["id"])
    assert len(seen) == 10
    listed_people = scim.get("/scim/v2/Users?count=20").get_json()["Resources"]
    by_name = {r["userName"]: r for r in listed_people}
    assert [g["display"] for g in by_name["p02@example.com"]["groups"]] == ["Alumni", "Engineering"]
    assert "externalId" not in by_name["p01@example.com"]
    manager = by_name["plain@example.com"][ENTERPRISE]["manager"]
    assert manager["$ref"].endswith(f"/Users/{boss}")
    product = [r.get(PRODUCT, {}) for r in listed_people]
    assert any("license" in p for p in product) and any("licenseShortage" in p for p in product)
    assert any(p.get("roles") for p in product)


def test_a_page_orders_each_users_groups_and_roles_as_get(scim: Scim, session: Any) -> None:
    """A page's groups and roles read in one statement come, on SQLite, in no order
    (``paging._extras_statement``): each user's groups are put in display-name order and
    its roles in name then source order, as GET /Users/{id} gives them, whatever order
    they were stored in."""
    import uuid

    from scim_server import jsonfast
    from scim_server.models import Role, UserRole

    ids = [scim.create_user(f"o{i}@example.com")["id"] for i in range(3)]
    for name in ("Zulu", "Mike", "Alpha"):  # stored in reverse name order
        group = scim.create_group(name)
        scim.patch_ops(
            f"/scim/v2/Groups/{group['id']}",
            {"op": "add", "path": "members", "value": [{"value": i} for i in ids[:2]]},
        )
    roles = {}
    prefix = str(uuid.uuid4())[:-2]
    for n, name in enumerate(("Zeta", "beta", "Alpha")):
        roles[name] = f"{prefix}{n:02d}"  # ids in the reverse of the names' order
        session.add(
            Role(org_id=scim.org_id, id=roles[name], name=name, name_key=name.lower(), kind="task")
        )
    session.flush()
    for role, source, rule in (
        ("Zeta", "scim", None),
        ("Alpha", "scim", None),
        ("beta", "rule", "r2"),
        ("Alpha", "rule", "r1"),
        ("Alpha", "manual", None),
    ):
        for user_id in ids[1:]:
            session.add(
                UserRole(
                    org_id=scim.org_id,
                    user_id=user_id,
                    role_id=roles[role],
                    source=source,
                    rule=rule,
                )
            )
    session.commit()
    for url in ("/scim/v2/Users?count=3", "/scim/v2/Users?startIndex=2&count=2"):
        resp = scim.get(url)
        assert resp.status_code == 200, resp.get_json()
        for resource in resp.get_json()["Resources"]:
            got = scim.get(f"/scim/v2/Users/{resource['id']}")
            assert jsonfast.dumps_bytes(resource) == got.get_data(), url
    product = PRODUCT_SCHEMA
    by_id = {r["id"]: r for r in scim.get("/scim/v2/Users?count=3").get_json()["Resources"]}
    middle = by_id[ids[1]]
    assert [g["display"] for g in middle["groups"]] == ["Alpha", "Mike", "Zulu"]
    assert [(r["value"], r["sources"]) for r in middle[product]["roles"]] == [
        ("Alpha", ["manual", "rule:r1", "scim"]),
        ("beta", ["rule:r2"]),
        ("Zeta", ["scim"]),
    ]
    assert [g["display"] for g in by_id[ids[0]]["groups"]] == ["Alpha", "Mike", "Zulu"]
    assert "roles" not in by_id[ids[0]][product]
    assert "groups" not in by_id[ids[2]]


def test_pages_render_stored_values_as_get_does(scim: Scim, session: Any) -> None:
    """A page reads its users' rows apart from the ORM (``paging.plain_rows``): integers
    beyond 64 bits and long digit runs in the stored document, times with and without
    microseconds, a time stored in another text form, a last login and a false ``active``
    come out of a page exactly as out of GET /Users/{id}."""
    from datetime import UTC, datetime

    from sqlalchemy import text, update

    from scim_server import jsonfast

    ids = [scim.create_user(f"t{i}@example.com")["id"] for i in range(6)]
    scim.create_user("off@example.com", active=False, externalId="12345678901234567890123")
    session.expire_all()
    big = session.get(User, (scim.org_id, ids[0]))
    assert big is not None
    big.data = {**big.data, "nickName": "n" + "7" * 25, "x-big": 2**70 + 1, "x-float": 1.5}
    session.execute(
        update(User)
        .where(User.org_id == scim.org_id, User.id.in_(ids[1:3]))
        .values(
            created_at=datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
            last_login_at=datetime(2021, 6, 7, 8, 9, 10, tzinfo=UTC),
        )
    )
    session.execute(
        update(User)
        .where(User.org_id == scim.org_id, User.id == ids[3])
        .values(last_login_at=datetime(2022, 1, 1, 0, 0, 0, 123456, tzinfo=UTC))
    )
    # Another writer's text form, without microseconds (SQLite keeps what it is given).
    session.execute(
        text("UPDATE users SET updated_at = '2023-04-05 06:07:08' WHERE id = :id"),
        {"id": ids[4]},
    )
    session.commit()
    seen: set[str] = set()
    for url in (
        "/scim/v2/Users?count=20",
        "/scim/v2/Users?startIndex=4&count=3",  # anchored (ANCHOR_STEP is 4 here)
        '/scim/v2/Users?filter=userName sw "t"&startIndex=2&count=5',
        "/scim/v2/Users?sortBy=userName&startIndex=2&count=6",
    ):
        resp = scim.get(url)
        assert resp.status_code == 200, resp.get_json()
        for resource in resp.get_json()["Resources"]:
            got = scim.get(f"/scim/v2/Users/{resource['id']}")
            assert jsonfast.dumps_bytes(resource) == got.get_data(), url
            seen.add(resource["id"])
    assert len(seen) == 7
    page = scim.get("/scim/v2/Users?count=20").get_data()
    assert b'"x-big":1180591620717411303425,' in page
    assert b'"lastLogin":"2021-06-07T08:09:10Z"' in page
    assert b'"lastLogin":"2022-01-01T00:00:00.123456Z"' in page
    assert b'"created":"2020-01-02T03:04:05Z"' in page
    assert b'"lastModified":"2023-04-05T06:07:08Z"' in page
    assert b'"active":false' in page
