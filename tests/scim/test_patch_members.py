"""Group member operations of a PATCH (RFC 7644 §3.5.2) as ``GroupPatch`` turns them into
``MemberChange`` values, before any database work: pure, no request."""

from __future__ import annotations

import re
from typing import Any

import pytest

from scim_server.errors import DomainError, InvalidSyntaxError, InvalidValueError
from scim_server.scim.patch import GroupPatch
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import GROUP
from scim_server.services.members import MemberChange

STORED = {"displayName": "Team"}
ID = "2819c223-7f76-453a-919d-413861904646"


def changes(*ops: dict[str, Any]) -> tuple[MemberChange, ...]:
    return GroupPatch("g1", list(ops), 1000).apply(dict(STORED)).members


@pytest.mark.parametrize(
    ("path", "must_match"),
    [
        pytest.param('members[display co "nobody"]', True, id="co"),
        pytest.param('members[value eq "x" or type eq "User"]', True, id="or"),
        pytest.param('members[not (value eq "x")]', True, id="not"),
        pytest.param("members[display pr]", True, id="pr"),
        pytest.param('members[value eq "x"]', False, id="eq-entra"),
        pytest.param('members[value eq "x" and type eq "User"]', False, id="all-eq"),
    ],
)
@pytest.mark.parametrize("op", ["replace", "add"])
def test_a_change_through_a_member_filter_must_match_unless_all_eq(
    op: str, path: str, must_match: bool
) -> None:
    """RFC 7644 §3.5.2.3: a replace (or add) through a filter is noTarget when nothing matches
    (``must_match``), but for README's exception: an all-`eq` filter describes the member."""
    found = changes({"op": op, "path": path, "value": [{"value": ID}]})
    assert [c.kind for c in found] == ["remove_where", "add"]
    assert found[0].must_match is must_match
    assert found[1].values == ({"value": ID},)


def test_a_remove_through_a_member_filter_need_not_match() -> None:
    """README: removing members that are not members is a no-op (Okta's retries)."""
    (found,) = changes({"op": "remove", "path": 'members[display co "nobody"]'})
    assert (found.kind, found.must_match) == ("remove_where", False)


@pytest.mark.parametrize(
    "member",
    [
        pytest.param({"value": ID, "type": ["Group"]}, id="type-not-a-string"),
        pytest.param({"value": ID, "$ref": 5}, id="ref-not-a-string"),
        pytest.param({"value": ID, "bogus": 1}, id="unknown-sub-attribute"),
        pytest.param({"value": ID, "display": 42}, id="display-not-a-string"),
        pytest.param({"value": 7}, id="value-not-a-string"),
        pytest.param({"display": "Ann"}, id="no-value"),
        pytest.param(5, id="not-an-object"),
        pytest.param({"value": "a\x00b"}, id="nul"),
    ],
)
@pytest.mark.parametrize("op", ["add", "replace", "remove"])
def test_member_values_are_checked_as_post_checks_them(op: str, member: Any) -> None:
    """Each member object of a PATCH is refused with the error a POST's ``members`` gets."""
    with pytest.raises(DomainError) as post:
        parse_resource(
            GROUP,
            {"schemas": [GROUP.core], "displayName": "X", "members": [member]},
            creating=True,
        )
    assert isinstance(post.value, InvalidValueError | InvalidSyntaxError)
    with pytest.raises(type(post.value), match=f"^{re.escape(str(post.value))}$"):
        changes({"op": op, "path": "members", "value": [member]})


@pytest.mark.parametrize("op", ["add", "remove"])
def test_a_null_member_is_refused(op: str) -> None:
    """A null in a PATCH's member list names no member: refused (a POST leaves it out)."""
    with pytest.raises(InvalidValueError, match="needs a string 'value'"):
        changes({"op": op, "path": "members", "value": [ID, None]})


def test_member_values_keep_value_type_and_display() -> None:
    """A bare id and an object with sub-attribute names in any case (RFC 7643 §2.1) give
    references of value, type and display ($ref is the server's to write)."""
    (found,) = changes(
        {
            "op": "add",
            "path": "members",
            "value": [
                ID,
                {"VALUE": ID.upper(), "Type": "User", "display": "Ann", "$ref": "/Users/x"},
            ],
        }
    )
    assert found.values == (
        {"value": ID},
        {"value": ID.upper(), "type": "User", "display": "Ann"},
    )
