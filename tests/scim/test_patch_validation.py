"""PATCH validates only what it changed: the same document and errors as parsing all of it."""

from __future__ import annotations

import copy
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


NO_PATH = [
    [{"op": "replace", "value": {"name.givenName": "Babs", f"{ENTERPRISE}:department": "Ops"}}],
    [{"op": "add", "value": {"emails": [{"value": "b@third.example", "type": "other"}]}}],
    [{"op": "replace", "path": ENTERPRISE, "value": {"department": "Ops"}}],
    [{"op": "add", "path": 'emails[type eq "home"].primary', "value": True}],
    [{"op": "remove", "path": "emails.type"}, {"op": "remove", "path": "name.familyName"}],
]


@pytest.mark.parametrize(
    "ops", [p.values[0] for p in PATCH_CASES] + [[p.values[0]] for p in FAILING] + NO_PATH
)
def test_the_stored_document_is_left_as_it_was(ops: list[dict[str, Any]]) -> None:
    """``apply_patch`` copies only what its operations address (``_Patcher.own``): an
    operation that changes a value in place (a sub-attribute, a filtered element, an
    extension's attribute) changes the copy, never the document it was given, whether
    the patch succeeds or fails; what no operation addressed is given back as it is."""
    stored = copy.deepcopy(STORED)
    try:
        patched = apply_patch(USER, stored, ops, resource_id="u1").doc
    except DomainError:
        assert stored == STORED
        return
    assert stored == STORED
    for key, value in patched.items():
        if key in stored and value is stored[key]:
            assert not any(key in str(op.get("path", "")) for op in ops)
        elif key in stored and isinstance(value, dict | list):
            assert not _shares(value, stored[key]), key


def _shares(a: Any, b: Any) -> bool:
    """Whether two JSON values share a container (a dict or list object of both)."""
    mine: set[int] = set()

    def walk(value: Any, seen: set[int], other: set[int] | None) -> bool:
        if isinstance(value, dict | list):
            if other is not None and id(value) in other:
                return True
            seen.add(id(value))
            items = value.values() if isinstance(value, dict) else value
            return any(walk(item, seen, other) for item in items)
        return False

    walk(b, mine, None)
    return walk(a, set(), mine)


def test_an_active_patch_copies_nothing_else() -> None:
    """The leaver's PATCH leaves every other value the stored one (no copy, no JSON written
    to compare them)."""
    ops = [{"op": "replace", "path": "active", "value": False}]
    new = UserPatch("u1", ops).apply(STORED)
    assert all(new[key] is STORED[key] for key in STORED if key != "active")
    assert new["active"] is False and STORED["active"] is True
