"""Resolving identities through rule sets: modes, conflicts, defaults, explanations, diffs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings import (
    ExternalIdentity,
    GroupRef,
    MappingResult,
    RuleSet,
    TemplateError,
    diff,
    dump,
    load,
    render_username,
    resolve,
    validate,
)

from .samples import LICENSES, ROLES, SCIM_ENTRA_USER, SCIM_GROUPS, person, rule, rules

ENGINEERING = rule(
    "engineering", {"member_of": "Engineering"}, license="Engineer", roles=["Engineer"], priority=10
)
MANAGERS = rule(
    "managers",
    {"attribute": "title", "contains": "manager"},
    license="Manager",
    roles=["Approver"],
    priority=20,
)
EVERYONE = rule("everyone", {"always": True}, license="Planner", roles=["Portal user"])
DEFAULTS = {"license": "Planner", "roles": ["Portal user"]}


# -- modes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "identity", "matched", "license_", "roles"),
    [
        (
            "first-match",
            person(("Engineering",), title="Engineering manager"),
            ("engineering",),
            "Engineer",
            ("Engineer",),
        ),
        (
            "all-match",
            person(("Engineering",), title="Engineering manager"),
            ("engineering", "managers", "everyone"),
            "Manager",
            ("Approver", "Engineer", "Portal user"),
        ),
        ("first-match", person(title="Sales manager"), ("managers",), "Manager", ("Approver",)),
        (
            "all-match",
            person(title="Sales manager"),
            ("managers", "everyone"),
            "Manager",
            ("Approver", "Portal user"),
        ),
        ("first-match", person(), ("everyone",), "Planner", ("Portal user",)),
        ("all-match", person(), ("everyone",), "Planner", ("Portal user",)),
    ],
)
def test_modes(mode, identity, matched, license_, roles):
    """first-match stops at the first matching rule; all-match applies every matching rule."""
    result = resolve(identity, rules(ENGINEERING, MANAGERS, EVERYONE, mode=mode))
    assert (result.matched, result.license, result.roles) == (matched, license_, roles)


def test_first_match_explains_only_evaluated_rules():
    """In first-match mode the explanation lists the rules up to and including the match."""
    result = resolve(person(title="Sales manager"), rules(ENGINEERING, MANAGERS, EVERYONE))
    assert [(e["rule"], e["matched"]) for e in result.explanation] == [
        ("engineering", False),
        ("managers", True),
    ]


# -- conflicts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("priorities", "license_", "license_rule", "loser_note"),
    [
        ((10, 20), "Manager", "b", 'rule "b" has higher priority (20 > 10)'),
        ((20, 10), "Engineer", "a", 'rule "a" has higher priority (20 > 10)'),
        ((5, 5), "Engineer", "a", 'rule "a" has the same priority and comes first'),
        ((0, 0), "Engineer", "a", 'rule "a" has the same priority and comes first'),
        ((-1, 0), "Manager", "b", 'rule "b" has higher priority (0 > -1)'),
    ],
)
def test_license_conflicts_by_priority(priorities, license_, license_rule, loser_note):
    """The highest priority wins the license; ties go to the earlier rule; the loser is told why."""
    a = rule("a", {"always": True}, license="Engineer", priority=priorities[0])
    b = rule("b", {"always": True}, license="Manager", priority=priorities[1])
    result = resolve(person(), rules(a, b, mode="all-match"))
    assert (result.license, result.license_rule) == (license_, license_rule)
    loser = next(e for e in result.explanation if e["rule"] != license_rule)
    assert loser["overridden"] == {"license": loser_note}
    assert "overridden" not in next(e for e in result.explanation if e["rule"] == license_rule)


def test_username_and_status_conflicts_follow_priority():
    """Username template and initial status are single-valued too: priority decides."""
    a = rule("a", {"always": True}, username="{email}", status="ACTIVE")
    b = rule("b", {"always": True}, username="{given}.{family}", status="DEACTIVATED", priority=1)
    result = resolve(person(), rules(a, b, mode="all-match"))
    assert (result.username_template, result.initial_status) == ("{given}.{family}", "DEACTIVATED")
    assert result.explanation[0]["overridden"] == {
        "username": 'rule "b" has higher priority (1 > 0)',
        "status": 'rule "b" has higher priority (1 > 0)',
    }


def test_contact_fields_later_rule_wins():
    """Contact fields merge field by field; for the same field the later rule wins, and says so."""
    a = rule(
        "a", {"always": True}, contact={"title": "Engineer", "department": "R&D"}, priority=100
    )
    b = rule("b", {"always": True}, contact={"title": "Lead"})
    c = rule("c", {"member_of": "Nobody"}, contact={"title": "Never"})
    result = resolve(person(), rules(a, b, c, mode="all-match"))
    assert result.contact == {"title": "Lead", "department": "R&D"}
    assert result.explanation[0]["overridden"] == {"contact.title": 'later rule "b" sets it too'}
    assert "overridden" not in result.explanation[1]


def test_roles_union_with_their_rules():
    """Roles are the sorted union of matching rules' roles, each with the rules that gave it."""
    a = rule("a", {"always": True}, roles=["Portal user", "Engineer"])
    b = rule("b", {"always": True}, roles=["engineer", "Approver"])
    result = resolve(person(), rules(a, b, mode="all-match"))
    assert result.roles == ("Approver", "Engineer", "Portal user")
    assert result.role_rules == {"Portal user": ("a",), "Engineer": ("a", "b"), "Approver": ("b",)}


# -- defaults -----------------------------------------------------------------


@pytest.mark.parametrize(
    (
        "rule_docs",
        "defaults",
        "license_",
        "license_rule",
        "roles",
        "role_rules",
        "username",
        "status",
        "because",
    ),
    [
        (
            (),
            DEFAULTS,
            "Planner",
            "defaults",
            ("Portal user",),
            {"Portal user": ("defaults",)},
            None,
            None,
            "no matching rule assigns license or roles",
        ),
        (
            (ENGINEERING,),
            DEFAULTS,
            "Engineer",
            "engineering",
            ("Engineer",),
            {"Engineer": ("engineering",)},
            None,
            None,
            None,
        ),
        (
            (rule("lic", {"always": True}, license="Manager"),),
            DEFAULTS,
            "Manager",
            "lic",
            ("Portal user",),
            {"Portal user": ("defaults",)},
            None,
            None,
            "no matching rule assigns roles",
        ),
        (
            (rule("rol", {"always": True}, roles=["Auditor"]),),
            DEFAULTS,
            "Planner",
            "defaults",
            ("Auditor",),
            {"Auditor": ("rol",)},
            None,
            None,
            "no matching rule assigns license",
        ),
        (
            (rule("off", {"member_of": "Nobody"}, license="Manager"),),
            {**DEFAULTS, "username": "{email}", "status": "ACTIVE"},
            "Planner",
            "defaults",
            ("Portal user",),
            {"Portal user": ("defaults",)},
            "{email}",
            "ACTIVE",
            "no matching rule assigns license, roles, username or status",
        ),
        (
            (rule("status", {"always": True}, status="DEACTIVATED"),),
            {"status": "ACTIVE"},
            None,
            None,
            (),
            {},
            None,
            "DEACTIVATED",
            None,
        ),
        ((), {}, None, None, (), {}, None, None, None),
    ],
)
def test_defaults(
    rule_docs, defaults, license_, license_rule, roles, role_rules, username, status, because
):
    """Defaults fill each of license, roles, username and status that no matching rule assigns."""
    result = resolve(person(("Engineering",)), rules(*rule_docs, defaults=defaults))
    assert (result.license, result.license_rule, result.roles, dict(result.role_rules)) == (
        license_,
        license_rule,
        roles,
        role_rules,
    )
    assert (result.username_template, result.initial_status) == (username, status)
    last = result.explanation[-1] if result.explanation else {}
    assert (last.get("because") if last.get("rule") == "defaults" else None) == because


# -- explanation --------------------------------------------------------------


def test_explanation_is_json_for_the_audit_log():
    """The explanation names each rule, its verdict, the reason and the effects, as plain JSON."""
    identity = ExternalIdentity.from_scim(SCIM_ENTRA_USER, SCIM_GROUPS)
    ruleset = rules(
        rule(
            "contractors", {"attribute": "userType", "equals": "Contractor"}, status="DEACTIVATED"
        ),
        rule(
            "engineering",
            {"all": [{"member_of": "Engineering"}, {"attribute": "department", "present": True}]},
            license="Engineer",
            roles=["Engineer"],
            contact={"title": "Engineer"},
            username="{given}.{family}",
            status="PROVISIONED",
        ),
        mode="all-match",
        defaults=DEFAULTS,
    )
    result = resolve(identity, ruleset)
    assert json.loads(json.dumps(list(result.explanation))) == [
        {
            "rule": "contractors",
            "matched": False,
            "because": 'userType is "Employee", not "Contractor"',
            "effects": {},
        },
        {
            "rule": "engineering",
            "matched": True,
            "because": 'member of "Engineering" and department is present',
            "effects": {
                "license": "Engineer",
                "roles": ["Engineer"],
                "contact": {"title": "Engineer"},
                "username": "{given}.{family}",
                "status": "PROVISIONED",
            },
        },
    ]
    assert result.to_dict() == {
        "license": "Engineer",
        "license_rule": "engineering",
        "roles": ["Engineer"],
        "role_rules": {"Engineer": ["engineering"]},
        "contact": {"title": "Engineer"},
        "username_template": "{given}.{family}",
        "initial_status": "PROVISIONED",
        "matched": ["engineering"],
        "explanation": list(result.explanation),
    }
    assert render_username(result.username_template, identity) == "Barbara.Jensen"


def test_empty_rule_set_gives_an_empty_result():
    """No rules and no defaults: nothing assigned, nothing to explain."""
    assert resolve(person(), RuleSet()) == MappingResult()


# -- username templates -------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "attributes", "expected"),
    [
        ("{given}.{family}", {"givenName": "Barbara", "familyName": "Jensen"}, "Barbara.Jensen"),
        ("{email}", {"email": ["b@example.com", "other@example.com"]}, "b@example.com"),
        ("{userName}", {"userName": " bjensen "}, "bjensen"),
        ("ext-{externalId}", {"externalId": "701984"}, "ext-701984"),
        ("{{{given}}}", {"givenName": "B"}, "{B}"),
        ("{given}_{given}", {"givenName": "B"}, "B_B"),
    ],
)
def test_render_username(template, attributes, expected):
    """Placeholders are filled from the identity's first value, trimmed."""
    assert render_username(template, person(**attributes)) == expected


@pytest.mark.parametrize(
    ("template", "attributes", "message"),
    [
        (
            "{given}.{family}",
            {"givenName": "Barbara"},
            "cannot render '{given}.{family}': {family} has no value",
        ),
        ("{email}", {"email": "   "}, "cannot render '{email}': {email} has no value"),
        (
            "{nickname}",
            {},
            "has unknown placeholder {nickname}; use {userName}, {email}, {given}, {family}, {externalId}",
        ),
        ("plain", {}, "has no placeholder"),
    ],
)
def test_render_username_errors(template, attributes, message):
    """A missing value or a bad template is a TemplateError (a ValueError) saying which."""
    with pytest.raises(TemplateError) as caught:
        render_username(template, person(**attributes))
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


# -- diff ---------------------------------------------------------------------


def result_for(*groups: str, title: str = "Engineer") -> MappingResult:
    ruleset = rules(
        ENGINEERING,
        MANAGERS,
        rule("titles", {"always": True}, contact={"title": title}),
        mode="all-match",
        defaults=DEFAULTS,
    )
    return resolve(person(groups, title=title), ruleset)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (
            None,
            result_for("Engineering"),
            {
                "changed": True,
                "license": {"from": None, "to": "Engineer", "rule": "engineering"},
                "roles": {"added": [{"role": "Engineer", "rules": ["engineering"]}], "removed": []},
                "contact": {"title": {"from": None, "to": "Engineer"}},
            },
        ),
        (
            result_for("Engineering"),
            result_for("Engineering"),
            {
                "changed": False,
                "license": None,
                "roles": {"added": [], "removed": []},
                "contact": {},
            },
        ),
        (
            result_for("Engineering"),
            result_for(),
            {
                "changed": True,
                "license": {"from": "Engineer", "to": "Planner", "rule": "defaults"},
                "roles": {
                    "added": [{"role": "Portal user", "rules": ["defaults"]}],
                    "removed": ["Engineer"],
                },
                "contact": {},
            },
        ),
        (
            result_for("Engineering"),
            result_for("Engineering", title="Engineering manager"),
            {
                "changed": True,
                "license": {"from": "Engineer", "to": "Manager", "rule": "managers"},
                "roles": {"added": [{"role": "Approver", "rules": ["managers"]}], "removed": []},
                "contact": {"title": {"from": "Engineer", "to": "Engineering manager"}},
            },
        ),
        (
            result_for(),
            MappingResult(),
            {
                "changed": True,
                "license": {"from": "Planner", "to": None, "rule": None},
                "roles": {"added": [], "removed": ["Portal user"]},
                "contact": {"title": {"from": "Engineer", "to": None}},
            },
        ),
    ],
)
def test_diff(before, after, expected):
    """diff says which license and roles changed, which rule caused it, and contact changes."""
    assert diff(before, after) == expected


# -- properties ---------------------------------------------------------------

NAMES = [
    "userName",
    "email",
    "givenName",
    "department",
    "title",
    "saml:role",
    "scim:emails.value",
    "oidc:groups",
]
GROUPS = ["Engineering", "Sales", "6f3a", "É"]
text = st.text(max_size=12) | st.sampled_from(
    ["Engineering", "engineering", "x@example.com", "ß", "SS", "É"]
)

conditions = st.recursive(
    st.one_of(
        st.builds(
            lambda n, v: {"attribute": n, "equals": v},
            st.sampled_from(NAMES),
            st.sampled_from(["Engineering", "x@example.com", "ss", "é"]),
        ),
        st.builds(
            lambda n, v: {"attribute": n, "contains": v},
            st.sampled_from(NAMES),
            st.sampled_from(["eng", "@", "ß"]),
        ),
        st.builds(
            lambda n, v: {"attribute": n, "matches": v},
            st.sampled_from(NAMES),
            st.sampled_from([".*", "[a-z]+", r"\w+@\w+\.com", "É.*"]),
        ),
        st.builds(
            lambda n, v: {"attribute": n, "present": v}, st.sampled_from(NAMES), st.booleans()
        ),
        st.builds(lambda g: {"member_of": g}, st.sampled_from(GROUPS)),
        st.just({"always": True}),
    ),
    lambda inner: st.one_of(
        st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, inner),
    ),
    max_leaves=8,
)
effects = st.fixed_dictionaries(
    {},
    optional={
        "license": st.sampled_from(["Engineer", "Planner", "Manager"]),
        "roles": st.lists(
            st.sampled_from(["Engineer", "Portal user", "Approver", "Auditor"]), max_size=3
        ),
        "contact": st.dictionaries(
            st.sampled_from(["title", "department", "phone"]),
            st.sampled_from(["A", "B"]),
            max_size=2,
        ),
        "username": st.sampled_from(["{email}", "{given}.{family}"]),
        "status": st.sampled_from(["PROVISIONED", "ACTIVE", "DEACTIVATED"]),
    },
)
rule_sets = st.builds(
    lambda mode, defaults, bodies: rules(
        *[
            {"name": f"r{i}", "priority": p, "when": w, "then": t}
            for i, (p, w, t) in enumerate(bodies)
        ],
        mode=mode,
        defaults=defaults,
    ),
    st.sampled_from(["first-match", "all-match"]),
    st.fixed_dictionaries(
        {}, optional={"license": st.just("Planner"), "roles": st.just(["Portal user"])}
    ),
    st.lists(st.tuples(st.integers(-3, 3), conditions, effects), max_size=6),
)
identities = st.builds(
    ExternalIdentity,
    source=st.sampled_from(["scim", "saml", "oidc"]),
    subject=st.none() | text,
    attributes=st.dictionaries(
        st.sampled_from(NAMES) | st.text(max_size=8), st.lists(text, max_size=3) | text, max_size=6
    ),
    groups=st.lists(
        st.builds(
            GroupRef, st.none() | st.sampled_from(GROUPS) | text, st.none() | text, st.none() | text
        ),
        max_size=4,
    ),
)


@settings(max_examples=200)
@given(identities, rule_sets)
def test_resolve_is_total_and_deterministic(identity, ruleset):
    """resolve never raises for a valid rule set, and gives the same result every time."""
    first = resolve(identity, ruleset)
    assert resolve(identity, ruleset) == first
    assert first.explanation == resolve(identity, ruleset).explanation
    json.dumps(first.to_dict())
    assert list(first.roles) == sorted(set(first.roles), key=lambda r: (r.casefold(), r))
    assert set(first.matched) <= {r.name for r in ruleset.rules}
    if ruleset.mode == "first-match":
        assert len(first.matched) <= 1
    if first.license is not None:
        assert first.license_rule in (*first.matched, "defaults")


@given(rule_sets)
def test_canonical_document_validates_to_the_same_rule_set(ruleset):
    """to_document is a fixed point: validating it gives the same rule set back."""
    document = ruleset.to_document()
    assert validate(document, licenses=LICENSES, roles=ROLES) == ruleset
    assert load(dump(ruleset, "yaml"), "yaml") == document
