"""Conditional requests (RFC 7232, RFC 7644 §3.14): If-None-Match on reads, If-Match on writes."""

from __future__ import annotations

import pytest

from tests.support import USER_SCHEMA, Scim


@pytest.mark.parametrize(
    "header",
    [
        pytest.param('"1"', id="strong-form"),
        pytest.param('W/"1"', id="weak-form"),
        pytest.param(' "7", W/"1" ', id="in-a-list"),
        pytest.param("*", id="any"),
    ],
)
def test_rfc_7232_3_2_if_none_match_compares_weakly(scim: Scim, header: str) -> None:
    """RFC 7232 §3.2: "A recipient MUST use the weak comparison function when comparing
    entity-tags for If-None-Match"; "1" and W/"1" match weakly (§2.3.2): a 304 with the ETag."""
    user = scim.create_user("alice@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    assert scim.get(url).headers["ETag"] == 'W/"1"'
    resp = scim.get(url, headers={"If-None-Match": header})
    assert resp.status_code == 304
    assert resp.headers["ETag"] == 'W/"1"'
    assert resp.get_data() == b""


@pytest.mark.parametrize("header", ['"2"', 'W/"2"', '"W/1"', "1"])
def test_if_none_match_of_another_version_gets_the_resource(scim: Scim, header: str) -> None:
    """Another version (or text that is not its entity-tag) is answered in full."""
    group = scim.create_group("Eng")
    resp = scim.get(f"/scim/v2/Groups/{group['id']}", headers={"If-None-Match": header})
    assert resp.status_code == 200
    assert resp.get_json()["id"] == group["id"]


def test_if_match_takes_either_form_of_the_current_version(scim: Scim) -> None:
    """If-Match accepts the version sent as W/"n" or "n" (the same tag-matching rule as
    If-None-Match); a stale one is a 412."""
    user = scim.create_user("alice@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    body = {"schemas": [USER_SCHEMA], "userName": "alice@example.com", "title": "A"}
    assert scim.put(url, body, headers={"If-Match": '"1"'}).status_code == 200
    assert scim.put(url, body, headers={"If-Match": 'W/"2"'}).status_code == 200
    assert scim.put(url, {**body, "title": "B"}, headers={"If-Match": '"1"'}).status_code == 412
