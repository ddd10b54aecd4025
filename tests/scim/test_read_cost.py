"""The reads IdPs make most (issue 17): the statements each costs, and the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from sqlalchemy import event

from scim_server.db import db


@contextmanager
def statements(app) -> Iterator[list[str]]:
    """The SELECTs the app sends meanwhile (not the test transaction's savepoints)."""
    seen: list[str] = []
    bind = db.reader(app).kw["bind"]

    def note(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(" ".join(statement.split()))

    event.listen(bind, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(bind, "before_cursor_execute", note)


def _lookup(scim, text: str, **params: object):
    query = "".join(f"&{k}={v}" for k, v in params.items())
    resp = scim.get(f"/scim/v2/Users?filter={quote(text)}{query}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_a_username_lookup_that_finds_one_user_is_not_counted(app, scim):
    """userName eq of an existing user: the token, the page, the user's extras; no count(*)."""
    for i in range(5):
        scim.create_user(f"look{i}@example.com")
    with statements(app) as seen:
        body = _lookup(scim, 'userName eq "look3@example.com"')
    assert body["totalResults"] == 1 and body["Resources"][0]["userName"] == "look3@example.com"
    assert not any("count(" in s.lower() for s in seen), seen
    assert len(seen) == 3, seen  # token, page, groups + roles + licenses in one


def test_a_username_lookup_that_finds_nobody_is_one_statement(app, scim):
    """The initial sync's lookup before each POST: the token and one empty page."""
    scim.create_user("someone@example.com")
    with statements(app) as seen:
        body = _lookup(scim, 'userName eq "nobody@example.com"')
    assert body["totalResults"] == 0 and body["Resources"] == []
    assert len(seen) == 2 and not any("count(" in s.lower() for s in seen), seen


def test_a_full_page_is_still_counted(app, scim):
    """A page as long as count may have more after it: totalResults is counted."""
    for i in range(5):
        scim.create_user(f"full{i}@example.com")
    with statements(app) as seen:
        body = _lookup(scim, 'userName sw "full"', count=2)
    assert body["totalResults"] == 5 and body["itemsPerPage"] == 2
    assert any("count(" in s.lower() for s in seen), seen


def test_short_and_empty_pages_after_the_first_give_the_same_totals(scim):
    """Pages past the first: a short one ends at the total; one past the end counts."""
    for i in range(5):
        scim.create_user(f"page{i}@example.com")
    short = _lookup(scim, 'userName sw "page"', startIndex=4, count=10)
    assert short["totalResults"] == 5 and short["itemsPerPage"] == 2
    beyond = _lookup(scim, 'userName sw "page"', startIndex=9, count=10)
    assert beyond["totalResults"] == 5 and beyond["Resources"] == []
    only_count = _lookup(scim, 'userName sw "page"', count=0)
    assert only_count["totalResults"] == 5 and only_count["Resources"] == []


def test_a_lookup_renders_the_user_as_get_does(scim):
    """The one user a lookup finds is the representation GET returns (groups, product view)."""
    user = scim.create_user("member@example.com", emails=[{"type": "work", "value": "m@x.org"}])
    scim.create_group("Readers", members=[user["id"]])
    got = scim.get(f"/scim/v2/Users/{user['id']}").get_json()
    for text in ('userName eq "member@example.com"', 'emails[type eq "work"].value eq "m@x.org"'):
        found = _lookup(scim, text)["Resources"]
        assert found == [got]
        assert found[0]["groups"][0]["display"] == "Readers"


def test_get_by_id_reads_the_user_and_its_extras_in_one_statement(app, scim, admin):
    """GET /Users/{id}: the token, then one statement for the row, groups, roles and licenses;
    the representation is the one a lookup renders (which reads them apart)."""
    from tests.admin.rules import activate, catalogue
    from tests.support.admin_api import PRODUCT, apply_rules, person

    catalogue(admin, engineer_seats=1)
    activate(admin)
    engineers = scim.create_group("Engineering")
    ann = person(scim, "ann@example.com")
    cy = person(scim, "cy@example.com")
    scim.create_group("Alumni", members=[ann["id"]])
    for user in (ann, cy):
        scim.patch_ops(
            f"/scim/v2/Groups/{engineers['id']}",
            {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
        )
    apply_rules(admin)
    for user in (ann, cy):
        with statements(app) as seen:
            got = scim.get(f"/scim/v2/Users/{user['id']}").get_json()
        assert len(seen) == 2, seen
        found = _lookup(scim, f'userName eq "{user["userName"]}"')["Resources"]
        assert found == [got]
    ann_got = scim.get(f"/scim/v2/Users/{ann['id']}").get_json()
    assert [g["display"] for g in ann_got["groups"]] == ["Alumni", "Engineering"]
    assert ann_got[PRODUCT]["license"] == {
        "value": "Engineer",
        "source": "rule",
        "rule": "engineering",
    }
    assert [r["value"] for r in ann_got[PRODUCT]["roles"]] == ["Engineer"]
    cy_got = scim.get(f"/scim/v2/Users/{cy['id']}").get_json()
    assert cy_got[PRODUCT]["licenseShortage"] == {"value": "Engineer"}


def test_get_by_id_of_a_missing_user_is_404(scim):
    """No row for the id: 404, whatever else the statement reads."""
    resp = scim.get("/scim/v2/Users/00000000-0000-0000-0000-000000000000")
    assert resp.status_code == 404
