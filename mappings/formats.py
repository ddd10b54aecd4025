"""Reading and writing rule-set documents as YAML or JSON.

Both formats load to the same JSON-like value, so a document can be edited in
YAML, stored as JSON, and exported again unchanged. YAML is read with the safe
loader, without aliases (no billion-laughs expansion) or implicit dates (a
``2024-01-01`` stays the string it looks like); an unquoted number is a number
only when written as it reads back (``42``, ``1.5``): YAML 1.1's other spellings
(``0123`` octal, ``0x1F``, ``1:30`` sexagesimal, ``1_000``, ``1.50``) stay the
strings written, as a rule compares them; duplicate keys are errors in
both formats, never a silent last-one-wins. PyYAML is imported only when YAML
is used, so ``import mappings`` needs nothing outside the standard library.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from mappings.model import Problem, RuleSet, RuleSetError
from mappings.text import path_at

FORMATS = ("yaml", "json")
MAX_DOCUMENT_CHARS = 1_000_000
MAX_NESTING = 100
_NEEDS_QUOTES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]")


class _DuplicateKeyError(ValueError):
    pass


def load(text: str, fmt: str) -> dict[str, Any]:
    """Parse a document; syntax problems raise ``RuleSetError`` with line and column."""
    _check_format(fmt)
    if not isinstance(text, str):
        raise TypeError("text must be a str")
    if len(text) > MAX_DOCUMENT_CHARS:
        _fail("$", f"document is larger than {MAX_DOCUMENT_CHARS} characters")
    try:
        value = _load_json(text) if fmt == "json" else _load_yaml(text)
    except RecursionError:
        _fail("$", "document is nested too deeply")
    if value is None:
        _fail("$", "document is empty")
    if not isinstance(value, dict):
        _fail("$", "must be an object (a mapping) at the top level")
    _check_json_like(value, "", 0)
    return value


def dump(document: Mapping[str, Any] | RuleSet, fmt: str) -> str:
    """Write a document (or a validated ``RuleSet``, canonically); ``load`` reads it back equal."""
    _check_format(fmt)
    if isinstance(document, RuleSet):
        document = document.to_document()
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    yaml = _yaml()
    return yaml.dump(
        document,
        Dumper=_dumper(),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
    )


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")


def _fail(path: str, message: str) -> Any:
    raise RuleSetError([Problem(path, message)])


def _load_json(text: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise _DuplicateKeyError(f'duplicate key "{key}"')
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise _DuplicateKeyError(f"{name} is not allowed")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        return _fail("$", f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    except _DuplicateKeyError as exc:
        return _fail("$", f"JSON: {exc}")


def _load_yaml(text: str) -> Any:
    yaml = _yaml()
    try:
        return yaml.load(text, Loader=_loader())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid document"
        return _fail("$", f"YAML syntax error{where}: {problem}")
    except yaml.YAMLError as exc:
        return _fail("$", f"YAML error: {exc}")


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a dependency
        raise RuntimeError("YAML rule sets need PyYAML (pip install pyyaml)") from None
    return yaml


_INT, _FLOAT, _STR = (f"tag:yaml.org,2002:{t}" for t in ("int", "float", "str"))
_CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]*")


def _reads_back(tag: str, text: str) -> bool:
    """Whether a plain scalar YAML 1.1 reads as a number is that number's own spelling (what
    ``dump`` writes for it): ``0123`` (octal 83), ``0x1F`` (31), ``1:30`` (sexagesimal 90),
    ``1_000`` or ``1.50`` are not, and a rule comparing with the number would not compare
    with what the admin wrote (``equals: 0123`` never matched "0123")."""
    if tag == _INT:
        return _CANONICAL_INT.fullmatch(text) is not None
    if text.lstrip("+-").lower() in (".inf", ".nan"):
        return True  # a number, for ``_check_json_like`` to refuse
    try:
        number = float(text)
    except ValueError:  # sexagesimal
        return False
    spelled = repr(number)
    if "." not in spelled and "e" in spelled:
        spelled = spelled.replace("e", ".0e", 1)  # as PyYAML's representer writes 1e17
    return text == spelled


@cache
def _loader() -> type:
    """A SafeLoader without aliases, implicit timestamps, numbers spelled otherwise than they
    read back (``_reads_back``: such plain scalars stay strings) or duplicate keys."""
    yaml = _yaml()

    class Loader(yaml.SafeLoader):  # type: ignore[name-defined]
        yaml_implicit_resolvers = {
            first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            tag = super().resolve(kind, value, implicit)
            # Only an untagged plain scalar: ``!!int 0x1F`` and ``"0123"`` say what they are.
            plain = kind is yaml.ScalarNode and implicit[0]
            if plain and tag in (_INT, _FLOAT) and not _reads_back(tag, value):
                return _STR
            return tag

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed", event.start_mark
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
            return super().construct_mapping(node, deep=deep)

    return Loader


@cache
def _dumper() -> type:
    """A SafeDumper that double-quotes strings PyYAML would otherwise not read back equal.

    PyYAML folds NEL and the Unicode line separators of plain and single-quoted
    scalars into spaces; in double quotes they are escaped and survive.
    """
    yaml = _yaml()

    class Dumper(yaml.SafeDumper):  # type: ignore[name-defined]
        pass

    def represent_str(dumper: Any, data: str) -> Any:
        style = '"' if _NEEDS_QUOTES.search(data) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, represent_str)
    return Dumper


def _check_json_like(value: Any, path: str, depth: int) -> None:
    """Only what JSON can hold: YAML tags such as ``!!binary`` or ``!!set`` are refused."""
    if depth > MAX_NESTING:
        _fail(path or "$", f"is nested deeper than {MAX_NESTING} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                _fail(path_at(path, str(key)), "keys must be strings (quote them in YAML)")
            _check_json_like(item, path_at(path, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_like(item, path_at(path, index), depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        _fail(path or "$", "infinite or NaN numbers are not allowed")
    elif value is not None and not isinstance(value, str | int | float | bool):
        _fail(
            path or "$",
            f"a {type(value).__name__} is not allowed: use a string, number, "
            "boolean, list or object",
        )
