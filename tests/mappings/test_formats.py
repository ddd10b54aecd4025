"""Loading and dumping rule-set documents as YAML and JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings import RuleSetError, dump, load, validate
from mappings.formats import MAX_DOCUMENT_CHARS, MAX_NESTING

from .samples import LICENSES, ROLES

YAML_DOCUMENT = """\
mode: first-match        # or all-match
defaults:                # applied when no rule assigns a license / roles
  license: Planner
  roles: [Portal user]
rules:
  - name: engineering
    priority: 10
    when: {member_of: Engineering}
    then:
      license: Engineer
      roles: [Engineer]
      contact: {title: Engineer}
      username: "{given}.{family}"
      status: PROVISIONED
  - name: since
    when: {attribute: employeeNumber, equals: 2024-01-01}
    then: {}
"""
EXPECTED = {
    "mode": "first-match",
    "defaults": {"license": "Planner", "roles": ["Portal user"]},
    "rules": [
        {
            "name": "engineering",
            "priority": 10,
            "when": {"member_of": "Engineering"},
            "then": {
                "license": "Engineer",
                "roles": ["Engineer"],
                "contact": {"title": "Engineer"},
                "username": "{given}.{family}",
                "status": "PROVISIONED",
            },
        },
        {
            "name": "since",
            "when": {"attribute": "employeeNumber", "equals": "2024-01-01"},
            "then": {},
        },
    ],
}


def load_problem(text: str, fmt: str) -> tuple[str, str]:
    with pytest.raises(RuleSetError) as caught:
        load(text, fmt)
    [problem] = caught.value.problems
    return problem.path, problem.message


def test_yaml_document_loads_as_json_would():
    """The YAML of the design document loads to plain JSON types; dates stay strings."""
    assert load(YAML_DOCUMENT, "yaml") == EXPECTED
    assert load(json.dumps(EXPECTED), "json") == EXPECTED


@pytest.mark.parametrize(
    ("written", "loaded"),
    [
        # YAML 1.1 reads these as other numbers, or as numbers spelled otherwise: as written.
        ("0123", "0123"),  # octal 83
        ("0o17", "0o17"),
        ("0x1F", "0x1F"),  # 31
        ("0b101", "0b101"),  # 5
        ("1:30", "1:30"),  # sexagesimal 90
        ("1:30.5", "1:30.5"),  # 5430.5
        ("1_000", "1_000"),  # 1000
        ("+1", "+1"),
        ("-0", "-0"),
        ("1.50", "1.50"),  # 1.5
        (".5", ".5"),
        ("1.", "1."),
        ("1.0e+3", "1.0e+3"),  # 1000.0
        # A number written as it reads back (and as ``dump`` writes it) stays a number.
        ("0", 0),
        ("42", 42),
        ("-5", -5),
        ("1.5", 1.5),
        ("100.0", 100.0),
        ("1.0e+20", 1e20),
        ("1.0e-05", 1e-05),
        # Explicit: the author says what it is.
        ("!!int 0x1F", 31),
        ('"0123"', "0123"),
    ],
)
def test_a_yaml_number_is_a_number_only_as_it_reads_back(written, loaded):
    """``equals: 0123`` compared with "83" (YAML 1.1's octal) and never matched "0123":
    an unquoted number spelled otherwise than it reads back stays the text written."""
    document = load(f"when: {{attribute: costCenter, equals: {written}}}\n", "yaml")
    assert document == {"when": {"attribute": "costCenter", "equals": loaded}}
    assert type(document["when"]["equals"]) is type(loaded)
    assert load(dump(document, "yaml"), "yaml") == document


@pytest.mark.parametrize("written", ["0123", "1:30", "0x1F", "1.50"])
def test_a_yaml_rule_compares_with_the_value_as_written(written):
    """The validated rule compares with the text written, so it matches the user whose
    costCenter is that text (it compared with "83", "90", "31", "1.5")."""
    text = (
        "mode: first-match\n"
        "rules:\n"
        "  - name: cost-center\n"
        f"    when: {{attribute: costCenter, equals: {written}}}\n"
        "    then: {license: Engineer}\n"
    )
    ruleset = validate(load(text, "yaml"), licenses=LICENSES, roles=ROLES)
    assert ruleset.to_document()["rules"][0]["when"] == {
        "attribute": "costCenter",
        "equals": written,
    }


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_round_trip_is_stable(fmt):
    """dump then load gives the document back, and dumping again gives the same text."""
    text = dump(EXPECTED, fmt)
    assert load(text, fmt) == EXPECTED
    assert dump(load(text, fmt), fmt) == text
    assert list(load(text, fmt)) == ["mode", "defaults", "rules"]


def test_yaml_and_json_convert_into_each_other():
    """A document edited in YAML can be stored as JSON and exported back unchanged."""
    from_yaml = load(YAML_DOCUMENT, "yaml")
    assert load(dump(load(dump(from_yaml, "json"), "json"), "yaml"), "yaml") == EXPECTED


def test_dump_a_rule_set_canonically():
    """A validated RuleSet dumps as its canonical document, which validates to the same set."""
    ruleset = validate(load(YAML_DOCUMENT, "yaml"), licenses=LICENSES, roles=ROLES)
    text = dump(ruleset, "yaml")
    assert validate(load(text, "yaml"), licenses=LICENSES, roles=ROLES) == ruleset
    assert text.startswith("mode: first-match\ndefaults:\n  license: Planner\n")


def test_json_output_is_readable():
    """JSON is indented, keeps non-ASCII text as is and ends with a newline."""
    assert (
        dump({"rules": [], "defaults": {"license": "Ingénieur"}}, "json")
        == '{\n  "rules": [],\n  "defaults": {\n    "license": "Ingénieur"\n  }\n}\n'
    )


@pytest.mark.parametrize(
    ("text", "fmt", "path", "message"),
    [
        (
            '{"mode": "first-match",}',
            "json",
            "$",
            "JSON syntax error at line 1, column 24: Expecting property name enclosed in double quotes",
        ),
        ('{"mode": "a",\n "mode": "b"}', "json", "$", 'JSON: duplicate key "mode"'),
        ('{"priority": NaN}', "json", "$", "JSON: NaN is not allowed"),
        ('{"priority": Infinity}', "json", "$", "JSON: Infinity is not allowed"),
        ("[1, 2]", "json", "$", "must be an object (a mapping) at the top level"),
        ("null", "json", "$", "document is empty"),
        ("[" * 100_000 + "]" * 100_000, "json", "$", "document is nested too deeply"),
        (
            "mode: first-match\n  rules: []\n",
            "yaml",
            "$",
            "YAML syntax error at line 2, column 8: mapping values are not allowed here",
        ),
        (
            "rules:\n  - name: a\n    name: b\n",
            "yaml",
            "$",
            "YAML syntax error at line 3, column 5: duplicate key 'name'",
        ),
        (
            "a: &x [1]\nb: *x\n",
            "yaml",
            "$",
            "YAML syntax error at line 2, column 4: aliases (*name) are not allowed",
        ),
        (
            "rules: [\n",
            "yaml",
            "$",
            "YAML syntax error at line 2, column 1: expected the node content, but found '<stream end>'",
        ),
        (
            "mode: !!python/object:os.system x\n",
            "yaml",
            "$",
            "YAML syntax error at line 1, column 7: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'",
        ),
        (
            "? [a]\n: b\n",
            "yaml",
            "$",
            "YAML syntax error at line 1, column 3: found unhashable key",
        ),
        ("", "yaml", "$", "document is empty"),
        ("# only a comment\n", "yaml", "$", "document is empty"),
        ("- a\n", "yaml", "$", "must be an object (a mapping) at the top level"),
        (
            "mode: \udcff\n",
            "yaml",
            "$",
            'YAML error: unacceptable character #xdcff: special characters are not allowed\n  in "<unicode string>", position 6',
        ),
        ("rules: [{1: x}]\n", "yaml", 'rules[0]["1"]', "keys must be strings (quote them in YAML)"),
        (
            "defaults: {license: !!binary aGk=}\n",
            "yaml",
            "defaults.license",
            "a bytes is not allowed: use a string, number, boolean, list or object",
        ),
        (
            "rules: !!set {a, b}\n",
            "yaml",
            "rules",
            "a set is not allowed: use a string, number, boolean, list or object",
        ),
        (
            "rules: [{priority: .nan}]\n",
            "yaml",
            "rules[0].priority",
            "infinite or NaN numbers are not allowed",
        ),
        (
            "a: " + "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1) + "\n",
            "yaml",
            "a" + "[0]" * MAX_NESTING,
            f"is nested deeper than {MAX_NESTING} levels",
        ),
        (
            "x" * (MAX_DOCUMENT_CHARS + 1),
            "yaml",
            "$",
            f"document is larger than {MAX_DOCUMENT_CHARS} characters",
        ),
    ],
)
def test_load_errors(text, fmt, path, message):
    """Syntax and type problems are RuleSetErrors that say where and what."""
    assert load_problem(text, fmt) == (path, message)


def test_bad_arguments_are_programming_errors():
    """An unknown format or a non-string text is a ValueError or TypeError, not a RuleSetError."""
    with pytest.raises(ValueError, match="fmt must be one of yaml, json"):
        load("{}", "toml")
    with pytest.raises(ValueError, match="fmt must be one of yaml, json"):
        dump({}, "xml")
    with pytest.raises(TypeError):
        load(b"{}", "json")  # type: ignore[arg-type]


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_documents = st.dictionaries(
    st.text(),
    st.recursive(
        json_scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    ),
    max_size=6,
)


@given(json_documents, st.sampled_from(["yaml", "json"]))
def test_round_trip_property(document, fmt):
    """Any JSON document survives dump and load unchanged, and dumps to the same text again."""
    text = dump(document, fmt)
    assert load(text, fmt) == document
    assert dump(load(text, fmt), fmt) == text


@pytest.mark.parametrize(
    "value",
    [
        "\x85",
        "a\u2028b",
        "\u2029",
        "\ufeffx",
        "tab\there",
        "bell\x07",
        "lone \ud800 surrogate",
        "line\nbreak",
        "  padded  ",
        "yes",
        "2024-01-01",
        "0x1F",
        "~",
        "null",
        "'",
        '"',
        "#",
        "- a",
        "{a}",
    ],
)
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_awkward_strings_round_trip(value, fmt):
    """Strings YAML treats specially (line separators, BOM, booleans, dates) come back equal."""
    document = {value: [value], "k": value}
    assert load(dump(document, fmt), fmt) == document
