"""Each condition type, matched against one identity, with the reason it gives."""

from __future__ import annotations

import pytest

from mappings import ExternalIdentity, GroupRef
from mappings.conditions import MAX_MATCHED_LENGTH, Condition, nested_quantifier

from .samples import rule, rules

IDENTITY = ExternalIdentity(
    source="scim",
    subject="ext-1",
    attributes={
        "email": ["bjensen@example.com", "babs@home.example"],
        "department": "Tour Operations",
        "title": "Senior Engineer",
        "active": "true",
        "employeeNumber": "701984",
        "saml:http://schemas.microsoft.com/ws/2008/06/identity/claims/role": "Approver",
        "scim:urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter": "4130",
        "oidc:address.locality": "Hollywood",
    },
    groups=(GroupRef("Engineering", None, "g1"), GroupRef(None, "6f3a-object-id", "g2")),
)


def when(condition: dict) -> Condition:
    return rules(rule("r", condition, license="Engineer")).rules[0].when


@pytest.mark.parametrize(
    ("condition", "matched", "because"),
    [
        # equals: case-insensitive, any value of a multi-valued attribute
        (
            {"attribute": "department", "equals": "tour operations"},
            True,
            'department is "Tour Operations"',
        ),
        (
            {"attribute": "email", "equals": "BABS@home.example"},
            True,
            'email is "babs@home.example"',
        ),
        (
            {"attribute": "department", "equals": "Sales"},
            False,
            'department is "Tour Operations", not "Sales"',
        ),
        (
            {"attribute": "email", "equals": "x@y"},
            False,
            'email is "bjensen@example.com", "babs@home.example", not "x@y"',
        ),
        ({"attribute": "division", "equals": "Parks"}, False, "division is absent"),
        ({"attribute": "active", "equals": True}, True, 'active is "true"'),
        ({"attribute": "employeeNumber", "equals": 701984}, True, 'employeeNumber is "701984"'),
        (
            {"attribute": "DEPARTMENT", "equals": "Tour Operations"},
            True,
            'department is "Tour Operations"',
        ),
        # contains
        (
            {"attribute": "email", "contains": "@HOME."},
            True,
            'email "babs@home.example" contains "@HOME."',
        ),
        (
            {"attribute": "title", "contains": "manager"},
            False,
            'title "Senior Engineer" does not contain "manager"',
        ),
        ({"attribute": "manager", "contains": "x"}, False, "manager is absent"),
        # matches: full match, case-insensitive
        (
            {"attribute": "title", "matches": "senior .*"},
            True,
            'title "Senior Engineer" matches "senior .*"',
        ),
        (
            {"attribute": "title", "matches": "Senior"},
            False,
            'title "Senior Engineer" does not match "Senior"',
        ),
        (
            {"attribute": "email", "matches": r"[^@]+@example\.com"},
            True,
            'email "bjensen@example.com" matches "[^@]+@example\\\\.com"',
        ),
        ({"attribute": "costCenter", "matches": ".*"}, False, "costCenter is absent"),
        # present
        ({"attribute": "title", "present": True}, True, "title is present"),
        ({"attribute": "title", "present": False}, False, "title is present"),
        ({"attribute": "manager", "present": False}, True, "manager is absent"),
        ({"attribute": "manager", "present": True}, False, "manager is absent"),
        # prefixed raw attributes
        (
            {
                "attribute": "saml:http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
                "equals": "approver",
            },
            True,
            'saml:http://schemas.microsoft.com/ws/2008/06/identity/claims/role is "Approver"',
        ),
        (
            {
                "attribute": "scim:urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
                "equals": "4130",
            },
            True,
            'scim:urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter is "4130"',
        ),
        (
            {"attribute": "OIDC:address.locality", "equals": "hollywood"},
            True,
            'oidc:address.locality is "Hollywood"',
        ),
        # member_of: display name or external id, case-insensitive
        ({"member_of": "engineering"}, True, 'member of "engineering"'),
        ({"member_of": "6F3A-OBJECT-ID"}, True, 'member of "6F3A-OBJECT-ID"'),
        ({"member_of": "g1"}, False, 'not a member of "g1"'),
        ({"member_of": "Sales"}, False, 'not a member of "Sales"'),
        # combinators
        (
            {"all": [{"member_of": "Engineering"}, {"attribute": "title", "contains": "engineer"}]},
            True,
            'member of "Engineering" and title "Senior Engineer" contains "engineer"',
        ),
        (
            {"all": [{"member_of": "Sales"}, {"attribute": "title", "contains": "engineer"}]},
            False,
            'not a member of "Sales"',
        ),
        (
            {
                "any": [
                    {"member_of": "Sales"},
                    {"attribute": "department", "equals": "Tour Operations"},
                ]
            },
            True,
            'department is "Tour Operations"',
        ),
        (
            {"any": [{"member_of": "Sales"}, {"attribute": "division", "present": True}]},
            False,
            'not a member of "Sales" and division is absent',
        ),
        ({"not": {"member_of": "Contractors"}}, True, 'not a member of "Contractors"'),
        ({"not": {"member_of": "Engineering"}}, False, 'member of "Engineering"'),
        ({"not": {"not": {"member_of": "Engineering"}}}, True, 'member of "Engineering"'),
        ({"always": True}, True, "always applies"),
    ],
)
def test_condition_table(condition, matched, because):
    """Each condition gives the expected verdict and a reason naming the deciding values."""
    assert when(condition).evaluate(IDENTITY) == (matched, because)


def test_long_values_are_cut_in_reasons():
    """A long value is shortened in the reason, and more than three values are counted."""
    identity = ExternalIdentity(
        "oidc", None, {"title": "x" * 200, "email": ["a", "b", "c", "d", "e"]}
    )
    matched, because = when({"attribute": "title", "equals": "y"}).evaluate(identity)
    assert not matched and len(because) < 100 and "…" in because
    _, because = when({"attribute": "email", "equals": "z"}).evaluate(identity)
    assert because == 'email is "a", "b", "c" (+2 more), not "z"'


def test_long_reasons_are_cut():
    """A reason built from many conditions stays within a bounded length."""
    many = [{"attribute": "title", "present": True}] * 100
    matched, because = when({"all": many}).evaluate(IDENTITY)
    assert matched and len(because) <= 400 and because.endswith("…")


def test_regex_skips_overlong_values():
    """A value longer than the regex limit never matches, which bounds matching time."""
    identity = ExternalIdentity("oidc", None, {"title": "a" * (MAX_MATCHED_LENGTH + 1)})
    assert when({"attribute": "title", "matches": "a*"}).evaluate(identity)[0] is False
    identity = ExternalIdentity("oidc", None, {"title": "a" * MAX_MATCHED_LENGTH})
    assert when({"attribute": "title", "matches": "a*"}).evaluate(identity)[0] is True


@pytest.mark.parametrize(
    ("pattern", "risky"),
    [
        ("(a+)+", True),
        ("(a*)*b", True),
        (r"(\w+\s?)*", True),
        (r"\w+(\.\w+)*@example\.com", True),
        ("(?:a|b+)*", True),
        ("(a+){2}", True),
        (r"\w+(\.\w++)*@example\.com", False),
        ("(?>a+)+", False),
        ("(ab)*", False),
        (r"(\d{3}-)*", False),
        (".*@example\\.com", False),
        ("(a+)?", False),
        ("[a-z]+", False),
    ],
)
def test_nested_quantifier_detection(pattern, risky):
    """Repeated groups holding variable repeats are flagged; possessive and atomic forms pass."""
    assert nested_quantifier(pattern) is risky


def test_base_condition_is_abstract():
    """The base class only defines the interface: it cannot be instantiated."""
    with pytest.raises(TypeError, match="abstract"):
        Condition()  # type: ignore[abstract]


def test_the_groups_the_rules_name_at_any_depth():
    """``RuleSet.names_group``: a ``member_of`` anywhere in a condition (inside all, any,
    not), compared as ``MemberOf`` compares (case-insensitively); None handles are skipped."""
    found = rules(
        rule("a", {"attribute": "department", "equals": "Sales"}, license="Engineer"),
        rule(
            "b",
            {"all": [{"always": True}, {"any": [{"not": {"member_of": "Alumni"}}]}]},
            license="Engineer",
        ),
        rule("c", {"member_of": "grp-Engineering"}, license="Engineer"),
    )
    assert found.names_group(None, "alumni") and found.names_group("GRP-ENGINEERING")
    assert not found.names_group("Sales", None, "Engineering")
    assert not rules(rule("d", {"always": True}, license="Engineer")).names_group("Alumni")
