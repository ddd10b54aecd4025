"""Conditional requests (RFC 7232, RFC 7644 §3.14): If-None-Match on reads, If-Match on writes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import GROUP_SCHEMA, USER_SCHEMA, Scim


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


def _user_write(scim: Scim, method: str, url: str, headers: dict[str, str]) -> Any:
    body = {"schemas": [USER_SCHEMA], "userName": "alice@example.com"}
    if method == "put":
        return scim.put(url, body, headers=headers)
    if method == "patch":
        op = {"op": "replace", "path": "title", "value": "Manager"}
        return scim.patch_ops(url, op, headers=headers)
    return scim.delete(url, headers=headers)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize("header", ["*", 'W/"1"', '"1"', '"7", W/"1"'])
def test_rfc_7232_3_2_if_none_match_on_a_user_write_is_412(
    scim: Scim, method: str, header: str
) -> None:
    """RFC 7232 §3.2: on PUT, PATCH or DELETE, If-None-Match "*" or naming the current
    version (weak comparison) is false: 412, the user unchanged (title, version) and kept."""
    user = scim.create_user("alice@example.com", title="Engineer")
    url = f"/scim/v2/Users/{user['id']}"
    resp = _user_write(scim, method, url, {"If-None-Match": header})
    assert resp.status_code == 412, resp.get_json()
    assert resp.headers["Content-Type"].startswith("application/scim+json")
    after = scim.get(url)
    assert after.status_code == 200
    assert after.get_json()["title"] == "Engineer"
    assert after.headers["ETag"] == 'W/"1"'


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_if_none_match_of_another_version_lets_a_user_write_through(
    scim: Scim, method: str
) -> None:
    """If-None-Match naming another version holds: the write is done."""
    user = scim.create_user("alice@example.com", title="Engineer")
    url = f"/scim/v2/Users/{user['id']}"
    resp = _user_write(scim, method, url, {"If-None-Match": 'W/"9", "W/1"'})
    assert resp.status_code in (200, 204), resp.get_json()
    after = scim.get(url)
    if method == "delete":
        assert after.status_code == 404
    else:
        assert after.headers["ETag"] == 'W/"2"'


def test_a_write_needs_both_if_match_and_if_none_match_to_hold(scim: Scim) -> None:
    """RFC 7232 §6: both conditions are evaluated: If-Match current and If-None-Match of
    another version, the write goes through; If-Match current but If-None-Match naming the
    current version, 412."""
    user = scim.create_user("alice@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    ok = {"If-Match": 'W/"1"', "If-None-Match": 'W/"2"'}
    assert _user_write(scim, "patch", url, ok).status_code == 200
    refused = {"If-Match": 'W/"2"', "If-None-Match": 'W/"2"'}
    assert _user_write(scim, "patch", url, refused).status_code == 412


def _group_write(scim: Scim, method: str, url: str, headers: dict[str, str]) -> Any:
    if method == "put":
        body = {"schemas": [GROUP_SCHEMA], "displayName": "Renamed"}
        return scim.put(url, body, headers=headers)
    if method == "patch":
        op = {"op": "replace", "path": "displayName", "value": "Renamed"}
        return scim.patch_ops(url, op, headers=headers)
    return scim.delete(url, headers=headers)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize("header", ["*", 'W/"1"', '"1"'])
def test_rfc_7232_3_2_if_none_match_on_a_group_write_is_412(
    scim: Scim, method: str, header: str
) -> None:
    """RFC 7232 §3.2 for groups: If-None-Match "*" or the current version on PUT, PATCH or
    DELETE is a 412 and the group keeps its name and version."""
    group = scim.create_group("Eng")
    url = f"/scim/v2/Groups/{group['id']}"
    resp = _group_write(scim, method, url, {"If-None-Match": header})
    assert resp.status_code == 412, resp.get_json()
    after = scim.get(url)
    assert after.status_code == 200
    assert after.get_json()["displayName"] == "Eng"
    assert after.headers["ETag"] == 'W/"1"'


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_if_none_match_of_another_version_lets_a_group_write_through(
    scim: Scim, method: str
) -> None:
    """If-None-Match naming another version holds for a group write too."""
    group = scim.create_group("Eng")
    url = f"/scim/v2/Groups/{group['id']}"
    resp = _group_write(scim, method, url, {"If-None-Match": 'W/"5"'})
    assert resp.status_code in (200, 204), resp.get_json()
    after = scim.get(url)
    if method == "delete":
        assert after.status_code == 404
    else:
        assert after.headers["ETag"] == 'W/"2"'


@pytest.mark.parametrize("kind", ["Users", "Groups"])
def test_a_get_with_a_stale_if_match_is_412(scim: Scim, kind: str) -> None:
    """RFC 7232 §3.1: a request whose If-Match is false is not performed, a GET included (it
    was answered 200); the current version or ``*`` serves it."""
    made = scim.create_user("someone") if kind == "Users" else scim.create_group("Some group")
    url = f"/scim/v2/{kind}/{made['id']}"
    assert scim.get(url, headers={"If-Match": 'W/"99"'}).status_code == 412
    assert scim.get(url, headers={"If-Match": made["meta"]["version"]}).status_code == 200
    assert scim.get(url, headers={"If-Match": "*"}).status_code == 200


def test_a_204_carries_no_content_type(scim: Scim) -> None:
    """A group PATCH answered 204 (RFC 7644 §3.5.2) and a DELETE said ``text/html``
    (werkzeug's default): a 204 has no body, so no Content-Type."""
    user = scim.create_user("nobody")
    group = scim.create_group("Team")
    patched = scim.patch_ops(
        f"/scim/v2/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
    )
    deleted = scim.delete(f"/scim/v2/Users/{user['id']}")
    for resp in (patched, deleted):
        assert resp.status_code == 204 and "Content-Type" not in resp.headers
    assert patched.headers["ETag"]
