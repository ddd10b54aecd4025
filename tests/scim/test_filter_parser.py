"""Tests for the SCIM filter and PATCH path parser (RFC 7644 §3.4.2.2, §3.5.2)."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scim_server.scim.filter_ast import (
    And,
    AttrPath,
    Compare,
    Expr,
    FilterError,
    Not,
    Or,
    PatchPath,
    PathError,
    Present,
    ValuePath,
)
from scim_server.scim.filter_parser import MAX_DEPTH, MAX_LENGTH, parse_filter, parse_path

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def p(attr: str, sub: str | None = None, uri: str | None = None) -> AttrPath:
    return AttrPath(uri, attr, sub)


def eq(attr: str, value: object, sub: str | None = None) -> Compare:
    return Compare(p(attr, sub), "eq", value)


def pr(attr: str, sub: str | None = None) -> Present:
    return Present(p(attr, sub))


A, B, C, D = pr("a"), pr("b"), pr("c"), pr("d")

VALID_FILTERS = [
    # RFC 7644 §3.4.2.2 examples
    ('userName eq "bjensen"', eq("userName", "bjensen")),
    ('name.familyName co "O\'Malley"', Compare(p("name", "familyName"), "co", "O'Malley")),
    ('userName sw "J"', Compare(p("userName"), "sw", "J")),
    (f'{CORE}:userName sw "J"', Compare(p("userName", uri=CORE), "sw", "J")),
    ("title pr", pr("title")),
    (
        'meta.lastModified gt "2011-05-13T04:42:34Z"',
        Compare(p("meta", "lastModified"), "gt", "2011-05-13T04:42:34Z"),
    ),
    ('meta.lastModified ge "x"', Compare(p("meta", "lastModified"), "ge", "x")),
    ('meta.lastModified lt "x"', Compare(p("meta", "lastModified"), "lt", "x")),
    ('meta.lastModified le "x"', Compare(p("meta", "lastModified"), "le", "x")),
    ('title ne "x"', Compare(p("title"), "ne", "x")),
    ('userName ew "n"', Compare(p("userName"), "ew", "n")),
    ('title pr and userType eq "Employee"', And(pr("title"), eq("userType", "Employee"))),
    ('title pr or userType eq "Intern"', Or(pr("title"), eq("userType", "Intern"))),
    (f'schemas eq "{ENT}"', eq("schemas", ENT)),
    (
        'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
        And(
            eq("userType", "Employee"),
            Or(
                Compare(p("emails"), "co", "example.com"),
                Compare(p("emails", "value"), "co", "example.org"),
            ),
        ),
    ),
    (
        'userType ne "Employee" and not (emails co "example.com")',
        And(
            Compare(p("userType"), "ne", "Employee"), Not(Compare(p("emails"), "co", "example.com"))
        ),
    ),
    (
        'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
        And(
            eq("userType", "Employee"),
            ValuePath(
                p("emails"), And(eq("type", "work"), Compare(p("value"), "co", "@example.com"))
            ),
        ),
    ),
    (
        'emails[type eq "work"] or ims[type eq "xmpp"]',
        Or(ValuePath(p("emails"), eq("type", "work")), ValuePath(p("ims"), eq("type", "xmpp"))),
    ),
    # schema URN prefixes keep the URN separately; names keep their case
    (f'{CORE}:name.givenName eq "Bo"', Compare(p("name", "givenName", CORE), "eq", "Bo")),
    (f'{ENT}:manager.value eq "26"', Compare(p("manager", "value", ENT), "eq", "26")),
    (f"{ENT}:employeeNumber pr", Present(p("employeeNumber", uri=ENT))),
    (f'{ENT}:manager[value eq "x"]', ValuePath(p("manager", uri=ENT), eq("value", "x"))),
    ("NAME.GivenName pr", pr("NAME", "GivenName")),
    # precedence: not > and > or (RFC 7644 §3.4.2.2)
    ("a eq 1 or b eq 2 and c eq 3", Or(eq("a", 1), And(eq("b", 2), eq("c", 3)))),
    ("a eq 1 and b eq 2 or c eq 3", Or(And(eq("a", 1), eq("b", 2)), eq("c", 3))),
    ("(a eq 1 or b eq 2) and c eq 3", And(Or(eq("a", 1), eq("b", 2)), eq("c", 3))),
    ("a pr or b pr and c pr or d pr", Or(Or(A, And(B, C)), D)),
    ("a pr or not (b pr) and c pr", Or(A, And(Not(B), C))),
    ("not (a pr or b pr) and c pr", And(Not(Or(A, B)), C)),
    ("a pr and b pr and c pr", And(And(A, B), C)),
    ("a pr and (b pr and c pr)", And(A, And(B, C))),
    ("(a pr and b pr) and c pr", And(And(A, B), C)),
    ("a pr or b pr or c pr or d pr", Or(Or(A, B), Or(C, D))),
    ("((a pr))", A),
    ("not (not (a pr))", Not(Not(A))),
    # JSON numbers (RFC 7159 §6)
    ("a eq 0", eq("a", 0)),
    ("a eq 42", eq("a", 42)),
    ("a eq -7", eq("a", -7)),
    ("a eq 1.5", eq("a", 1.5)),
    ("a eq -0.25e-3", eq("a", -0.00025)),
    ("a eq 1E3", eq("a", 1000.0)),
    ("a eq 2e+2", eq("a", 200.0)),
    ("a eq 12345678901234567890", eq("a", 12345678901234567890)),
    # JSON strings (RFC 7159 §7)
    ('a eq ""', eq("a", "")),
    (r'a eq "say \"hi\""', eq("a", 'say "hi"')),
    (r'a eq "back\\slash"', eq("a", "back\\slash")),
    (r'a eq "caf\u00e9"', eq("a", "café")),
    (r'a eq "\/\b\f\n\r\t"', eq("a", "/\b\f\n\r\t")),
    (r'a eq "\ud83d\ude00"', eq("a", "\U0001f600")),
    ('a eq "日本 é"', eq("a", "日本 é")),
    ('a eq "a]b)c(d[e"', eq("a", "a]b)c(d[e")),
    ('a eq "x and y or not z"', eq("a", "x and y or not z")),
    # literals
    ("a eq true", eq("a", True)),
    ("a eq false", eq("a", False)),
    ("a eq null", eq("a", None)),
    ('a eq "true"', eq("a", "true")),
    # names containing keywords stay whole
    ("falseFlag eq true", eq("falseFlag", True)),
    ("trueValue pr", pr("trueValue")),
    ("nullable eq null", eq("nullable", None)),
    ("order pr", pr("order")),
    ('notes co "x"', Compare(p("notes"), "co", "x")),
    ('display eq "x"', eq("display", "x")),
    ("nested.orphan pr", pr("nested", "orphan")),
    ("andrew.notable pr", pr("andrew", "notable")),
    ("eqs eq 1", eq("eqs", 1)),
    ("prize pr", pr("prize")),
    # operators are case-insensitive
    ('userName EQ "x"', eq("userName", "x")),
    ("a Pr", A),
    ("a pr And b pr OR c pr", Or(And(A, B), C)),
    ("NOT (a pr)", Not(A)),
    ("a Eq 1 aNd b gE 2", And(eq("a", 1), Compare(p("b"), "ge", 2))),
    # value paths
    ('emails[type eq "work"]', ValuePath(p("emails"), eq("type", "work"))),
    (
        'emails[type eq "work"].value eq "x"',
        ValuePath(p("emails"), And(eq("type", "work"), eq("value", "x"))),
    ),
    (
        'emails[type eq "work"].value pr',
        ValuePath(p("emails"), And(eq("type", "work"), pr("value"))),
    ),
    ('emails[not (type eq "work")]', ValuePath(p("emails"), Not(eq("type", "work")))),
    (
        'emails[type eq "work" or primary eq true]',
        ValuePath(p("emails"), Or(eq("type", "work"), eq("primary", True))),
    ),
    ('not (emails[type eq "work"])', Not(ValuePath(p("emails"), eq("type", "work")))),
    ('members[$ref eq "x"]', ValuePath(p("members"), eq("$ref", "x"))),
    ('  userName   eq\t"x"  ', eq("userName", "x")),
]

INVALID_FILTERS = [
    ("", "empty"),
    ("   ", "empty"),
    ("userName", "end of filter"),
    ("userName eq", "end of filter"),
    ('userName eq "x" and', "end of filter"),
    ('userName regex "x"', "unexpected"),
    ("userName eq x", "unexpected"),
    ('userName eq "x', "unterminated string"),
    (r'a eq "\x41"', "bad escape"),
    (r'a eq "\u12"', "bad escape"),
    ("(a pr", "missing ')'"),
    ("a pr)", "unbalanced ')'"),
    ("(a pr]", "unbalanced ']'"),
    ("a[b pr", "missing ']'"),
    ("()", "unexpected"),
    ("[a pr]", "must follow an attribute name"),
    ("emails[type[value pr] pr]", "nested"),
    ("emails[value[x pr]]", "nested"),
    ("emails[a pr][b pr]", "must follow an attribute name"),
    ("name.givenName[a pr]", "must follow an attribute name"),
    ('emails.value[type eq "work"] eq "x"', "must follow an attribute name"),
    ('emails[type eq "work"] eq "x"', "needs a sub-attribute"),
    ("emails[name.x pr]", "plain sub-attribute"),
    (f"emails[{ENT}:x pr]", "plain sub-attribute"),
    ("not a pr", "unexpected"),
    ("a pr and and b pr", "unexpected"),
    ("a pr b pr", "unexpected"),
    ("a eq 01", "unexpected"),
    ("a eq 1.", "malformed number"),
    ("a eq .5", "unexpected"),
    ("a eq +1", "unexpected"),
    ("a eq 1e", "malformed number"),
    ("a eq --1", "malformed number"),
    ("a eq 1and b pr", "malformed number"),
    ("a eq 1e999", "out of range"),
    ("a eq " + "9" * 5000, "too long"),
    ('a eq "x"\nand b pr', "unexpected character"),
    ("x:y:z pr", "not a URN"),
    ("a$b pr", "invalid attribute name"),
    ("eq eq 1", "unexpected"),
    ("a.b.c pr", "unexpected"),
    ("a..b pr", "unexpected"),
    ("a eq [1]", "must follow an attribute name"),
    ("a eq {}", "unexpected character"),
    ("a eq true false", "unexpected"),
    ('"x" eq a', "unexpected"),
    # escapes of what no column holds: NUL (PostgreSQL text), a lone surrogate (not UTF-8)
    (r'a eq "a\u0000b"', "NUL"),
    ('a eq "a\x00b"', "NUL"),
    (r'a eq "a\ud800b"', "lone surrogate"),
    (r'a eq "\udc00\ud800"', "lone surrogate"),
    ("\x00", "unexpected character"),
    ("a pr or " * 1100 + "a pr", "longer than"),
    ("(" * (MAX_DEPTH + 1) + "a pr" + ")" * (MAX_DEPTH + 1), "deeper than"),
    ("not (" * (MAX_DEPTH + 1) + "a pr" + ")" * (MAX_DEPTH + 1), "deeper than"),
    # 26 bracket levels but 52 And/Or levels in the AST
    ("a pr or b pr and (" * 26 + "c pr" + ")" * 26, "deeper than"),
]

VALID_PATHS = [
    ("members", PatchPath(p("members"), None, None)),
    ("name.givenName", PatchPath(p("name", "givenName"), None, None)),
    ('members[value eq "2819c223"]', PatchPath(p("members"), eq("value", "2819c223"), None)),
    ('emails[type eq "work"].value', PatchPath(p("emails"), eq("type", "work"), "value")),
    (f"{ENT}:manager", PatchPath(p("manager", uri=ENT), None, None)),
    (ENT, PatchPath(p("", uri=ENT), None, None)),
    (CORE, PatchPath(p("", uri=CORE), None, None)),
    (f"{CORE}:name.givenName", PatchPath(p("name", "givenName", CORE), None, None)),
    (
        f'{CORE}:emails[type eq "work"].value',
        PatchPath(p("emails", uri=CORE), eq("type", "work"), "value"),
    ),
    (f"{ENT}:manager.value", PatchPath(p("manager", "value", ENT), None, None)),
    ('members[value eq "a]b"]', PatchPath(p("members"), eq("value", "a]b"), None)),
    (
        'emails[type eq "work" and primary eq true]',
        PatchPath(p("emails"), And(eq("type", "work"), eq("primary", True)), None),
    ),
    (
        'addresses[type eq "work"].streetAddress',
        PatchPath(p("addresses"), eq("type", "work"), "streetAddress"),
    ),
    ('members[value eq "x"].$ref', PatchPath(p("members"), eq("value", "x"), "$ref")),
    ("  displayName ", PatchPath(p("displayName"), None, None)),
    ("falseFlag", PatchPath(p("falseFlag"), None, None)),
    (
        "urn:acme:scim:Ext:costCenter",
        PatchPath(p("costCenter", uri="urn:acme:scim:Ext"), None, None),
    ),
    (ENT.upper() + ":Manager", PatchPath(p("Manager", uri=ENT.upper()), None, None)),
]

INVALID_PATHS = [
    ("", "empty"),
    ("   ", "empty"),
    ("a b", "invalid attribute path"),
    ("name.givenName.x", "invalid attribute path"),
    ("a.", "invalid attribute path"),
    (".a", "invalid attribute path"),
    ("1abc", "invalid attribute path"),
    ("a$b", "invalid attribute path"),
    ("x:y", "invalid attribute path"),
    ("a[", "missing ']'"),
    ("a]", "unbalanced ']'"),
    ("a[]", "invalid value filter"),
    ("a[b pr", "missing ']'"),
    ("a[b pr]x", "unexpected 'x'"),
    ("a[b pr].", "unexpected '.'"),
    ("a[b pr].c.d", "unexpected '.c.d'"),
    ("a[b pr][c pr]", "invalid value filter"),
    ("a[x[y pr]]", "invalid value filter"),
    ("a[b.c pr]", "plain sub-attribute"),
    ("a[urn:x:y:z pr]", "plain sub-attribute"),
    ('a[b eq "x]', "invalid value filter"),
    ("name.givenName[a pr]", "top-level attribute"),
    (f"{ENT}[value pr]", "top-level attribute"),
    ("urn:a:b:", "invalid schema URN"),
    ("urn:", "invalid schema URN"),
    ("urn:a b:c", "invalid schema URN"),
    ('emails[type eq "work"]value', "unexpected"),
    (r'members[value eq "a\u0000b"]', "NUL"),
    (r'members[value eq "a\uDFFFb"]', "lone surrogate"),
    ("a" * (MAX_LENGTH + 1), "longer than"),
]


@pytest.mark.parametrize(("text", "expected"), VALID_FILTERS, ids=[t for t, _ in VALID_FILTERS])
def test_parse_filter(text: str, expected: Expr) -> None:
    """Each valid filter parses to the expected AST, value types included."""
    result = parse_filter(text)
    assert result == expected
    assert repr(result) == repr(expected)


@pytest.mark.parametrize(
    ("text", "message"), INVALID_FILTERS, ids=[t[:40] for t, _ in INVALID_FILTERS]
)
def test_parse_filter_rejects(text: str, message: str) -> None:
    """Each malformed filter raises FilterError with a helpful message."""
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    assert message in str(info.value)


@pytest.mark.parametrize(("text", "expected"), VALID_PATHS, ids=[t for t, _ in VALID_PATHS])
def test_parse_path(text: str, expected: PatchPath) -> None:
    """Each valid PATCH path parses to the expected PatchPath."""
    assert parse_path(text) == expected


@pytest.mark.parametrize(("text", "message"), INVALID_PATHS, ids=[t[:40] for t, _ in INVALID_PATHS])
def test_parse_path_rejects(text: str, message: str) -> None:
    """Each malformed PATCH path raises PathError with a helpful message."""
    with pytest.raises(PathError) as info:
        parse_path(text)
    assert message in str(info.value)


@pytest.mark.parametrize("value", [None, 42, b"a pr", ["a pr"]])
def test_non_string_input_rejected(value: object) -> None:
    """Non-string input is a FilterError / PathError, not a TypeError."""
    with pytest.raises(FilterError):
        parse_filter(value)  # type: ignore[arg-type]
    with pytest.raises(PathError):
        parse_path(value)  # type: ignore[arg-type]


def test_known_schema_disambiguates_bare_urn() -> None:
    """A bare unversioned extension URN is recognised when listed in ``schemas``."""
    urn = "urn:acme:scim:Ext"
    assert parse_path(urn) == PatchPath(p("Ext", uri="urn:acme:scim"))
    assert parse_path(urn, schemas=[urn]) == PatchPath(p("", uri=urn))
    assert parse_path(f"{urn}:cost.center", schemas=[urn]) == PatchPath(p("cost", "center", urn))


def test_depth_limit_boundary() -> None:
    """Exactly MAX_DEPTH levels of nesting are accepted."""
    parens = "(" * MAX_DEPTH + "a pr" + ")" * MAX_DEPTH
    assert parse_filter(parens) == A
    nots = "not (" * MAX_DEPTH + "a pr" + ")" * MAX_DEPTH
    assert _depth(parse_filter(nots)) == MAX_DEPTH


def test_long_chain_is_balanced() -> None:
    """A near-8 KiB ``or`` chain parses into a shallow balanced tree."""
    text = " or ".join(f'id eq "{i}"' for i in range(500))
    assert len(text) < MAX_LENGTH
    result = parse_filter(text)
    assert _depth(result) == 9  # ceil(log2(500))
    assert _leaves(result) == [eq("id", str(i)) for i in range(500)]


def test_recursion_error_becomes_filter_error() -> None:
    """Running out of stack while parsing surfaces as FilterError."""
    text = "not (" * 40 + "a pr" + ")" * 40
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 30)
    try:
        with pytest.raises(FilterError, match="deeper than"):
            parse_filter(text)
    finally:
        sys.setrecursionlimit(limit)


# --- helpers ---------------------------------------------------------------------------

KEYWORDS = {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "or", "not"}
RESERVED = KEYWORDS | {"true", "false", "null"}
TRICKY_NAMES = ["falseFlag", "order", "notes", "display", "orphan", "nullable", "trueX", "prize"]


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def _depth(expr: Expr) -> int:
    if isinstance(expr, And | Or):
        return 1 + max(_depth(expr.left), _depth(expr.right))
    if isinstance(expr, Not):
        return 1 + _depth(expr.expr)
    if isinstance(expr, ValuePath):
        return 1 + _depth(expr.filter)
    return 0


def _leaves(expr: Expr) -> list[Expr]:
    if isinstance(expr, And | Or):
        return _leaves(expr.left) + _leaves(expr.right)
    return [expr]


def _path_text(path: AttrPath) -> str:
    text = f"{path.uri}:{path.attr}" if path.uri else path.attr
    return f"{text}.{path.sub}" if path.sub else text


def _value_text(value: object, ascii_only: bool) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only)
    return json.dumps(value) if value is None or isinstance(value, bool) else repr(value)


def render(expr: Expr, upper: bool = False, ascii_only: bool = True) -> str:
    """Render an AST as filter text, with the fewest parentheses precedence allows."""

    def kw(word: str) -> str:
        return word.upper() if upper else word

    def operand(child: Expr, parent: type) -> str:
        # Same-operator children are parenthesised so the parser does not re-balance them.
        needs = isinstance(child, Or) or (parent is And and isinstance(child, And))
        text = render(child, upper, ascii_only)
        return f"({text})" if needs else text

    if isinstance(expr, Compare):
        value = _value_text(expr.value, ascii_only)
        return f"{_path_text(expr.path)} {kw(expr.op)} {value}"
    if isinstance(expr, Present):
        return f"{_path_text(expr.path)} {kw('pr')}"
    if isinstance(expr, And | Or):
        op = kw("and" if isinstance(expr, And) else "or")
        return f"{operand(expr.left, type(expr))} {op} {operand(expr.right, type(expr))}"
    if isinstance(expr, Not):
        return f"{kw('not')} ({render(expr.expr, upper, ascii_only)})"
    return f"{_path_text(expr.path)}[{render(expr.filter, upper, ascii_only)}]"


# --- strategies ------------------------------------------------------------------------

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
names = st.builds(
    str.__add__, st.sampled_from(LETTERS), st.text(LETTERS + "0123456789_-", max_size=8)
).filter(lambda n: n.lower() not in RESERVED) | st.sampled_from(TRICKY_NAMES)
uris = st.sampled_from([CORE, ENT, "urn:acme:scim:ext", "URN:Acme:X"])
values = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),  # storable
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
ops = st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])


def leaves(paths: st.SearchStrategy[AttrPath]) -> st.SearchStrategy[Expr]:
    return st.builds(Compare, paths, ops, values) | st.builds(Present, paths)


def trees(leaf: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.recursive(
        leaf,
        lambda kids: st.builds(And, kids, kids) | st.builds(Or, kids, kids) | st.builds(Not, kids),
        max_leaves=10,
    )


relative_paths = st.builds(AttrPath, st.none(), names, st.none())
top_paths = st.builds(AttrPath, st.none() | uris, names, st.none() | names)
value_paths = st.builds(
    ValuePath,
    st.builds(AttrPath, st.none() | uris, names, st.none()),
    trees(leaves(relative_paths)),
)
filters = trees(leaves(top_paths) | value_paths)

TOKENS = [
    "a", "emails", "name.givenName", ".value", "type", "eq", "EQ", "ne", "co", "sw", "gt",
    "pr", "and", "Or", "not", "NOT", "(", ")", "[", "]", '"x"', r'"a\"b"', r'"\u00e9"', '"',
    "\\", ".", ":", "urn:", f"{ENT}:", f"{CORE}:name", "1", "-2.5e3", "0", "01", "1e999",
    "true", "false", "null", "falseFlag", "$ref", "\t", "\n", "é",
]  # fmt: skip
soup = st.lists(st.sampled_from(TOKENS), max_size=25).flatmap(
    lambda parts: st.sampled_from([" ", ""]).map(lambda sep: sep.join(parts))
)


# --- properties ------------------------------------------------------------------------


def _only_filter_errors(text: str) -> None:
    try:
        parse_filter(text)
    except FilterError as exc:
        assert str(exc)


@SETTINGS
@given(st.text())
def test_arbitrary_text_only_raises_filter_error(text: str) -> None:
    """Arbitrary text either parses or raises FilterError."""
    _only_filter_errors(text)


@SETTINGS
@given(soup)
def test_token_soup_only_raises_filter_error(text: str) -> None:
    """Random mixes of filter tokens either parse or raise FilterError."""
    _only_filter_errors(text)


@SETTINGS
@given(filters, st.booleans(), st.booleans())
def test_round_trip(expr: Expr, upper: bool, ascii_only: bool) -> None:
    """A rendered well-formed AST parses back to an equal AST."""
    assume(_depth(expr) <= MAX_DEPTH)
    text = render(expr, upper, ascii_only)
    assume(len(text.encode("utf-8", "surrogatepass")) <= MAX_LENGTH)
    result = parse_filter(text)
    assert result == expr
    assert repr(result) == repr(expr)


@SETTINGS
@given(st.text() | soup)
def test_arbitrary_path_only_raises_path_error(text: str) -> None:
    """Arbitrary text given to parse_path either parses or raises PathError."""
    try:
        parse_path(text)
    except PathError as exc:
        assert str(exc)


@SETTINGS
@given(
    st.builds(AttrPath, st.none() | uris, names, st.none() | names),
    st.none() | trees(leaves(relative_paths)),
    st.none() | names,
)
def test_path_round_trip(path: AttrPath, flt: Expr | None, value_sub: str | None) -> None:
    """A rendered PATCH path parses back to an equal PatchPath."""
    if flt is None:
        value_sub = None
    else:
        path = AttrPath(path.uri, path.attr, None)
    text = _path_text(path) + (f"[{render(flt)}]" if flt is not None else "")
    text += f".{value_sub}" if value_sub else ""
    assume(_depth(flt) <= MAX_DEPTH if flt is not None else True)
    assume(len(text.encode("utf-8", "surrogatepass")) <= MAX_LENGTH)
    assert parse_path(text) == PatchPath(path, flt, value_sub)
