"""Normalising SCIM, SAML and OIDC payloads into one external identity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings import AttributeMap, ExternalIdentity, GroupRef, merge_identities

from .samples import (
    ENTERPRISE,
    OIDC_ENTRA_CLAIMS,
    OIDC_OKTA_CLAIMS,
    SAML_ENTRA_ATTRIBUTES,
    SAML_ENTRA_NAME_ID,
    SAML_OKTA_ATTRIBUTES,
    SAML_OKTA_NAME_ID,
    SCIM_ENTRA_USER,
    SCIM_GROUPS,
)

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=30,
)
json_objects = st.dictionaries(st.text(max_size=15), json_values, max_size=8)


# -- SCIM ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("userName", ("bjensen@example.com",)),
        ("email", ("bjensen@example.com",)),
        ("givenName", ("Barbara",)),
        ("familyName", ("Jensen",)),
        ("displayName", ("Babs Jensen",)),
        ("title", ("Tour Guide",)),
        ("department", ("Tour Operations",)),
        ("employeeNumber", ("701984",)),
        ("organization", ("Universal Studios",)),
        ("division", ("Theme Park",)),
        ("costCenter", ("4130",)),
        ("userType", ("Employee",)),
        ("externalId", ("bjensen",)),
        ("locale", ("en-US",)),
        ("active", ("true",)),
        ("manager", ("26118915-6090-4610-87e4-49d8ca9f808d",)),
        ("scim:title", ("Tour Guide",)),
        ("scim:name.givenName", ("Barbara",)),
        ("scim:emails", ("babs@home.example", "bjensen@example.com")),
        ("scim:emails.type", ("home", "work")),
        ("scim:emails.primary", ("true",)),
        ("scim:phoneNumbers.value", ("555-555-5555",)),
        (f"scim:{ENTERPRISE}:costCenter", ("4130",)),
        (f"scim:{ENTERPRISE}:manager.displayName", ("John Smith",)),
        ("scim:urn:ietf:params:scim:schemas:core:2.0:User:userName", ("bjensen@example.com",)),
        ("SCIM:URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:title", ("Tour Guide",)),
        ("EMAIL", ("bjensen@example.com",)),
        ("scim:password", ()),
        ("phone", ()),
    ],
)
def test_scim_user_normalised(name, values):
    """An enterprise SCIM user (RFC 7643 §8.2) maps onto the vocabulary and scim: paths."""
    identity = ExternalIdentity.from_scim(SCIM_ENTRA_USER, SCIM_GROUPS)
    assert identity.values(name) == values


def test_scim_subject_source_and_groups():
    """The subject is the externalId; groups keep display name, external id and id."""
    identity = ExternalIdentity.from_scim(SCIM_ENTRA_USER, SCIM_GROUPS)
    assert identity.source == "scim" and identity.subject == "bjensen"
    assert identity.groups == (
        GroupRef("Engineering", "6f3a0c6e-entra-object-id", "8f1c"),
        GroupRef("All staff", None, "9a2d"),
    )


def test_scim_password_is_never_an_attribute():
    """A password sent on create is not copied anywhere a rule or explanation could see it."""
    identity = ExternalIdentity.from_scim(SCIM_ENTRA_USER)
    assert not any("t1meMa$heen" in values for values in identity.attributes.values())


@pytest.mark.parametrize(
    ("emails", "expected"),
    [
        (
            [
                {"value": "a@x", "type": "home"},
                {"value": "b@x", "type": "work"},
                {"value": "c@x", "primary": True},
            ],
            "c@x",
        ),
        ([{"value": "a@x", "type": "home"}, {"value": "b@x", "type": "Work"}], "b@x"),
        ([{"value": "a@x", "type": "home"}, {"value": "b@x"}], "a@x"),
        ([{"type": "work"}, {"value": "b@x"}], "b@x"),
        ([{"value": "", "primary": True}, {"value": "b@x"}], "b@x"),
        (["not-an-object"], None),
        ("bjensen@example.com", None),
        ([], None),
    ],
)
def test_scim_email_choice(emails, expected):
    """email is the primary address, else the work one, else the first (RFC 7643 §4.1.2)."""
    identity = ExternalIdentity.from_scim({"userName": "u", "emails": emails})
    assert identity.first("email") == expected


@pytest.mark.parametrize(
    ("doc", "name", "expected"),
    [
        (
            {ENTERPRISE: {"manager": "26118915"}},
            "manager",
            "26118915",
        ),  # Entra sends the manager as a bare id
        ({"USERNAME": "upper"}, "userName", "upper"),
        ({"name": {"formatted": "Dr. X"}}, "displayName", "Dr. X"),
        ({"locale": "de-CH", "preferredLanguage": "de"}, "locale", "de-CH"),
        ({"active": False}, "active", "false"),
        ({"externalId": 42}, "externalId", "42"),
        ({"name": "not-an-object"}, "givenName", None),
        (
            {"urn:ietf:params:scim:schemas:extension:acme:2.0:User": {"badge": 7}},
            "scim:urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge",
            "7",
        ),
        ({"x509Certificates": [{"value": None}]}, "scim:x509Certificates", None),
        ({"name": {1: "x", "givenName": "G"}}, "givenName", "G"),
        (
            {"urn:ietf:params:scim:schemas:extension:acme:2.0:User": {1: "x", "b": "c"}},
            "scim:urn:ietf:params:scim:schemas:extension:acme:2.0:User:b",
            "c",
        ),
    ],
)
def test_scim_quirks(doc, name, expected):
    """Case-insensitive names, bare manager ids, extension schemas and odd types are handled."""
    assert ExternalIdentity.from_scim(doc).first(name) == expected


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ({"value": "g1", "display": "Sales"}, GroupRef("Sales", None, "g1")),
        ({"displayName": "Ops", "externalId": "ext"}, GroupRef("Ops", "ext", None)),
        ("garbage", GroupRef(None, None, None)),
    ],
)
def test_scim_group_shapes(group, expected):
    """Group dicts may use the User.groups shape (value/display) as well as the Group one."""
    assert ExternalIdentity.from_scim({}, [group]).groups == (expected,)


def test_flattening_is_bounded():
    """Huge or deeply nested payloads are cut at fixed limits instead of costing unbounded work."""
    from mappings.sources import MAX_DEPTH, MAX_VALUES

    wide = ExternalIdentity.from_oidc({"many": list(range(MAX_VALUES * 2))})
    assert len(wide.values("oidc:many")) == MAX_VALUES
    deep: dict = {"leaf": "x"}
    for _ in range(MAX_DEPTH + 2):
        deep = {"d": deep}
    assert not any(
        key.endswith("leaf") for key in ExternalIdentity.from_oidc({"deep": deep}).attributes
    )
    shallow = {"d": {"leaf": "x"}}
    assert ExternalIdentity.from_oidc({"deep": shallow}).values("oidc:deep.d.leaf") == ("x",)


def test_scim_rejects_a_non_object():
    """from_scim needs a User object, not a list or a string."""
    with pytest.raises(TypeError):
        ExternalIdentity.from_scim(["userName"])  # type: ignore[arg-type]


# -- SAML ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("userName", ("bjensen@example.com",)),
        ("email", ("bjensen@example.com",)),
        ("givenName", ("Barbara",)),
        ("familyName", ("Jensen",)),
        ("displayName", ("Babs Jensen",)),
        (
            "saml:http://schemas.microsoft.com/identity/claims/tenantid",
            ("72f988bf-86f1-41af-91ab-2d7cd011db47",),
        ),
        ("saml:http://schemas.xmlsoap.org/ws/2005/05/identity/claims/GivenName", ("Barbara",)),
        ("department", ()),
    ],
)
def test_saml_entra_claims(name, values):
    """Entra ID's claim URIs map onto the vocabulary; the raw claims stay under saml:."""
    identity = ExternalIdentity.from_saml(SAML_ENTRA_NAME_ID, SAML_ENTRA_ATTRIBUTES)
    assert identity.values(name) == values


def test_saml_entra_groups_are_object_ids():
    """Entra group claims are object ids: each is usable as display name and external id."""
    identity = ExternalIdentity.from_saml(SAML_ENTRA_NAME_ID, SAML_ENTRA_ATTRIBUTES)
    assert identity.source == "saml" and identity.subject == "bjensen@example.com"
    assert identity.groups[0] == GroupRef(
        "6f3a0c6e-entra-object-id", "6f3a0c6e-entra-object-id", None
    )
    assert len(identity.groups) == 2


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("givenName", ("Barbara",)),
        ("familyName", ("Jensen",)),
        ("email", ("bjensen@example.com",)),
        ("department", ("Tour Operations",)),
        ("saml:groups", ("Everyone", "Engineering")),
        ("userName", ()),
    ],
)
def test_saml_okta_attributes(name, values):
    """Okta's plain attribute names (firstName, lastName, email, department) map too."""
    identity = ExternalIdentity.from_saml(SAML_OKTA_NAME_ID, SAML_OKTA_ATTRIBUTES)
    assert identity.values(name) == values


def test_saml_group_attribute_names_are_configurable():
    """Only the configured group attributes make groups; duplicates (up to case) collapse."""
    attributes = {"memberships": ["Sales", "sales", "Ops"], "groups": ["Ignored"]}
    identity = ExternalIdentity.from_saml("n", attributes, group_attribute_names=("Memberships",))
    assert [g.display_name for g in identity.groups] == ["Sales", "Ops"]


def test_saml_alias_order_and_single_values():
    """The claim URI wins over a plain alias; a bare string counts as one value."""
    attributes = {
        "mail": "plain@example.com",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["uri@example.com"],
    }
    identity = ExternalIdentity.from_saml(None, attributes)
    assert identity.values("email") == ("uri@example.com",)
    assert identity.values("saml:mail") == ("plain@example.com",)
    assert identity.subject is None


def test_saml_rejects_non_mapping_attributes():
    """Attributes must be a mapping of name to values."""
    with pytest.raises(TypeError):
        ExternalIdentity.from_saml("n", [("email", "x")])  # type: ignore[arg-type]


# -- OIDC ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "name", "values"),
    [
        (OIDC_ENTRA_CLAIMS, "userName", ("bjensen@example.com",)),
        (OIDC_ENTRA_CLAIMS, "displayName", ("Babs Jensen",)),
        (OIDC_ENTRA_CLAIMS, "email", ()),
        (OIDC_ENTRA_CLAIMS, "oidc:oid", ("0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",)),
        (OIDC_ENTRA_CLAIMS, "oidc:roles", ("Approver",)),
        (OIDC_ENTRA_CLAIMS, "oidc:iat", ("1700000000",)),
        (OIDC_OKTA_CLAIMS, "givenName", ("Barbara",)),
        (OIDC_OKTA_CLAIMS, "familyName", ("Jensen",)),
        (OIDC_OKTA_CLAIMS, "email", ("bjensen@example.com",)),
        (OIDC_OKTA_CLAIMS, "locale", ("en-US",)),
        (OIDC_OKTA_CLAIMS, "department", ("Tour Operations",)),
        (OIDC_OKTA_CLAIMS, "oidc:email_verified", ("true",)),
        (OIDC_OKTA_CLAIMS, "oidc:address.locality", ("Hollywood",)),
        ({"email": "x@example.com", "email_verified": False}, "email", ()),
        ({"email": "x@example.com", "email_verified": "false"}, "email", ()),
        ({"email": "x@example.com", "email_verified": False}, "oidc:email", ("x@example.com",)),
        ({"upn": "legacy@example.com"}, "userName", ("legacy@example.com",)),
        ({"costCenter": "4130"}, "costCenter", ("4130",)),
    ],
)
def test_oidc_claims(claims, name, values):
    """Standard and IdP-specific claims map onto the vocabulary; raw claims stay under oidc:."""
    assert ExternalIdentity.from_oidc(claims).values(name) == values


def test_oidc_subject_and_groups():
    """sub is the subject; the groups claim (a list or one string) makes groups."""
    okta = ExternalIdentity.from_oidc(OIDC_OKTA_CLAIMS)
    assert okta.subject == "00uid4BxXw6I6TV4m0g3"
    assert [g.display_name for g in okta.groups] == ["Everyone", "Engineering"]
    single = ExternalIdentity.from_oidc({"sub": "s", "groups": "Only"})
    assert single.groups == (GroupRef("Only", "Only", None),)
    custom = ExternalIdentity.from_oidc({"teams": ["A"], "groups": ["B"]}, group_claims=("teams",))
    assert [g.display_name for g in custom.groups] == ["A"]


def test_oidc_rejects_non_mapping_claims():
    """Claims must be a mapping."""
    with pytest.raises(TypeError):
        ExternalIdentity.from_oidc("sub")  # type: ignore[arg-type]


# -- the value types ----------------------------------------------------------


def test_attribute_map_merges_case_variants():
    """Names differing only in case merge, keeping the first spelling and deduplicated values."""
    attributes = AttributeMap(
        {"Dept": ["A", "B"], "DEPT": ("B", "C"), "empty": "", "none": None, "n": [1, True]}
    )
    assert list(attributes) == ["Dept", "n"]
    assert attributes["dept"] == ("A", "B", "C")
    assert attributes["N"] == ("1", "true")
    assert "DePt" in attributes and 3 not in attributes and "empty" not in attributes
    assert len(attributes) == 2
    assert attributes == AttributeMap({"dept": ["A", "B", "C"], "n": ["1", "true"]})
    assert attributes == {"Dept": ("A", "B", "C"), "n": ("1", "true")}
    assert hash(attributes) == hash(AttributeMap({"DEPT": ["A", "B", "C"], "n": ["1", "true"]}))
    assert repr(attributes).startswith("AttributeMap(")


def _eager(doc):
    """The attributes as ``from_scim`` built them before they were lazy: raw, then vocabulary."""
    from mappings import sources

    return AttributeMap({**sources.scim_raw(doc), **sources.scim_common(doc)})


@given(json_objects)
def test_scim_attributes_read_lazily_equal_the_eager_ones(doc):
    """``from_scim``'s attributes (the raw ``scim:`` names read on first use) are the eager ones:
    every lookup, the names and their order, length, equality and hash."""
    eager = _eager(doc)
    vocabulary = ExternalIdentity.from_scim(doc).attributes
    for name in ("userName", "email", "department", "title", "manager", "organization"):
        assert vocabulary.get(name) == eager.get(name)  # before the raw names are read
    assert (vocabulary == eager) and list(vocabulary) == list(eager)
    raw_first = ExternalIdentity.from_scim(doc).attributes
    assert raw_first.get("scim:userName") == eager.get("scim:userName")
    assert len(raw_first) == len(eager) and hash(raw_first) == hash(eager)
    assert dict(raw_first.items()) == dict(eager.items())


def test_scim_raw_names_are_read_when_asked_for():
    """A rule on a raw name (any case, the core URN spelled out) finds it; vocabulary lookups
    leave the document's other attributes unread."""
    doc = {
        "userName": "ann",
        "nickName": "Annie",
        "urn:ietf:params:scim:schemas:core:2.0:User:title": "x",
        ENTERPRISE: {"department": "Ops", "costCenter": "42"},
    }
    identity = ExternalIdentity.from_scim(doc)
    assert identity.first("department") == "Ops"
    assert identity.attributes._doc is doc  # type: ignore[attr-defined]
    assert identity.first("SCIM:nickname") == "Annie"
    assert identity.attributes._doc is None  # type: ignore[attr-defined]
    other = ExternalIdentity.from_scim(doc)
    assert "scim:nickName" in other.attributes
    assert (
        ExternalIdentity.from_scim(doc).first(
            "scim:urn:ietf:params:scim:schemas:core:2.0:User:nickName"
        )
        == "Annie"
    )
    assert ExternalIdentity.from_scim(doc).first(f"scim:{ENTERPRISE}:costCenter") == "42"
    assert ExternalIdentity.from_scim(doc) == ExternalIdentity("scim", None, _eager(doc))


def test_identity_is_hashable_and_validates_source():
    """Identities are values (hashable, comparable); an unknown source is refused."""
    one = ExternalIdentity("scim", "s", {"email": "a@x"}, [GroupRef("G")])
    two = ExternalIdentity("scim", "s", AttributeMap({"email": ["a@x"]}), (GroupRef("G"),))
    assert one == two and hash(one) == hash(two)
    assert one.first("missing") is None and one.values("missing") == ()
    with pytest.raises(ValueError, match="source must be one of scim, saml, oidc"):
        ExternalIdentity("ldap", None, {})


@given(json_objects, st.lists(json_values, max_size=4))
def test_from_scim_never_raises_on_json(doc, groups):
    """Any JSON object (with any group list) gives an identity, never an exception."""
    identity = ExternalIdentity.from_scim(doc, groups)
    assert all(isinstance(v, str) and v for values in identity.attributes.values() for v in values)


@given(
    st.one_of(st.none(), st.text(max_size=10)),
    st.dictionaries(st.text(max_size=30), json_values, max_size=8),
)
def test_from_saml_never_raises(name_id, attributes):
    """Any attribute statement gives an identity."""
    identity = ExternalIdentity.from_saml(name_id, attributes)
    assert identity.source == "saml"


@given(json_objects)
def test_from_oidc_never_raises(claims):
    """Any claims object gives an identity."""
    assert ExternalIdentity.from_oidc(claims).source == "oidc"


def _stored() -> ExternalIdentity:
    doc = {
        "userName": "bjensen@example.com",
        "externalId": "scim-ext",
        "emails": [{"value": "bjensen@example.com", "primary": True}],
        ENTERPRISE: {"department": "Sales", "costCenter": "4130"},
    }
    return ExternalIdentity.from_scim(doc, [{"id": "g1", "displayName": "Everyone"}])


def test_merge_sign_in_wins_for_single_valued_names():
    """Both carry department: the sign-in's value, not both; SCIM-only names are kept."""
    signed_in = ExternalIdentity.from_saml("bjensen", {"department": ["Engineering"]})
    merged = merge_identities(_stored(), signed_in)
    assert merged.values("department") == ("Engineering",)
    assert merged.values("costCenter") == ("4130",)
    assert merged.values("scim:externalId") == ("scim-ext",)
    assert merged.values("saml:department") == ("Engineering",)
    assert (merged.source, merged.subject) == ("saml", "bjensen")


def test_merge_unions_groups_and_other_shared_names():
    """Groups are the union (duplicates once); a shared non-vocabulary name gets both values."""
    stored = ExternalIdentity("scim", "s", {"x:tags": ["a"]}, [GroupRef("Everyone", None, "g1")])
    signed_in = ExternalIdentity(
        "oidc",
        None,
        {"X:TAGS": ["b", "a"]},
        [GroupRef("Engineering", "Engineering"), GroupRef("Everyone", None, "g1")],
    )
    merged = merge_identities(stored, signed_in)
    assert merged.values("x:tags") == ("a", "b")
    assert merged.groups == (
        GroupRef("Everyone", None, "g1"),
        GroupRef("Engineering", "Engineering"),
    )
    assert merged.subject == "s"


def test_merge_without_sign_in_groups_keeps_scim_groups():
    """A sign-in without a groups claim takes away no SCIM group."""
    merged = merge_identities(_stored(), ExternalIdentity.from_oidc({"sub": "u1"}))
    assert [g.display_name for g in merged.groups] == ["Everyone"]
    assert merged.values("department") == ("Sales",)
