"""Problem paths to editor lines."""

from __future__ import annotations

import pytest

from mappings.locate import line_of

TEXT = """\
mode: first-match
rules:
  - name: engineering
    when: {member_of: Engineering}
    then:
      license: Enginer
      roles: [Engineer, "odd key"]
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("$", 1),
        ("mode", 1),
        ("rules[0].then.license", 6),
        ("rules[0].when", 4),
        ("rules[0].then.roles[1]", 7),
        ("rules[0].then.missing", 6),  # a missing key: its parent mapping
        ("rules[9]", 3),  # a missing item: its list
    ],
)
def test_path_to_line(path: str, line: int) -> None:
    """Each path lands on the line where a person would fix it."""
    assert line_of(TEXT, path) == line


def test_quoted_keys_and_json_documents() -> None:
    """A quoted key step and a JSON document (YAML reads it) are followed too."""
    assert line_of('{\n  "a b": {\n    "c": 1\n  }\n}\n', '$["a b"].c') == 3


def test_syntax_error_line_comes_from_the_message() -> None:
    """A syntax error names its own line; unreadable text or path gives None."""
    assert line_of("a: [", "$", "YAML syntax error at line 3, column 1: x") == 3
    assert line_of("a: [", "a") is None
    assert line_of(TEXT, "rules[") is None


@pytest.mark.parametrize(
    "text",
    ["rules:\n" + "  - " * 500 + "x\n", "[" * 600, "{a: " * 600],
    ids=["list", "flow", "map"],
)
def test_deeply_nested_text_has_no_line(text: str) -> None:
    """Text nested past the parser's recursion (mappings.load: "nested too deeply") gives
    None, not a RecursionError."""
    assert line_of(text, "$", "document is nested too deeply") is None
    assert line_of(text, "rules[0]") is None
