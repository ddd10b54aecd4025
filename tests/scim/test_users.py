"""Users: create, read, replace, delete, uniqueness, versions (RFC 7644 §3.3-§3.6, §3.14)."""

from __future__ import annotations

from sqlalchemy import delete, select

from scim_server.models import (
    AttributeValue,
    Event,
    Group,
    GroupMember,
    ResourceCount,
    User,
    UserPassword,
)
from tests.support import ENTERPRISE, PATCH_OP, USER_SCHEMA, assert_error

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

# RFC 7643 §8.2: the full user representation, trimmed of read-only parts.
RFC_7643_8_2_FULL_USER = {
    "schemas": [USER_SCHEMA, ENTERPRISE],
    "externalId": "701984",
    "userName": "bjensen@example.com",
    "name": {
        "formatted": "Ms. Barbara J Jensen, III",
        "familyName": "Jensen",
        "givenName": "Barbara",
        "middleName": "Jane",
        "honorificPrefix": "Ms.",
        "honorificSuffix": "III",
    },
    "displayName": "Babs Jensen",
    "nickName": "Babs",
    "profileUrl": "https://login.example.com/bjensen",
    "emails": [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ],
    "addresses": [
        {
            "type": "work",
            "streetAddress": "100 Universal City Plaza",
            "locality": "Hollywood",
            "region": "CA",
            "postalCode": "91608",
            "country": "USA",
            "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
            "primary": True,
        }
    ],
    "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
    "userType": "Employee",
    "title": "Tour Guide",
    "preferredLanguage": "en-US",
    "locale": "en-US",
    "timezone": "America/Los_Angeles",
    "active": True,
    # RFC 7643 §8.2 sends "t1meMa$heen", which the default password policy refuses
    # (too short, a variation of a common phrase): a strong one stands in for it.
    "password": "Lantern-oyster-grammar-81",
    ENTERPRISE: {
        "employeeNumber": "701984",
        "costCenter": "4130",
        "organization": "Universal Studios",
        "division": "Theme Park",
        "department": "Tour Operations",
        "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"},
    },
}


def test_create_full_user_returns_201_with_server_attributes(scim):
    """POST of the RFC 7643 §8.2 user answers 201 with id, meta, Location and ETag, no password."""
    resp = scim.post("/scim/v2/Users", RFC_7643_8_2_FULL_USER)
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["id"]
    assert "password" not in body
    assert body["userName"] == "bjensen@example.com"
    assert body["name"]["givenName"] == "Barbara"
    assert body[ENTERPRISE]["manager"]["value"] == "26118915-6090-4610-87e4-49d8ca9f808d"
    assert body["schemas"] == [
        USER_SCHEMA,
        ENTERPRISE,
        "urn:scim-server:schemas:extension:product:1.0:User",
    ]
    meta = body["meta"]
    assert meta["resourceType"] == "User"
    assert meta["location"].endswith(f"/scim/v2/Users/{body['id']}")
    assert resp.headers["Location"] == meta["location"]
    assert resp.headers["ETag"] == meta["version"] == 'W/"1"'
    assert meta["created"] == meta["lastModified"]


def test_password_is_stored_hashed_and_never_returned(scim, session):
    """The password is kept only as a hash and absent from every response."""
    created = scim.post("/scim/v2/Users", RFC_7643_8_2_FULL_USER).get_json()
    got = scim.get(f"/scim/v2/Users/{created['id']}?attributes=password").get_json()
    assert "password" not in got
    listed = scim.get("/scim/v2/Users").get_json()["Resources"][0]
    assert "password" not in listed
    user = session.scalar(select(User).where(User.id == created["id"]))
    stored = session.get(UserPassword, (user.org_id, user.id))
    assert stored.hash.startswith("$argon2id$") and not stored.temporary
    assert "Lantern" not in stored.hash and "password" not in user.data


def test_get_round_trips_what_was_created(scim):
    """GET returns the attributes given at creation."""
    created = scim.post("/scim/v2/Users", RFC_7643_8_2_FULL_USER).get_json()
    resp = scim.get(f"/scim/v2/Users/{created['id']}")
    assert resp.status_code == 200
    assert resp.get_json() == created


def test_read_only_attributes_in_a_create_are_ignored(scim):
    """RFC 7643 §2.2: id, meta and groups sent by a client are ignored, not errors."""
    body = {
        "schemas": [USER_SCHEMA],
        "userName": "okta@example.com",
        "id": "client-chosen",
        "groups": [],
        "meta": {"resourceType": "User"},
    }
    resp = scim.post("/scim/v2/Users", body)
    assert resp.status_code == 201
    assert resp.get_json()["id"] != "client-chosen"
    assert "groups" not in resp.get_json()


def test_username_is_unique_case_insensitively(scim):
    """A second user whose userName differs only in case gets 409 uniqueness."""
    scim.create_user("Alice@Example.com")
    resp = scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "alice@EXAMPLE.com"})
    assert_error(resp, 409, "uniqueness")
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 1


def test_username_uniqueness_ignores_unicode_normalisation(scim):
    """A composed and a decomposed 'é' are the same userName."""
    scim.create_user("ren\u00e9@example.com")
    resp = scim.post(
        "/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "rene\u0301@example.com"}
    )
    assert_error(resp, 409, "uniqueness")


def test_same_username_in_two_organizations_is_allowed(scim, other_scim):
    """Uniqueness is per organization."""
    scim.create_user("same@example.com")
    other_scim.create_user("same@example.com")


def test_other_organization_gets_404_for_a_user_id(scim, other_scim):
    """A user id of another organization is a 404 for read, replace, patch and delete."""
    user = scim.create_user("private@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    assert_error(other_scim.get(url), 404)
    assert_error(other_scim.put(url, {"schemas": [USER_SCHEMA], "userName": "x"}), 404)
    assert_error(
        other_scim.patch_ops(url, {"op": "replace", "path": "active", "value": False}), 404
    )
    assert_error(other_scim.delete(url), 404)
    assert scim.get(url).get_json()["active"] is True


def test_unknown_id_is_404(scim):
    """GET of an id that does not exist is a SCIM 404."""
    assert_error(scim.get("/scim/v2/Users/does-not-exist"), 404)


def test_put_replaces_the_resource(scim):
    """PUT replaces all attributes: those not sent are cleared (RFC 7644 §3.5.1)."""
    user = scim.create_user("put@example.com", title="Engineer", nickName="P")
    resp = scim.put(
        f"/scim/v2/Users/{user['id']}",
        {"schemas": [USER_SCHEMA], "userName": "put@example.com", "title": "Manager"},
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["title"] == "Manager"
    assert "nickName" not in body
    assert body["meta"]["version"] == 'W/"2"'
    assert body["meta"]["created"] == user["meta"]["created"]
    assert resp.headers["ETag"] == 'W/"2"'


def test_put_to_a_taken_username_is_409(scim):
    """Renaming onto another user's userName is a uniqueness conflict that changes nothing."""
    scim.create_user("one@example.com")
    two = scim.create_user("two@example.com")
    resp = scim.put(
        f"/scim/v2/Users/{two['id']}", {"schemas": [USER_SCHEMA], "userName": "ONE@example.com"}
    )
    assert_error(resp, 409, "uniqueness")
    assert scim.get(f"/scim/v2/Users/{two['id']}").get_json()["userName"] == "two@example.com"


def test_a_unique_violation_in_the_rows_update_is_409_uniqueness(scim, admin, monkeypatch):
    """When the userName check passes and another user holds the name by the time the row
    is written (a concurrent rename: the check skipped here), the UPDATE's unique
    violation, raised by the driver under the write path's fixed statement, is still
    SQLAlchemy's IntegrityError: 409 uniqueness, nothing written, no event."""
    from scim_server.services import users as user_service

    scim.create_user("held@example.com")
    two = scim.create_user("mover@example.com")
    events = len(admin.get(f"/api/v1/audit/timeline/{two['id']}").get_json()["events"])
    monkeypatch.setattr(user_service, "_check_unique", lambda *args, **kwargs: None)
    op = {"op": "replace", "path": "userName", "value": "HELD@example.com"}
    resp = scim.patch(f"/scim/v2/Users/{two['id']}", {"schemas": [PATCH_OP], "Operations": [op]})
    assert_error(resp, 409, "uniqueness")
    got = scim.get(f"/scim/v2/Users/{two['id']}").get_json()
    assert got["userName"] == "mover@example.com" and got["meta"]["version"] == 'W/"1"'
    timeline = admin.get(f"/api/v1/audit/timeline/{two['id']}").get_json()["events"]
    assert [e for e in timeline if e["outcome"] == "success"] == [
        e for e in timeline[:events] if e["outcome"] == "success"
    ]


def test_delete_removes_user_and_its_index_rows(scim, session):
    """DELETE answers 204; the user is gone, GET is 404, and its search rows are removed."""
    user = scim.create_user(
        "gone@example.com", emails=[{"value": "gone@example.com", "type": "work"}]
    )
    resp = scim.delete(f"/scim/v2/Users/{user['id']}")
    assert resp.status_code == 204
    assert resp.get_data() == b""
    assert_error(scim.get(f"/scim/v2/Users/{user['id']}"), 404)
    assert_error(scim.delete(f"/scim/v2/Users/{user['id']}"), 404)
    rows = session.scalars(select(AttributeValue).where(AttributeValue.resource_id == user["id"]))
    assert list(rows) == []


def test_delete_of_a_member_leaves_its_groups_counted_and_logged(scim, admin, session):
    """DELETE of a user in two groups (on PostgreSQL one statement does the deletions and
    the count): the memberships go and each group's version moves, the index rows and the
    row go, the User count drops by one, the audit event names the groups left, the product
    event is there, and the chain verifies."""
    user = scim.create_user("member@example.com", title="Engineer")
    kept = scim.create_user("kept@example.com")
    one = scim.create_group("One", [user["id"], kept["id"]])
    two = scim.create_group("Two", [user["id"]])
    total = session.get(ResourceCount, (scim.org_id, "User")).total
    assert scim.delete(f"/scim/v2/Users/{user['id']}").status_code == 204
    session.expire_all()
    assert session.get(User, (scim.org_id, user["id"])) is None
    rows = session.scalars(select(AttributeValue).where(AttributeValue.resource_id == user["id"]))
    assert list(rows) == []
    members = session.scalars(
        select(GroupMember.member_id).where(GroupMember.org_id == scim.org_id)
    )
    assert sorted(members) == [kept["id"]]
    for group in (one, two):
        stored = session.get(Group, (scim.org_id, group["id"]))
        assert stored.version == group_version(group) + 1
    assert session.get(ResourceCount, (scim.org_id, "User")).total == total - 1
    (event,) = [
        e
        for e in admin.get("/api/v1/audit", query_string={"limit": 100}).get_json()["events"]
        if e["action"] == "user.delete"
    ]
    assert event["changes"] == {"groups": {"before": sorted([one["id"], two["id"]])}}
    deleted = session.scalars(
        select(Event.type)
        .where(Event.org_id == scim.org_id, Event.resource_id == user["id"])
        .order_by(Event.position)
    ).all()
    assert deleted[-1] == "user.deleted"
    assert admin.get("/api/v1/audit/verify").get_json()["ok"] is True


def group_version(group: dict) -> int:
    return int(group["meta"]["version"].strip('W/"'))


def test_delete_without_a_count_row_counts_what_remains(scim, session):
    """An organization with no User count row (one made before counts): a DELETE starts it
    from the users that remain."""
    for name in ("a@example.com", "b@example.com"):
        scim.create_user(name)
    gone = scim.create_user("gone@example.com")
    session.execute(delete(ResourceCount).where(ResourceCount.org_id == scim.org_id))
    session.commit()
    assert scim.delete(f"/scim/v2/Users/{gone['id']}").status_code == 204
    session.expire_all()
    assert session.get(ResourceCount, (scim.org_id, "User")).total == 2


def test_if_match_stale_version_is_412_and_changes_nothing(scim):
    """RFC 7644 §3.14: If-Match with an old version gives 412; the current one succeeds."""
    user = scim.create_user("etag@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    body = {"schemas": [USER_SCHEMA], "userName": "etag@example.com", "title": "A"}
    assert scim.put(url, body, headers={"If-Match": 'W/"1"'}).status_code == 200
    stale = scim.put(url, {**body, "title": "B"}, headers={"If-Match": 'W/"1"'})
    assert_error(stale, 412)
    assert scim.get(url).get_json()["title"] == "A"
    assert_error(scim.delete(url, headers={"If-Match": 'W/"1"'}), 412)
    assert scim.delete(url, headers={"If-Match": 'W/"2"'}).status_code == 204


def test_if_none_match_current_version_is_304(scim):
    """A GET with If-None-Match of the current version answers 304 Not Modified."""
    user = scim.create_user("cache@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    resp = scim.get(url, headers={"If-None-Match": 'W/"1"'})
    assert resp.status_code == 304
    assert resp.headers["ETag"] == 'W/"1"'
    assert scim.get(url, headers={"If-None-Match": 'W/"9"'}).status_code == 200


def test_attributes_parameter_on_create_shapes_the_response(scim):
    """attributes= on POST returns only what was asked for, plus id and schemas."""
    resp = scim.post(
        "/scim/v2/Users?attributes=userName",
        {"schemas": [USER_SCHEMA], "userName": "shape@example.com", "title": "T"},
    )
    assert resp.status_code == 201
    assert set(resp.get_json()) == {"schemas", "id", "userName"}


def test_enterprise_extension_round_trip(scim):
    """The enterprise extension is stored, returned and listed in schemas."""
    user = scim.create_user(
        "ent@example.com",
        schemas=[USER_SCHEMA, ENTERPRISE],
        **{ENTERPRISE: {"department": "R&D", "manager": {"value": "m-1"}}},
    )
    got = scim.get(f"/scim/v2/Users/{user['id']}").get_json()
    assert ENTERPRISE in got["schemas"]
    assert got[ENTERPRISE]["department"] == "R&D"
    assert got[ENTERPRISE]["manager"]["value"] == "m-1"
    assert got[ENTERPRISE]["manager"]["$ref"].endswith("/Users/m-1")


def test_deletes_in_one_bulk_request_keep_the_chain(scim, admin):
    """Deletions and a creation in one Bulk request (on SQLite a deletion reads the head
    with its user, unless its transaction holds it already): one event each, numbered
    without a gap, and the chain verifies."""
    first, second = scim.create_user("one@example.com"), scim.create_user("two@example.com")
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "DELETE", "path": f"/Users/{first['id']}", "bulkId": "d1"},
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "p1",
                "data": {"schemas": [USER_SCHEMA], "userName": "three@example.com"},
            },
            {"method": "DELETE", "path": f"/Users/{second['id']}", "bulkId": "d2"},
        ],
    }
    resp = scim.post("/scim/v2/Bulk", body)
    assert resp.status_code == 200, resp.get_json()
    assert [op["status"] for op in resp.get_json()["Operations"]] == ["204", "201", "204"]
    logged = admin.get("/api/v1/audit", query_string={"limit": 100}).get_json()["events"]
    seqs = sorted(e["seq"] for e in logged)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert [e["action"] for e in sorted(logged, key=lambda e: e["seq"])][-3:] == [
        "user.delete",
        "user.create",
        "user.delete",
    ]
    assert admin.get("/api/v1/audit/verify").get_json()["ok"] is True


def test_rfc_7644_3_10_attributes_naming_the_core_schema_returns_its_attributes(scim):
    """RFC 7644 §3.10: a schema URN in attributes= names all of that schema's attributes; the
    core URN gives the core attributes (and id, schemas), not the extensions."""
    user = scim.create_user(
        "alice@example.com", title="Engineer", **{ENTERPRISE: {"department": "R&D"}}
    )
    url = f"/scim/v2/Users/{user['id']}"
    core = scim.get(f"{url}?attributes={USER_SCHEMA}").get_json()
    assert core["userName"] == "alice@example.com"
    assert core["title"] == "Engineer"
    assert core["active"] is True
    assert core["meta"]["resourceType"] == "User"
    assert ENTERPRISE not in core
    assert core["schemas"] == [USER_SCHEMA]
    both = scim.get(f"{url}?attributes={USER_SCHEMA},{ENTERPRISE}").get_json()
    assert both["title"] == "Engineer"
    assert both[ENTERPRISE] == {"department": "R&D"}
    listed = scim.get("/scim/v2/Users", query_string={"attributes": USER_SCHEMA}).get_json()
    assert listed["Resources"][0]["title"] == "Engineer"
    assert ENTERPRISE not in listed["Resources"][0]


def test_rfc_7644_3_10_excluded_attributes_naming_the_core_schema(scim):
    """excludedAttributes= the core URN leaves the attributes returned always (id, schemas)
    and the extensions."""
    user = scim.create_user(
        "alice@example.com", title="Engineer", **{ENTERPRISE: {"department": "R&D"}}
    )
    url = f"/scim/v2/Users/{user['id']}"
    got = scim.get(f"{url}?excludedAttributes={USER_SCHEMA}").get_json()
    assert got["id"] == user["id"]
    assert "userName" not in got
    assert "title" not in got
    assert got[ENTERPRISE] == {"department": "R&D"}


def test_rfc_7643_4_1_1_blank_username_is_refused(scim):
    """RFC 7643 §4.1.1: "Each User MUST include a non-empty userName value": "" and a
    userName of only blanks or a tab are refused (400 invalidValue) on POST, PUT and PATCH,
    and change nothing."""
    for blank in ("", "   ", "\t", " \u00a0 "):
        resp = scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": blank})
        assert_error(resp, 400, "invalidValue")
    user = scim.create_user("alice@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    for blank in ("   ", "\t"):
        resp = scim.put(url, {"schemas": [USER_SCHEMA], "userName": blank})
        assert_error(resp, 400, "invalidValue")
        op = {"op": "replace", "path": "userName", "value": blank}
        assert_error(
            scim.patch(url, {"schemas": [PATCH_OP], "Operations": [op]}), 400, "invalidValue"
        )
    after = scim.get(url)
    assert after.get_json()["userName"] == "alice@example.com"
    assert after.headers["ETag"] == 'W/"1"'
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 1


def test_a_user_stored_with_a_blank_username_can_still_be_deactivated(scim, session):
    """Releases before the blank check stored such userNames: the IdP's PATCH of ``active``
    (the leaver path) and of other attributes goes through, the unchanged name is not judged
    again ("the change is checked, not the past"); renaming it to a blank is still refused."""
    created = scim.create_user("blank@example.com")
    user = session.get(User, (scim.org_id, created["id"]))
    user.user_name = "   "
    user.data = {**user.data, "userName": "   "}
    session.commit()
    url = f"/scim/v2/Users/{created['id']}"
    ops = [{"op": "replace", "path": "active", "value": False}]
    resp = scim.patch(url, {"schemas": [PATCH_OP], "Operations": ops})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["active"] is False
    ops = [{"op": "replace", "value": {"title": "Gone", "active": False}}]
    assert scim.patch(url, {"schemas": [PATCH_OP], "Operations": ops}).status_code == 200
    session.expire_all()
    assert session.get(User, (scim.org_id, created["id"])).status == "DEACTIVATED"
    ops = [{"op": "replace", "path": "userName", "value": "\t"}]
    assert_error(scim.patch(url, {"schemas": [PATCH_OP], "Operations": ops}), 400, "invalidValue")
    ops = [{"op": "replace", "path": "userName", "value": "named@example.com"}]
    assert scim.patch(url, {"schemas": [PATCH_OP], "Operations": ops}).status_code == 200


def test_a_username_with_spaces_around_it_is_kept(scim):
    """Only a userName of nothing but blanks is refused; one with a space in it is a name."""
    resp = scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": " a b "})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["userName"] == " a b "


def test_empty_manager_is_unassigned(scim):
    """A manager sent as "" or {"value": ""} (IdPs clear a reference so) is no manager: not
    stored, not returned, and `manager pr` does not match, on POST and PUT."""
    for manager in ("", {"value": ""}):
        user = scim.create_user(
            f"u{len(str(manager))}@example.com", **{ENTERPRISE: {"manager": manager}}
        )
        assert "manager" not in user.get(ENTERPRISE, {})
        body = {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": user["userName"],
            ENTERPRISE: {"department": "R&D", "manager": manager},
        }
        put = scim.put(f"/scim/v2/Users/{user['id']}", body)
        assert put.status_code == 200, put.get_json()
        assert put.get_json()[ENTERPRISE] == {"department": "R&D"}
    flt = f"{ENTERPRISE}:manager pr"
    assert scim.get("/scim/v2/Users", query_string={"filter": flt}).get_json()["totalResults"] == 0
