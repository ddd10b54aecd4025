"""Where a problem is in the text a person wrote: the line of a document path (``rules[0].then``).

Rule-set problems name a path in the loaded document; an editor wants a line.
The text is composed again (PyYAML's node tree keeps each node's position; a
JSON document is YAML too), and the path is followed as far as it goes: a
missing key points at its parent mapping. Syntax errors already say their line.
"""

from __future__ import annotations

import json
import re
from typing import Any

_STEP = re.compile(r'\.([^.\[]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')
_SYNTAX_LINE = re.compile(r"\bline (\d+)\b")


def _steps(path: str) -> list[str | int] | None:
    if path in ("", "$"):
        return []
    text = path[1:] if path.startswith("$") else "." + path if not path.startswith("[") else path
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _STEP.match(text, pos)
        if match is None:
            return None
        plain, index, quoted = match.groups()
        if plain is not None:
            steps.append(plain)
        elif index is not None:
            steps.append(int(index))
        else:
            steps.append(str(json.loads(quoted)))
        pos = match.end()
    return steps


def _compose(text: str) -> Any:
    """The node tree of ``text``, or None when it cannot be composed: a syntax error, or
    nesting past Python's recursion limit (``formats.load`` reports that one as "nested
    too deeply" at ``$``; composing again hits the same limit)."""
    import yaml

    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None


def line_of(text: str, path: str, message: str = "") -> int | None:
    """The 1-based line of ``path`` in ``text`` (or of a syntax error in ``message``), if found."""
    found = _SYNTAX_LINE.search(message)
    if found and "syntax error" in message:
        return int(found.group(1))
    steps = _steps(path)
    if steps is None:
        return None
    node = _compose(text)
    if node is None:
        return None
    for step in steps:
        child = None
        if isinstance(step, int) and node.tag.endswith(":seq") and step < len(node.value):
            child = node.value[step]
        elif isinstance(step, str) and node.tag.endswith(":map"):
            for key, value in node.value:
                if getattr(key, "value", None) == step:
                    child = value
                    break
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1
