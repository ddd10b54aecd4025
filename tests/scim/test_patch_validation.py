"""PATCH validates only what it changed: the same document and errors as parsing all of it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scim_server.errors import DomainError
from scim_server.scim.patch import UserPatch, apply_patch, validated_change
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import USER
from tests.scim.test_patch import ENTERPRISE, FAILING, HOME, PATCH_CASES, WORK

STORED = parse_resource(
    USER,
    {
        "schemas": [USER.core],
        "userName": "bjensen",
        "displayName": "Babs Jensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [WORK, HOME],
        "active": True,
        ENTERPRISE: {"department": "Sales", "manager": {"value": "mgr-1"}},
    },
    creating=True,
)


def whole(patched: dict[str, Any]) -> Any:
    """What the whole document's parse gives: the document, or the error's type and text."""
    try:
        return parse_resource(USER, {"schemas": [USER.core], **patched}, creating=False)
    except DomainError as exc:
        return (type(exc), str(exc))


def partial(patched: dict[str, Any]) -> Any:
    try:
        return validated_change(USER, STORED, patched)
    except DomainError as exc:
        return (type(exc), str(exc))


def same(patched: dict[str, Any]) -> None:
    expected, got = whole(patched), partial(patched)
    assert got == expected
    if isinstance(expected, dict):
        assert list(got) == list(expected)  # the stored JSON's key order too


@pytest.mark.parametrize("ops", [p.values[0] for p in PATCH_CASES])
def test_cases_give_the_whole_parse(ops: list[dict[str, Any]]) -> None:
    """Each PATCH case of the HTTP table gives the document the whole parse gives."""
    same(apply_patch(USER, STORED, ops, resource_id="u1").doc)


@pytest.mark.parametrize("op", [p.values[0] for p in FAILING])
def test_failing_cases_fail_alike(op: dict[str, Any]) -> None:
    """A failing operation fails in the patch itself or, if it gets past, as the whole parse."""
    try:
        patched = apply_patch(USER, STORED, [op], resource_id="u1").doc
    except DomainError:
        return
    same(patched)


@pytest.mark.parametrize(
    "patched",
    [
        pytest.param({**STORED, "active": 1}, id="int-for-boolean"),
        pytest.param({**STORED, "emails": [{**WORK, "primary": 1}, HOME]}, id="int-primary"),
        pytest.param({**STORED, "emails": [WORK, {**HOME, "primary": True}]}, id="two-primaries"),
        pytest.param({k: v for k, v in STORED.items() if k != "userName"}, id="no-userName"),
        pytest.param({**STORED, "userName": ""}, id="empty-userName"),
        pytest.param({**STORED, "title": None, "nickName": []}, id="nulls-dropped"),
        pytest.param({**STORED, "id": "other", "meta": {}}, id="server-owned-keys"),
        pytest.param({**STORED, "groups": [{"value": "g1"}]}, id="read-only-dropped"),
        pytest.param({**STORED, "Title": "x"}, id="non-canonical-name"),
        pytest.param({**STORED, USER.core: {"title": "Boss"}}, id="core-urn-nested"),
        pytest.param({**STORED, ENTERPRISE: {"manager": "mgr-2"}}, id="bare-manager"),
        pytest.param({**STORED, ENTERPRISE: {"nope": 1}}, id="unknown-extension-attribute"),
        pytest.param({**STORED, "zzz": 1}, id="unknown-attribute"),
        pytest.param({**STORED, "active": "False"}, id="string-boolean"),
        pytest.param({**STORED, "displayName": 2**70}, id="big-integer"),
    ],
)
def test_values_the_operations_could_leave(patched: dict[str, Any]) -> None:
    """Values only the whole parse would normalise or refuse are checked the same way."""
    same(patched)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, width=16),
    st.text(max_size=4),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["value", "type"]), inner)
    ),
    max_leaves=6,
)
KEYS = st.sampled_from(
    ["userName", "displayName", "active", "title", "emails", "name", "nickName", ENTERPRISE]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=3), st.sets(KEYS, max_size=2))
def test_any_change_gives_the_whole_parse(changes: dict[str, Any], removed: set[str]) -> None:
    """Any values set or removed on a stored user: the same document or the same error."""
    patched = {k: v for k, v in {**STORED, **changes}.items() if k not in removed}
    same(patched)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param({**STORED, "displayName": None}, id="stored-null"),
        pytest.param({**STORED, "emails": [], "name": {}}, id="stored-empty"),
    ],
)
def test_stored_nulls_are_dropped_as_by_the_whole_parse(stored: dict[str, Any]) -> None:
    """A stored null or empty value (an account opened for a contact) is dropped as before."""
    ops = [{"op": "replace", "path": "active", "value": False}]
    patched = apply_patch(USER, stored, ops, resource_id="u1").doc
    expected = parse_resource(USER, {"schemas": [USER.core], **patched}, creating=False)
    got = UserPatch("u1", ops).apply(stored)
    assert got == expected
    assert list(got) == list(expected)
    assert got != {**stored, "active": False}  # the whole parse did drop something


def test_active_replace_checks_and_keeps_the_rest() -> None:
    """The leaver's PATCH: active false, every other attribute as stored."""
    new = UserPatch("u1", [{"op": "replace", "path": "active", "value": False}]).apply(STORED)
    assert new == {**STORED, "active": False}
    assert list(new) == list(STORED)
