"""Hostile and broken input: never a 500, never a change it should not make."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, assert_error

HYPOTHESIS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
user_keys = st.sampled_from(
    [
        "userName",
        "name",
        "emails",
        "active",
        "externalId",
        "displayName",
        "schemas",
        "groups",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "id",
        "meta",
        "roles",
    ]
)


@HYPOTHESIS
@given(body=st.dictionaries(user_keys, json_values, max_size=6))
def test_random_user_bodies_never_500(scim, body):
    """Any JSON body POSTed as a user gets 201 or a 4xx SCIM error, never a 500."""
    resp = scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], **body})
    assert resp.status_code in (201, 400, 409), resp.get_data(as_text=True)
    if resp.status_code != 201:
        assert resp.get_json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


@HYPOTHESIS
@given(
    ops=st.lists(
        st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "Replace", "remove", "bogus"])},
            optional={
                "path": st.text(max_size=40)
                | st.sampled_from(
                    [
                        'emails[type eq "work"].value',
                        "name.givenName",
                        "active",
                        "members",
                        'emails[value co "%"]',
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                    ]
                ),
                "value": json_values,
            },
        ),
        min_size=1,
        max_size=3,
    )
)
def test_random_patches_never_500_and_failures_change_nothing(scim, ops):
    """Random PATCH operations get 200 or a 4xx; a refused PATCH leaves the user unchanged."""
    user = scim.create_user(f"h{abs(hash(json.dumps(ops, sort_keys=True, default=str)))}@x.org")
    url = f"/scim/v2/Users/{user['id']}"
    resp = scim.patch_ops(url, *ops)
    assert resp.status_code in (200, 400, 409), resp.get_data(as_text=True)
    if resp.status_code != 200:
        assert scim.get(url).get_json() == user
    scim.delete(url)


@HYPOTHESIS
@given(text=st.text(max_size=80))
def test_random_filters_never_500(scim, text):
    """Any filter text gives 200 or 400 invalidFilter."""
    resp = scim.get("/scim/v2/Users", query_string={"filter": text})
    assert resp.status_code in (200, 400), resp.get_data(as_text=True)
    if resp.status_code == 400:
        assert resp.get_json()["scimType"] in ("invalidFilter", "invalidValue")


@pytest.mark.parametrize(
    "url",
    [
        "/scim/v2/Users/abc%00def",
        "/scim/v2/Users?filter=userName%20eq%20%22a%00b%22",
        "/scim/v2/Users?sortBy=user%00Name",
        "/scim/v2/Groups/%00",
    ],
)
def test_nul_bytes_in_urls_are_400(scim, url):
    """NUL in an id, filter or parameter is a clear 400 (PostgreSQL text cannot hold it)."""
    assert_error(scim.get(url), 400, "invalidValue")


def test_nul_bytes_anywhere_in_a_body_are_400(scim):
    """NUL in a key or a nested value is refused before anything is stored."""
    body = {"schemas": [USER_SCHEMA], "userName": "n@x", "name": {"givenName": "a\u0000b"}}
    assert_error(scim.post("/scim/v2/Users", body), 400, "invalidValue")
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "title", "value": "\u0000"}],
    }
    user = scim.create_user("ok@x")
    assert_error(scim.patch(f"/scim/v2/Users/{user['id']}", patch), 400, "invalidValue")


@pytest.mark.parametrize("value", ["100%", "a_b", "50%_off"])
def test_like_wildcards_in_values_are_literal(scim, value):
    """% and _ in co/sw/ew values match themselves only."""
    scim.create_user(f"{value}@example.com")
    scim.create_user("plain@example.com")
    scim.create_user("axb@example.com")
    for op in ("co", "sw"):
        found = scim.get("/scim/v2/Users", query_string={"filter": f'userName {op} "{value}"'})
        names = [r["userName"] for r in found.get_json()["Resources"]]
        assert names == [f"{value}@example.com"]


def test_huge_array_is_refused(scim):
    """An array with more values than allowed is a 400, not a slow insert."""
    emails = [{"value": f"{i}@x.org"} for i in range(5000)]
    resp = scim.post(
        "/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "arr@x", "emails": emails}
    )
    assert_error(resp, 400, "invalidValue")
    assert "more than 100 values" in resp.get_json()["detail"]


# A filter literal is a JSON string (RFC 7644 §3.4.2.2): its escapes decode to characters no
# column can hold, NUL (PostgreSQL text) or a lone UTF-16 surrogate (not UTF-8 at all).
UNSTORABLE_ESCAPES = [
    pytest.param("a\\u0000b", id="nul"),
    pytest.param("a\\ud800b", id="surrogate"),
]


@pytest.mark.parametrize("escaped", UNSTORABLE_ESCAPES)
@pytest.mark.parametrize(
    ("resource", "template"),
    [
        pytest.param("Users", 'userName eq "{}"', id="userName"),
        pytest.param("Users", 'emails[type eq "work"].value eq "{}"', id="email"),
        pytest.param("Users", 'externalId eq "{}"', id="externalId"),
        pytest.param("Groups", 'displayName eq "{}"', id="displayName"),
        pytest.param("Groups", 'members[value eq "{}"]', id="member"),
    ],
)
def test_unstorable_escapes_in_a_filter_are_400(scim, resource, template, escaped):
    """A filter whose literal escapes NUL or a lone surrogate is a 400, never a 500, whether it
    comes as a query parameter or in a SearchRequest."""
    text = template.format(escaped)
    resp = scim.get(f"/scim/v2/{resource}", query_string={"filter": text})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["scimType"] in ("invalidFilter", "invalidValue")
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": text}
    resp = scim.post(f"/scim/v2/{resource}/.search", search)
    assert resp.status_code == 400, resp.get_data(as_text=True)


@pytest.mark.parametrize("escaped", UNSTORABLE_ESCAPES)
@pytest.mark.parametrize(
    "template",
    [
        pytest.param('members[value eq "{}"]', id="value"),
        pytest.param('members[display eq "{}"]', id="display"),
    ],
)
def test_unstorable_escapes_in_a_member_path_are_400(scim, template, escaped):
    """Okta's members[value eq "..."] removal with such a literal is a 400 that changes nothing."""
    user = scim.create_user("member@x")
    group = scim.create_group("Escapes", [user["id"]])
    url = f"/scim/v2/Groups/{group['id']}"
    resp = scim.patch_ops(url, {"op": "remove", "path": template.format(escaped)})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert scim.get(url).get_json() == group


def lone(text: str) -> bytes:
    """``text`` with each ``<lone>`` written as the JSON escape of a lone surrogate."""
    return text.replace("<lone>", "\\ud800").encode()


def test_lone_surrogate_escapes_in_a_body_are_400(scim):
    """A JSON body whose string escapes a lone surrogate (valid JSON text, not storable UTF-8)
    is refused like a NUL: a 400 before anything is stored, never a 500."""
    headers = scim.headers({"Content-Type": "application/scim+json"})
    body = json.dumps({"schemas": [USER_SCHEMA], "userName": "x<lone>@example.com"})
    resp = scim.client.post("/scim/v2/Users", data=lone(body), headers=headers)
    assert_error(resp, 400)
    user = scim.create_user("lone@x")
    group = scim.create_group("Lone", [user["id"]])
    op = {"op": "add", "path": "members", "value": [{"value": "<lone>"}]}
    patch = json.dumps({"schemas": [PATCH_OP], "Operations": [op]})
    url = f"/scim/v2/Groups/{group['id']}"
    resp = scim.client.patch(url, data=lone(patch), headers=headers)
    assert_error(resp, 400)
    assert scim.get(url).get_json() == group


def test_storable_escapes_in_a_body_are_kept(scim):
    """A surrogate pair, or an escaped backslash before "u0000", is ordinary text: stored as sent."""
    headers = scim.headers({"Content-Type": "application/scim+json"})
    body = (
        rb'{"schemas": ["%s"], "userName": "\ud83d\ude00\\u0000\\uD800@x"}' % USER_SCHEMA.encode()
    )
    resp = scim.client.post("/scim/v2/Users", data=body, headers=headers)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["userName"] == "\U0001f600\\u0000\\uD800@x"


def test_a_write_asking_for_an_answer_it_cannot_draw_changes_nothing(scim):
    """``attributes`` with a value filter is refused (400); a write carrying it is refused
    before it changes anything (it used to commit, then fail drawing its answer)."""
    bad = {"attributes": 'members[value eq "x"]'}
    user = scim.create_user("kept@example.com")
    group = scim.create_group("Kept")
    user_url, group_url = f"/scim/v2/Users/{user['id']}", f"/scim/v2/Groups/{group['id']}"
    tags = {url: scim.get(url).headers["ETag"] for url in (user_url, group_url)}
    totals = {
        url: scim.get(url).get_json()["totalResults"]
        for url in ("/scim/v2/Users", "/scim/v2/Groups")
    }
    title = {"op": "replace", "path": "title", "value": "Changed"}
    member = {"op": "add", "path": "members", "value": [{"value": user["id"]}]}
    attempts = [
        scim.post(
            "/scim/v2/Users",
            {"schemas": [USER_SCHEMA], "userName": "new@example.com"},
            query_string=bad,
        ),
        scim.put(
            user_url,
            {"schemas": [USER_SCHEMA], "userName": "renamed@example.com"},
            query_string=bad,
        ),
        scim.patch_ops(user_url, title, query_string=bad),
        scim.post(
            "/scim/v2/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "New"}, query_string=bad
        ),
        scim.put(
            group_url, {"schemas": [GROUP_SCHEMA], "displayName": "Renamed"}, query_string=bad
        ),
        scim.patch_ops(group_url, member, query_string=bad),
    ]
    for resp in attempts:
        assert_error(resp, 400, "invalidValue")
    assert {url: scim.get(url).headers["ETag"] for url in (user_url, group_url)} == tags
    assert {
        url: scim.get(url).get_json()["totalResults"]
        for url in ("/scim/v2/Users", "/scim/v2/Groups")
    } == totals
