"""Parse SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2).

We reuse the SLY lexer/parser of ``scim2_filter_parser`` but wrap it because,
as released (0.7), it:

* gives ``and`` and ``or`` equal precedence, so ``a or b and c`` means
  ``(a or b) and c``;
* lexes numbers one digit at a time and strings without JSON escapes;
* matches ``true``/``false``/``null`` inside names (``falseFlag`` is
  ``false`` + ``Flag``) and cannot tell the literal ``true`` from ``"true"``;
* raises assorted exception types and accepts nested value paths.

The subclasses below fix the grammar and tokens; :func:`_convert` maps the
library's nodes to our frozen AST (:mod:`scim_server.scim.filter_ast`) and
every failure surfaces as :class:`FilterError` or :class:`PathError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable

from scim2_filter_parser import ast as lib
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser
from sly.lex import Token

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
from scim_server.text import UNSTORABLE

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "STRING",
    "lex",
    "parse_filter",
    "parse_path",
    "string_value",
]

MAX_LENGTH = 8192  # bytes of UTF-8
MAX_DEPTH = 50  # bracket nesting in the text, and And/Or/Not/ValuePath levels in the AST

# RFC 7643 §2.1: ATTRNAME = ALPHA *(nameChar); "$ref" is the one reserved exception.
_NAME = r"(?:[A-Za-z][A-Za-z0-9_-]*|\$ref)"
_NAME_RE = re.compile(rf"{_NAME}\Z")
_ATTR_RE = re.compile(rf"({_NAME})(?:\.({_NAME}))?\Z")
_SUB_RE = re.compile(rf"\.({_NAME})\Z")
_URN_RE = re.compile(r"urn:[A-Za-z0-9._-]+(?::[A-Za-z0-9._-]+)*\Z", re.IGNORECASE)
_VERSION_RE = re.compile(r"[0-9]+(?:\.[0-9]+)*\Z")

# RFC 7644 §3.4.2.2: attribute and logical operators are case-insensitive.
_OPERATORS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "or", "not")
_KEYWORDS = {op: op.upper() for op in _OPERATORS}
_LITERALS = {"true": True, "false": False, "null": None}
# RFC 7159 §7 string (raw control characters tolerated); ``filter_cache`` finds a known
# shape's literals with it. (In the lexer's class body an upper-case name is a token:
# hence the underscore.)
_STRING = r'"(?:[^"\\]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"'
# What a literal's escapes may spell but no column holds (``string_value``).


class _Lexer(SCIMLexer):
    """The library lexer with JSON numbers/strings and whole-word keywords."""

    tokens = SCIMLexer.tokens

    # The library's FALSE/TRUE/NULL regexes split names such as "falseFlag"; literals
    # are recognised as whole words in ATTRNAME below instead.
    del FALSE, TRUE, NULL  # type: ignore[name-defined]  # noqa: F821

    # RFC 7159 §6 number; must not run into a following name ("1and").
    @_(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_.$-])")  # type: ignore[name-defined]  # noqa: F821
    def NUMBER(self, t: Token) -> Token:
        is_int = not any(c in t.value for c in ".eE")
        try:
            t.value = int(t.value) if is_int else float(t.value)
        except ValueError:  # more digits than int() accepts
            raise FilterError(f"number at position {t.index} is too long") from None
        if isinstance(t.value, float) and not math.isfinite(t.value):
            raise FilterError(f"number at position {t.index} is out of range")
        return t

    # RFC 7159 §7 string, decoded.
    @_(_STRING)  # type: ignore[name-defined]  # noqa: F821
    def COMP_VALUE(self, t: Token) -> Token:
        t.value = string_value(t.value)
        return t

    @_(r"[a-zA-Z$][a-zA-Z0-9_$-]*")  # type: ignore[name-defined]  # noqa: F821
    def ATTRNAME(self, t: Token) -> Token:
        word = t.value.lower()
        if word in _KEYWORDS:
            t.type = _KEYWORDS[word]
        elif word in _LITERALS:  # JSON literal; typed so it differs from the string "true"
            t.type, t.value = word.upper(), _LITERALS[word]
        return t

    def error(self, t: Token) -> None:
        char = t.value[0]
        hint = " (malformed number)" if char in "-0123456789" else ""
        hint = " (unterminated string or bad escape)" if char == '"' else hint
        raise FilterError(f"unexpected character {char!r} at position {self.index}{hint}")


class _Parser(SCIMParser):
    """The library grammar with RFC precedence: ``not`` > ``and`` > ``or``."""

    tokens = _Lexer.tokens
    precedence = (("left", "OR"), ("left", "AND"), ("right", "NOT"))  # RFC 7644 §3.4.2.2
    # SLY builds a grammar only from the class's own namespace: re-bind the rules.
    filter = SCIMParser.filter
    value_path = SCIMParser.value_path
    attr_exp = SCIMParser.attr_exp
    log_exp = SCIMParser.log_exp
    comp_value = SCIMParser.comp_value
    attr_path = SCIMParser.attr_path
    sub_attr = SCIMParser.sub_attr
    source = ""

    def error(self, p: Token | None) -> None:
        if p is None:
            raise FilterError("unexpected end of filter")
        text = self.source[p.index : p.end]
        raise FilterError(f"unexpected {text!r} at position {p.index}")


def _tokens(text: str) -> list[Token]:
    """Lex ``text`` and check bracket balance and nesting before parsing."""
    tokens = list(_Lexer().tokenize(text))
    if not tokens:
        raise FilterError("filter is empty")
    stack: list[str] = []
    for prev, tok in zip([None, *tokens], tokens, strict=False):
        if tok.type in ("LPAREN", "LBRACKET"):  # RFC 7644 §3.4.2.2 grouping operators
            if tok.type == "LBRACKET" and (prev is None or prev.type != "ATTRNAME"):
                raise FilterError(f"'[' at position {tok.index} must follow an attribute name")
            stack.append(")" if tok.type == "LPAREN" else "]")
            if len(stack) > MAX_DEPTH:
                raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels")
        elif tok.type in ("RPAREN", "RBRACKET"):
            closer = ")" if tok.type == "RPAREN" else "]"
            if not stack or stack.pop() != closer:
                raise FilterError(f"unbalanced {closer!r} at position {tok.index}")
    if stack:
        raise FilterError(f"missing {stack[-1]!r} at end of filter")
    return tokens


def _name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise FilterError(f"invalid attribute name {name!r}")
    return name


def _attr(node: lib.AttrPath, relative: bool) -> AttrPath:
    """Convert a library attrPath; ``relative`` inside ``[...]`` (plain sub-attribute names)."""
    if isinstance(node.attr_name, lib.Filter):
        raise FilterError("a value filter '[...]' cannot be followed by another one")
    path = AttrPath(node.uri, _name(node.attr_name), node.sub_attr and _name(node.sub_attr.value))
    if path.uri is not None and not _URN_RE.match(path.uri):
        raise FilterError(f"schema prefix {path.uri!r} is not a URN")
    if relative and (path.uri or path.sub):
        raise FilterError(f"'{path}' inside '[...]' must be a plain sub-attribute name")
    return path


def _value_path(node: lib.Filter, relative: bool) -> tuple[AttrPath, Expr]:
    """Convert ``attr[filter]``; value paths never nest (RFC 7644 §3.4.2.2 valFilter)."""
    if relative:
        raise FilterError("value filters '[...]' cannot be nested")
    path = _attr(node.namespace, False)
    if path.sub is not None:
        raise FilterError(f"'[' must follow a top-level attribute, not '{path}'")
    return path, _convert(node.expr, True)


def _attr_expr(node: lib.AttrExpr, relative: bool) -> Expr:
    op, value, target = node.value.lower(), node.comp_value, node.attr_path.attr_name
    if not isinstance(target, lib.Filter):
        path = _attr(node.attr_path, relative)
        return Present(path) if value is None else Compare(path, op, value.value)
    # emails[type eq "work"].value eq "x" (sent by Entra ID): the library moved ".value"
    # onto the namespace. Normalise to emails[type eq "work" and value eq "x"].
    ns = target.namespace
    parent = lib.Filter(target.expr, False, lib.AttrPath(ns.attr_name, None, ns.uri))
    path, inner = _value_path(parent, relative)
    if ns.sub_attr is None:
        raise FilterError(f"'{op}' after ']' needs a sub-attribute, as in 'emails[...].value'")
    leaf = lib.AttrExpr(op, lib.AttrPath(ns.sub_attr.value, None, None), value)
    return ValuePath(path, And(inner, _attr_expr(leaf, True)))


def _convert(node: lib.AST, relative: bool) -> Expr:
    """Map library nodes to our AST; ``relative`` is True inside ``[...]``."""
    if isinstance(node, lib.AttrExpr):
        return _attr_expr(node, relative)
    if isinstance(node, lib.LogExpr):
        return _chain(node, relative)
    if not isinstance(node, lib.Filter):
        raise FilterError("unsupported filter construct")
    if node.namespace is not None:
        return ValuePath(*_value_path(node, relative))
    inner = _convert(node.expr, relative)
    return Not(inner) if node.negated else inner


def _chain(node: lib.LogExpr, relative: bool) -> Expr:
    """Convert an unparenthesised ``a and b and ...`` chain into a balanced tree.

    The library nests such chains one level per operator; walking them iteratively
    and balancing keeps both this code and AST consumers shallow on long input.
    A parenthesised group is wrapped in an extra ``Filter`` and stays one operand.
    """
    op = node.op.lower()
    operands: list[lib.AST] = []
    while True:
        operands.append(node.expr2)
        left = node.expr1
        # `filter -> log_exp` wraps once; a parenthesised group is Filter(Filter(...)).
        if not (isinstance(left, lib.Filter) and isinstance(left.expr, lib.LogExpr)):
            break
        if left.expr.op.lower() != op:
            break
        node = left.expr
    operands.append(left)
    items = [_convert(item, relative) for item in reversed(operands)]
    return _balance(And if op == "and" else Or, items)


def _balance(cls: type[And] | type[Or], items: list[Expr]) -> Expr:
    if len(items) == 1:
        return items[0]
    mid = (len(items) + 1) // 2
    return cls(_balance(cls, items[:mid]), _balance(cls, items[mid:]))


def _depth(expr: Expr) -> int:
    if isinstance(expr, And | Or):
        return 1 + max(_depth(expr.left), _depth(expr.right))
    if isinstance(expr, Not):
        return 1 + _depth(expr.expr)
    if isinstance(expr, ValuePath):
        return 1 + _depth(expr.filter)
    return 0


def _parse(text: str, relative: bool) -> Expr:
    if not isinstance(text, str):
        raise FilterError("filter must be a string")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_LENGTH:
        raise FilterError(f"filter is longer than {MAX_LENGTH} bytes")
    try:
        parser = _Parser()
        parser.source = text
        expr = _convert(parser.parse(iter(_tokens(text))), relative)
        if _depth(expr) > MAX_DEPTH:
            raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels")
    except FilterError:
        raise
    except RecursionError:
        raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels") from None
    except Exception as exc:  # library bugs must still be a client error
        raise FilterError(f"invalid filter: {exc}") from exc
    return expr


STRING = _STRING


def string_value(literal: str) -> str:
    """A string literal's value as the lexer reads it (JSON, control characters allowed);
    also ``filter_cache``'s, which cuts literals without the lexer.

    Its escapes may spell what no column holds: NUL (PostgreSQL text) or a lone UTF-16
    surrogate (not UTF-8 at all). Such a value could match nothing stored, so it is an
    invalid filter, not a 500 or an empty page."""
    value: str = json.loads(literal, strict=False)
    found = UNSTORABLE.search(value)
    if found is not None:
        if found.group() == "\x00":
            raise FilterError("a string value holds NUL (\\u0000), which cannot be stored")
        raise FilterError(
            "a string value holds a lone surrogate (\\ud800-\\udfff), which is not UTF-8;"
            " write a character beyond U+FFFF as a surrogate pair"
        )
    return value


def lex(text: str) -> list[Token]:
    """The tokens of a filter, brackets checked, as the parser gets them (``filter_cache``)."""
    return _tokens(text)


def parse_filter(text: str) -> Expr:
    """Parse a ``filter`` query parameter (RFC 7644 §3.4.2.2) into an :data:`Expr`."""
    return _parse(text, relative=False)


def _split_urn(head: str, schemas: Iterable[str]) -> tuple[str, str]:
    """Split ``urn:...:attr.sub`` into URN and rest (RFC 7644 §3.10); rest ``""`` if bare."""
    lowered = head.lower()
    for urn in sorted(schemas, key=len, reverse=True):
        if lowered == urn.lower():
            return head, ""
        if lowered.startswith(urn.lower() + ":"):
            return head[: len(urn)], head[len(urn) + 1 :]
    # URNs contain dots ("2.0"), so the attribute starts after the last ':'.
    urn, _, rest = head.rpartition(":")
    # "...:2.0:User" is itself a whole schema URN (a version is followed by a resource type).
    if _NAME_RE.match(rest) and _VERSION_RE.match(urn.rpartition(":")[2]):
        return head, ""
    return urn, rest


def parse_path(text: str, *, schemas: Iterable[str] = ()) -> PatchPath:
    """Parse a PATCH ``path`` (RFC 7644 §3.5.2): ``PATH = attrPath / valuePath [subAttr]``.

    ``schemas`` lists known schema URNs so that a bare URN without a version
    segment (``urn:acme:Ext``) is not taken for ``urn:acme`` + attribute ``Ext``.
    """
    if not isinstance(text, str):
        raise PathError("PATCH path must be a string")
    text = text.strip()
    if not text:
        raise PathError("PATCH path must not be empty")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_LENGTH:
        raise PathError(f"PATCH path is longer than {MAX_LENGTH} bytes")
    head, flt, value_sub = text, None, None
    if "[" in text:
        start, end = text.index("["), text.rfind("]")
        if end < start:
            raise PathError(f"missing ']' in path {text!r}")
        head, tail = text[:start], text[end + 1 :]
        if tail:
            match = _SUB_RE.match(tail)
            if not match:
                raise PathError(f"unexpected {tail!r} after ']' in path {text!r}")
            value_sub = match[1]
        try:
            flt = _parse(text[start + 1 : end], relative=True)
        except FilterError as exc:
            raise PathError(f"invalid value filter in path {text!r}: {exc}") from None
    elif "]" in text:
        raise PathError(f"unbalanced ']' in path {text!r}")
    uri, rest = None, head
    if head[:4].lower() == "urn:":
        uri, rest = _split_urn(head, schemas)
        if not _URN_RE.match(uri) or (not rest and uri != head):
            raise PathError(f"invalid schema URN {uri!r} in path {text!r}")
    match = _ATTR_RE.match(rest)
    if rest and not match:
        raise PathError(f"invalid attribute path {head!r} in path {text!r}")
    path = AttrPath(uri, match[1], match[2]) if match else AttrPath(uri, "")
    if flt is not None and (not path.attr or path.sub):
        raise PathError(f"'[' must follow a top-level attribute name in path {text!r}")
    return PatchPath(path, flt, value_sub)
