"""Validating rule-set documents: every problem, located by path, all reported at once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings import Problem, RuleSet, RuleSetError, validate
from mappings.rules import MAX_DEPTH, MAX_RULES

from .samples import LICENSES, ROLES

ENTERPRISE_COST_CENTER = (
    "scim:urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"
)
VOCAB = "userName, email, givenName, familyName, displayName, title, department, employeeNumber, organization, division, costCenter, userType, externalId, locale, active, manager"
KINDS = "attribute, member_of, all, any, not, always"
TESTS = "equals, contains, matches, present"
PLACEHOLDERS = "{userName}, {email}, {given}, {family}, {externalId}"
CONTACT = "givenName, familyName, email, phone, title, department, organization"


def problems(document) -> list[tuple[str, str]]:
    with pytest.raises(RuleSetError) as caught:
        validate(document, licenses=LICENSES, roles=ROLES)
    return [(p.path, p.message) for p in caught.value.problems]


def one_rule(**fields) -> dict:
    """A document with one rule; ``fields`` replace the rule's (None removes one)."""
    rule = {"name": "r", "when": {"always": True}, "then": {"license": "Engineer"}, **fields}
    return {"rules": [{k: v for k, v in rule.items() if v is not None}]}


def when(condition) -> dict:
    return one_rule(when=condition)


def then(**effects) -> dict:
    return one_rule(then=effects)


def nested_nots(count: int) -> dict:
    condition: dict = {"member_of": "A"}
    for _ in range(count):
        condition = {"not": condition}
    return condition


INVALID = [
    # the document
    ([], [("$", "must be an object with mode, defaults and rules")]),
    ({"mode": "any-match"}, [("mode", "must be one of first-match, all-match")]),
    ({"mode": 1}, [("mode", "must be one of first-match, all-match")]),
    ({"modes": "first-match"}, [("modes", 'unknown key; did you mean "mode"?')]),
    ({"odd key": 1}, [('$["odd key"]', "unknown key (allowed: defaults, mode, rules)")]),
    ({"rules": {}}, [("rules", "must be a list of rules")]),
    (
        {
            "rules": [
                {"name": f"r{i}", "when": {"always": True}, "then": {}}
                for i in range(MAX_RULES + 1)
            ]
        },
        [("rules", f"must hold at most {MAX_RULES} rules")],
    ),
    # defaults
    ({"defaults": []}, [("defaults", "must be an object with license, roles, username or status")]),
    (
        {"defaults": {"license": "Enginer"}},
        [("defaults.license", 'unknown license "Enginer"; did you mean "Engineer"?')],
    ),
    (
        {"defaults": {"license": "Gold"}},
        [
            (
                "defaults.license",
                'unknown license "Gold" (this organization has Engineer, Manager, Planner)',
            )
        ],
    ),
    ({"defaults": {"license": None}}, [("defaults.license", "must be a non-empty string")]),
    ({"defaults": {"roles": "Engineer"}}, [("defaults.roles", "must be a list of role names")]),
    (
        {"defaults": {"roles": ["Engineer", "Admin", 3]}},
        [
            (
                "defaults.roles[1]",
                'unknown role "Admin" (this organization has Approver, Auditor, Engineer, Portal user)',
            ),
            ("defaults.roles[2]", "must be a non-empty string"),
        ],
    ),
    (
        {"defaults": {"contact": {}}},
        [("defaults.contact", "unknown key (allowed: license, roles, status, username)")],
    ),
    (
        {"defaults": {"status": "LOCKED_BY_ADMIN"}},
        [("defaults.status", "must be one of PROVISIONED, ACTIVE, DEACTIVATED")],
    ),
    (
        {"defaults": {"username": "{login}"}},
        [("defaults.username", f"template has unknown placeholder {{login}}; use {PLACEHOLDERS}")],
    ),
    # a rule's shape
    ({"rules": ["r"]}, [("rules[0]", "must be an object with name, when and then")]),
    (
        {"rules": [{}]},
        [
            ("rules[0].name", "is required"),
            ("rules[0].when", "is required"),
            ("rules[0].then", "is required"),
        ],
    ),
    (one_rule(name=""), [("rules[0].name", "must be a non-empty string")]),
    (one_rule(name="x" * 201), [("rules[0].name", "must be at most 200 characters")]),
    (one_rule(name="Defaults"), [("rules[0].name", '"defaults" is reserved for the defaults')]),
    (one_rule(priority="high"), [("rules[0].priority", "must be an integer (higher wins)")]),
    (one_rule(priority=True), [("rules[0].priority", "must be an integer (higher wins)")]),
    (
        one_rule(priority=10**10),
        [("rules[0].priority", "must be between -1000000000 and 1000000000")],
    ),
    (one_rule(description=5), [("rules[0].description", "must be a non-empty string")]),
    (
        one_rule(conditions=[]),
        [("rules[0].conditions", "unknown key (allowed: description, name, priority, then, when)")],
    ),
    (one_rule(prority=1), [("rules[0].prority", 'unknown key; did you mean "priority"?')]),
    (
        {"rules": [{"name": "r", "when": {"always": True}, "then": {}, 1: "x"}]},
        [('rules[0]["1"]', "unknown key (allowed: description, name, priority, then, when)")],
    ),
    (
        {
            "rules": [
                {"name": "a", "when": {"always": True}, "then": {}},
                {"name": "A", "when": {"always": True}, "then": {}},
            ]
        },
        [("rules[1].name", 'duplicate rule name "A" (also rules[0])')],
    ),
    # effects
    (
        one_rule(then="Engineer"),
        [("rules[0].then", "must be an object with license, roles, contact, username or status")],
    ),
    (then(licence="Engineer"), [("rules[0].then.licence", 'unknown key; did you mean "license"?')]),
    (then(license=5), [("rules[0].then.license", "must be a non-empty string")]),
    (
        then(roles=["Enginer"]),
        [("rules[0].then.roles[0]", 'unknown role "Enginer"; did you mean "Engineer"?')],
    ),
    (then(contact="x"), [("rules[0].then.contact", f"must be an object with any of {CONTACT}")]),
    (
        then(contact={"mobile": "1", "title": ""}),
        [
            (
                "rules[0].then.contact.mobile",
                "unknown key (allowed: department, email, familyName, givenName, organization, phone, title)",
            ),
            ("rules[0].then.contact.title", "must be a non-empty string"),
        ],
    ),
    (
        then(contact={"tite": "x"}),
        [("rules[0].then.contact.tite", 'unknown key; did you mean "title"?')],
    ),
    (
        then(username="{first}.{last}"),
        [
            (
                "rules[0].then.username",
                f"template has unknown placeholder {{first}}; use {PLACEHOLDERS}",
            )
        ],
    ),
    (
        then(username="admin"),
        [
            (
                "rules[0].then.username",
                f"template has no placeholder (every user would get the same name); use {PLACEHOLDERS}",
            )
        ],
    ),
    (
        then(username="{given"),
        [
            (
                "rules[0].then.username",
                "template is malformed (expected '}' before end of string); write a literal brace as {{ or }}",
            )
        ],
    ),
    (
        then(username="{given!r}"),
        [
            (
                "rules[0].then.username",
                "template placeholder {given} takes no format spec or conversion",
            )
        ],
    ),
    (
        then(username="{given:>20}"),
        [
            (
                "rules[0].then.username",
                "template placeholder {given} takes no format spec or conversion",
            )
        ],
    ),
    (
        then(username="{}"),
        [("rules[0].then.username", f"template has unknown placeholder {{}}; use {PLACEHOLDERS}")],
    ),
    (
        then(username="{given}" * 29),
        [("rules[0].then.username", "template is longer than 200 characters")],
    ),
    (then(username=["{given}"]), [("rules[0].then.username", "must be a non-empty string")]),
    (
        then(status="LOCKED_BY_ADMIN"),
        [("rules[0].then.status", "must be one of PROVISIONED, ACTIVE, DEACTIVATED")],
    ),
    (
        then(status=None),
        [("rules[0].then.status", "must be one of PROVISIONED, ACTIVE, DEACTIVATED")],
    ),
    # condition shapes
    (when("always"), [("rules[0].when", "must be a condition object, such as {member_of: NAME}")]),
    (when({}), [("rules[0].when", f"has no condition; use exactly one of {KINDS}")]),
    (
        when({"member_of": "A", "always": True}),
        [("rules[0].when", f"has both member_of and always; use exactly one of {KINDS}")],
    ),
    (
        when({"memberOf": "A"}),
        [
            ("rules[0].when.memberOf", 'unknown key; did you mean "member_of"?'),
            ("rules[0].when", f"has no condition; use exactly one of {KINDS}"),
        ],
    ),
    (when({"member_of": ""}), [("rules[0].when.member_of", "must be a non-empty string")]),
    (
        when({"member_of": "A", "equals": "B"}),
        [("rules[0].when.equals", "unknown key (allowed: member_of)")],
    ),
    (when({"all": []}), [("rules[0].when.all", "must be a non-empty list of conditions")]),
    (
        when({"any": {"member_of": "A"}}),
        [("rules[0].when.any", "must be a non-empty list of conditions")],
    ),
    (
        when({"all": [{"member_of": "A"}, "x", {"any": [{}]}]}),
        [
            ("rules[0].when.all[1]", "must be a condition object, such as {member_of: NAME}"),
            ("rules[0].when.all[2].any[0]", f"has no condition; use exactly one of {KINDS}"),
        ],
    ),
    (
        when({"not": []}),
        [("rules[0].when.not", "must be a condition object, such as {member_of: NAME}")],
    ),
    (
        when({"always": False}),
        [("rules[0].when.always", "must be true (leave the rule out to disable it)")],
    ),
    (
        when(nested_nots(MAX_DEPTH)),
        [
            (
                "rules[0].when" + ".not" * MAX_DEPTH,
                f"conditions are nested deeper than {MAX_DEPTH} levels",
            )
        ],
    ),
    # attribute conditions
    (
        when({"attribute": "dept", "equals": "x"}),
        [("rules[0].when.attribute", 'unknown attribute "dept"; did you mean "department"?')],
    ),
    (
        when({"attribute": "shoeSize", "equals": "x"}),
        [
            (
                "rules[0].when.attribute",
                f'unknown attribute "shoeSize"; use one of {VOCAB}, or a scim:, saml: or oidc: prefix',
            )
        ],
    ),
    (
        when({"attribute": "ldap:cn", "equals": "x"}),
        [("rules[0].when.attribute", 'unknown attribute source "ldap"; use scim:, saml: or oidc:')],
    ),
    (
        when({"attribute": "saml:", "equals": "x"}),
        [("rules[0].when.attribute", 'needs an attribute name after "saml:"')],
    ),
    (
        when({"attribute": "scim:emails[type eq work]", "equals": "x"}),
        [
            (
                "rules[0].when.attribute",
                '"emails[type eq work]" is not a SCIM attribute path (such as title, name.givenName or urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter)',
            )
        ],
    ),
    (
        when({"attribute": "scim:name.givenName.x", "equals": "x"}),
        [
            (
                "rules[0].when.attribute",
                '"name.givenName.x" is not a SCIM attribute path (such as title, name.givenName or urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter)',
            )
        ],
    ),
    (
        when({"attribute": 3, "equals": "x"}),
        [("rules[0].when.attribute", "must be a non-empty string")],
    ),
    (when({"attribute": "title"}), [("rules[0].when", f"has no test; use exactly one of {TESTS}")]),
    (
        when({"attribute": "title", "equals": "a", "contains": "b"}),
        [("rules[0].when", f"has both equals and contains; use exactly one of {TESTS}")],
    ),
    (
        when({"attribute": "title", "equals": "a", "member": "b"}),
        [
            (
                "rules[0].when.member",
                "unknown key (allowed: attribute, contains, equals, matches, present)",
            )
        ],
    ),
    (
        when({"attribute": "title", "equals": ""}),
        [("rules[0].when.equals", "must be a non-empty string")],
    ),
    (
        when({"attribute": "title", "equals": ["a"]}),
        [("rules[0].when.equals", "must be a non-empty string")],
    ),
    (
        when({"attribute": "title", "contains": True}),
        [("rules[0].when.contains", "must be a non-empty string")],
    ),
    (
        when({"attribute": "title", "equals": "x" * 1001}),
        [("rules[0].when.equals", "must be at most 1000 characters")],
    ),
    (
        when({"attribute": "title", "present": "yes"}),
        [("rules[0].when.present", "must be true or false")],
    ),
    (
        when({"attribute": "title", "matches": 5}),
        [("rules[0].when.matches", "must be a non-empty regular expression")],
    ),
    (
        when({"attribute": "title", "matches": "("}),
        [
            (
                "rules[0].when.matches",
                "is not a valid regular expression: missing ), unterminated subpattern at position 0",
            )
        ],
    ),
    (
        when({"attribute": "title", "matches": "[[a]"}),
        [
            (
                "rules[0].when.matches",
                "is not a valid regular expression: Possible nested set at position 1",
            )
        ],
    ),
    (
        when({"attribute": "title", "matches": "a" * 501}),
        [("rules[0].when.matches", "must be at most 500 characters")],
    ),
    (
        when({"attribute": "title", "matches": "(a+)+"}),
        [
            (
                "rules[0].when.matches",
                "has a quantifier inside a repeated group, such as (a+)+, which can take exponential time; use a possessive quantifier (a++) or an atomic group (?>...)",
            )
        ],
    ),
]


@pytest.mark.parametrize(("document", "expected"), INVALID)
def test_invalid_documents(document, expected):
    """Each defect is reported at its path with a message that says what to write instead."""
    assert problems(document) == expected


def test_every_problem_is_reported_at_once():
    """Problems in the mode, the defaults and several rules all come back together."""
    document = {
        "mode": "sometimes",
        "defaults": {"license": "Gold"},
        "rules": [
            {
                "name": "a",
                "when": {"attribute": "dept", "equals": "x"},
                "then": {"roles": ["Admin"]},
            },
            {"name": "a", "when": {"member_of": "X"}, "then": {"status": "gone"}},
        ],
    }
    assert [path for path, _ in problems(document)] == [
        "mode",
        "defaults.license",
        "rules[0].when.attribute",
        "rules[0].then.roles[0]",
        "rules[1].then.status",
        "rules[1].name",
    ]


def test_error_lists_problems_in_its_message():
    """RuleSetError's text names the first problems; each problem serialises to path and message."""
    error = RuleSetError([Problem(f"rules[{i}]", "bad") for i in range(7)])
    assert (
        str(error)
        == "7 problems in rule set: rules[0]: bad; rules[1]: bad; rules[2]: bad; rules[3]: bad; rules[4]: bad (+2 more)"
    )
    assert str(RuleSetError([Problem("mode", "bad")])) == "1 problem in rule set: mode: bad"
    assert error.problems[0].to_dict() == {"path": "rules[0]", "message": "bad"}
    assert isinstance(error, ValueError)


def test_canonical_spellings_are_returned():
    """Licenses, roles, mode, status and attribute names come back in their canonical spelling."""
    rule_set = validate(
        {
            "mode": "ALL-MATCH",
            "defaults": {"license": "planner", "roles": ["portal USER"], "status": " active "},
            "rules": [
                {
                    "name": "r",
                    "when": {
                        "any": [
                            {"attribute": "EMAIL", "contains": "@x"},
                            {"attribute": "SAML:Role", "equals": "a"},
                        ]
                    },
                    "then": {
                        "license": "ENGINEER",
                        "roles": ["engineer", "Engineer"],
                        "status": "deactivated",
                    },
                },
            ],
        },
        licenses=LICENSES,
        roles=ROLES,
    )
    assert rule_set.mode == "all-match"
    assert rule_set.defaults.license == "Planner" and rule_set.defaults.roles == ("Portal user",)
    assert rule_set.defaults.status == "ACTIVE"
    rule = rule_set.rules[0]
    assert rule.then.license == "Engineer" and rule.then.roles == ("Engineer",)
    assert rule.then.status == "DEACTIVATED"
    assert rule.when.to_document() == {
        "any": [{"attribute": "email", "contains": "@x"}, {"attribute": "saml:Role", "equals": "a"}]
    }


def test_organization_names_differing_only_in_case():
    """If an organization has two licenses differing only in case, one spelling is chosen, stably."""
    rule_set = validate({"defaults": {"license": "gold"}}, licenses=["Gold", "GOLD", 3], roles=[])
    assert rule_set.defaults.license == "GOLD"


def test_empty_document_is_a_valid_rule_set():
    """No rules and no defaults: valid, first-match, assigns nothing."""
    assert validate({}) == RuleSet()


def test_valid_document_with_every_feature():
    """A document using every condition and effect validates and keeps its order and priorities."""
    rule_set = validate(
        {
            "mode": "all-match",
            "defaults": {
                "license": "Planner",
                "roles": ["Portal user"],
                "username": "{email}",
                "status": "PROVISIONED",
            },
            "rules": [
                {
                    "name": "eng",
                    "description": "Engineering staff",
                    "priority": 10,
                    "when": {"member_of": "Engineering"},
                    "then": {
                        "license": "Engineer",
                        "roles": ["Engineer"],
                        "contact": {"title": "Engineer", "organization": "ACME"},
                        "username": "{given}.{family}",
                        "status": "ACTIVE",
                    },
                },
                {
                    "name": "cc",
                    "priority": -5,
                    "when": {
                        "all": [
                            {"attribute": ENTERPRISE_COST_CENTER, "matches": r"41\d\d"},
                            {"not": {"attribute": "oidc:email_verified", "equals": False}},
                            {"attribute": "employeeNumber", "equals": 7},
                        ]
                    },
                    "then": {},
                },
                {
                    "name": "deep",
                    "when": nested_nots(MAX_DEPTH - 1),
                    "then": {"roles": ["Auditor"]},
                },
            ],
        },
        licenses=LICENSES,
        roles=ROLES,
    )
    assert [r.name for r in rule_set.rules] == ["eng", "cc", "deep"]
    assert [r.priority for r in rule_set.rules] == [10, -5, 0]
    assert rule_set.rules[0].description == "Engineering staff"
    assert validate(rule_set.to_document(), licenses=LICENSES, roles=ROLES) == rule_set
    assert rule_set.to_document()["rules"][0]["description"] == "Engineering staff"
    assert rule_set.rules[1].when.to_document()["all"][1] == {
        "not": {"attribute": "oidc:email_verified", "equals": "false"}
    }
    assert rule_set.rules[1].when.to_document()["all"][2] == {
        "attribute": "employeeNumber",
        "equals": "7",
    }


# -- properties ---------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
)
keys = st.sampled_from(
    [
        "mode",
        "defaults",
        "rules",
        "name",
        "priority",
        "when",
        "then",
        "license",
        "roles",
        "contact",
        "username",
        "status",
        "attribute",
        "equals",
        "contains",
        "matches",
        "present",
        "member_of",
        "all",
        "any",
        "not",
        "always",
        "title",
    ]
) | st.text(max_size=6)
json_like = st.recursive(
    json_scalars
    | st.sampled_from(
        ["first-match", "all-match", "Engineer", "{given}", "email", "(a+)+", "[", "ACTIVE"]
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300)
@given(json_like)
def test_validate_raises_only_rule_set_errors(document):
    """Whatever the document holds, validate returns a RuleSet or raises RuleSetError."""
    try:
        result = validate(document, licenses=LICENSES, roles=ROLES)
    except RuleSetError as exc:
        assert exc.problems and all(
            isinstance(p, Problem) and p.path and p.message for p in exc.problems
        )
    else:
        assert isinstance(result, RuleSet)
