"""Strict JSON request bodies.

Flask's ``get_json()`` accepts ``NaN``/``Infinity`` and duplicate keys (the
last silently wins) and raises ``RecursionError`` (a 500) on deep nesting.
An identity server must not guess which of two ``active`` values was meant,
so each of these is a clear 400 here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request

from scim_server.errors import InvalidSyntaxError, InvalidValueError
from scim_server.scim.errors import ScimError
from scim_server.text import UNSTORABLE

ACCEPTED_TYPES = ("application/scim+json", "application/json")
MAX_DEPTH = 32
# A decoded string holds NUL or a lone surrogate only through a \u escape: json refuses raw
# control characters and the text is strict UTF-8. A body without such an escape (nearly
# every one) has its strings left unchecked; the escape found may still be a pair or
# follow an escaped backslash, so it only calls for the check of each string.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _reject_constant(name: str) -> Any:
    raise InvalidSyntaxError(f"{name} is not valid JSON.")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidSyntaxError(f"Duplicate key {key!r} in the JSON body.")
        out[key] = value
    return out


def _no_duplicates_in_any_case(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """RFC 7643 §2.1: attribute names (and schema URNs) are case-insensitive, so
    ``{"active": false, "ACTIVE": true}`` names one attribute twice: which one a server
    keeps is a guess, and a leaver's ``active`` is not to be guessed."""
    out = _no_duplicates(pairs)
    seen: dict[str, str] = {}
    for key in out:
        first = seen.setdefault(key.lower(), key)
        if first != key:
            raise InvalidSyntaxError(
                f"Attribute {first!r} appears twice in one object, also as {key!r}: "
                "attribute names are case-insensitive (RFC 7643 §2.1)."
            )
    return out


def _check_text(text: str, where: str) -> None:
    found = UNSTORABLE.search(text)
    if found is None:
        return
    if found.group() == "\x00":
        raise InvalidValueError(f"NUL characters are not allowed in {where}.")
    raise InvalidValueError(
        f"Lone surrogates (\\ud800-\\udfff) are not allowed in {where}: they are not UTF-8;"
        " escape a character beyond U+FFFF as a surrogate pair."
    )


def _check_structure(value: Any, escapes: bool) -> None:
    """Depth limit; with ``escapes`` (the text escapes NUL or a surrogate), no key or string
    holding NUL (PostgreSQL text cannot) or a lone surrogate (not UTF-8: no column can)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidSyntaxError("The JSON body is nested too deeply.")
        if isinstance(node, dict):
            for key, item in node.items():
                if escapes:
                    _check_text(key, "attribute names")
                stack.append((item, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif escapes and isinstance(node, str):
            _check_text(node, "values")


def parse_json(raw: bytes, *, attribute_names: bool = False) -> Any:
    """Strict JSON; ``attribute_names``: every key is a SCIM attribute name or schema URN,
    so two keys equal but for case are refused too (a SCIM request's body)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSyntaxError("The request body is not valid UTF-8.") from None
    if not text.strip():
        raise InvalidSyntaxError("The request body is empty; a JSON object is required.")
    try:
        hook = _no_duplicates_in_any_case if attribute_names else _no_duplicates
        value = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=hook)
    except RecursionError:
        raise InvalidSyntaxError("The JSON body is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise InvalidSyntaxError(f"Malformed JSON: {exc.msg} at line {exc.lineno}.") from None
    _check_structure(value, _UNSTORABLE_ESCAPE.search(text) is not None)
    return value


def json_body() -> Any:
    """The request's JSON body, after checking its media type (RFC 7644 §3.1)."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # once, not per use
    mimetype = req.mimetype
    if mimetype and mimetype not in ACCEPTED_TYPES:
        raise ScimError(
            f"Unsupported content type {mimetype!r}; send application/scim+json.", status=415
        )
    return parse_json(req.get_data(cache=True), attribute_names=True)
