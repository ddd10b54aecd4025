"""Hostile and broken input: never a 500, never a change it should not make."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import PATCH_OP, USER_SCHEMA, assert_error

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
