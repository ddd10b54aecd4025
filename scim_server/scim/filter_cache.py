"""Filters translated once per shape (issue 17): ``userName eq "..."`` is one shape.

A filter's shape is its text with each string literal replaced by a mark (the
lexer's own string tokens, so a shape lexes as its filters do). The first filter
of a shape is parsed and translated once, its literals bound as parameters
(``filters.Slot``), into the count and page statements of the default order
(``paging.PreparedPage``); each later filter of that shape is only cut at its string
literals (``_quick_shape``: a regular expression, not the lexer), and its literals
bound. The parser sees tokens only, so every filter of a shape parses to the same tree
but for its literals; a translation that would read a literal's text (a boolean's
"true", a dateTime, a ``co``/``sw``/``ew`` pattern, ``meta.resourceType``) refuses to be
made, and that shape takes the full path every time (``filters.NotCacheableError``).

Anything unusual (an invalid filter, a shape that cannot be made) goes the full
path, which gives the same answer or the same error as without this cache.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from scim_server.scim.filter_ast import And, Compare, Expr, Not, Or, ValuePath
from scim_server.scim.filter_parser import MAX_LENGTH, STRING, lex, parse_filter, string_value
from scim_server.scim.filters import Bind, FilterCompiler, Slot
from scim_server.scim.schema import ResourceType
from scim_server.services.paging import PreparedPage

MAX_SHAPES = 256  # per app; the least recently used shape goes first
# A literal's mark in a shape: private-use characters, a JSON string as it is.
_MARK = "\ue000{}\ue001"
_MARK_RE = re.compile("\ue000([0-9]+)\ue001\\Z")
# A string literal as the lexer matches one (``filter_parser._Lexer.COMP_VALUE``).
_STRING_RE = re.compile(STRING)


@dataclass(frozen=True)
class FilterTemplate:
    """One shape's statements, and what each of their parameters is made from."""

    page: PreparedPage
    binds: dict[str, Bind]

    def params(self, org_id: str, literals: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"org_id": org_id}
        for name, (index, make) in self.binds.items():
            literal = literals[index]
            out[name] = literal if make is None else make(literal)
        return out


def shape_of(text: str) -> tuple[str, list[str]] | None:
    """(shape, string literals in order) of a filter, or None where the full path decides
    (too long, or not lexed: the full path raises the error)."""
    if _too_long(text):
        return None
    try:
        tokens = lex(text)
    except Exception:
        return None
    parts: list[str] = []
    literals: list[str] = []
    at = 0
    for tok in tokens:
        if tok.type == "COMP_VALUE":
            parts += [text[at : tok.index], f'"{_MARK.format(len(literals))}"']
            literals.append(tok.value)
            at = tok.end
    parts.append(text[at:])
    return "".join(parts), literals


def _quick_shape(text: str) -> tuple[str, list[str]] | None:
    """``shape_of(text)`` for a filter whose shape is known, found without the lexer
    (issue 17: lexing was the larger part of a ``userName eq`` lookup's filter work).

    No token but a string literal holds a ``"``, and the lexer matches a literal where
    its ``"`` stands, as far as ``_STRING_RE`` reaches; so where every ``"`` of the text
    is part of such a match, the text's string literals are those matches and the rest
    of the text its other tokens. A shape in the cache was lexed (and its brackets
    checked) once: a text with the same shape has the same tokens but for the literals'
    values, and lexes as well. None where a ``"`` does not open a literal (the lexer's
    error); a shape not yet known takes ``shape_of``.
    """
    parts: list[str] = []
    literals: list[str] = []
    at = 0
    for found in _STRING_RE.finditer(text):
        start = found.start()
        if text.find('"', at, start) != -1:
            return None
        literal = found.group()
        parts += [text[at:start], f'"{_MARK.format(len(literals))}"']
        # As the lexer reads it (``string_value``): without a backslash, the text itself.
        literals.append(literal[1:-1] if "\\" not in literal else string_value(literal))
        at = found.end()
    if text.find('"', at) != -1:
        return None
    parts.append(text[at:])
    return "".join(parts), literals


def _too_long(text: str) -> bool:
    """Longer than the parser takes (``MAX_LENGTH`` bytes of UTF-8; a character is at
    most 4 of them, so a short text is not encoded)."""
    return len(text) > MAX_LENGTH // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_LENGTH


def _slotted(expr: Expr) -> Expr:
    """``expr`` with each marked literal replaced by its ``Slot``."""
    if isinstance(expr, Compare) and isinstance(expr.value, str):
        found = _MARK_RE.match(expr.value)
        if found is None:  # cannot happen: every string literal of a shape is a mark
            raise ValueError("unmarked literal in a filter shape")
        return replace(expr, value=Slot(int(found[1])))  # type: ignore[arg-type]
    if isinstance(expr, And | Or):
        return replace(expr, left=_slotted(expr.left), right=_slotted(expr.right))
    if isinstance(expr, Not):
        return replace(expr, expr=_slotted(expr.expr))
    if isinstance(expr, ValuePath):
        return replace(expr, filter=_slotted(expr.filter))
    return expr


def _template(rt: ResourceType, shape: str) -> FilterTemplate | None:
    """The shape's translation, or None when it depends on its literals (or fails: the
    full path then says why)."""
    binds: dict[str, Bind] = {}
    try:
        compiler = FilterCompiler(rt, bindparam("org_id"), binds=binds)
        where = compiler.compile(_slotted(parse_filter(shape)))
        page = PreparedPage.of(compiler.model, where)
    except Exception:
        return None
    # A literal that reached the statement other than through a bound parameter
    # (``FilterCompiler.value``) would be the first filter's value for every filter.
    for element in visitors.iterate(page.rows):
        if isinstance(element, BindParameter):
            value = element.value
            held = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(v, Slot) for v in held):
                return None
    if _one_row(compiler.model, where):
        page = PreparedPage.of(compiler.model, where, reuse=True)
    return FilterTemplate(page, binds)


def _one_row(model: Any, where: Any) -> bool:
    """Whether ``where`` is one equality on a column unique in an organization (a unique
    index on it and ``org_id``: ``userName eq``, a group's ``displayName eq``): one row at
    most, whatever the value, so its statements may reuse a generic plan
    (``db.reuse_plan``). Every other filter is planned with its values: a generic plan
    of ``emails[type eq "work"].value eq`` read every work e-mail of the organization."""
    if not isinstance(where, BinaryExpression) or where.operator is not operators.eq:
        return False
    pairs = [tuple(index.columns) for index in model.__table__.indexes if index.unique]
    keys = [key for org, key in (p for p in pairs if len(p) == 2) if org.name == "org_id"]
    return any(where.left.compare(column) for column in keys)


class FilterCache:
    """The app's translated shapes (``None``: a shape that takes the full path)."""

    def __init__(self, size: int = MAX_SHAPES) -> None:
        self._shapes: OrderedDict[tuple[str, str], FilterTemplate | None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def lookup(self, rt: ResourceType, text: str) -> tuple[FilterTemplate, list[str]] | None:
        """The template of ``text``'s shape and its literals, or None (take the full path)."""
        if _too_long(text):
            return None
        quick = _quick_shape(text)
        if quick is not None:
            key = (rt.name, quick[0])
            with self._lock:
                known = key in self._shapes
                if known:
                    template = self._shapes[key]
                    self._shapes.move_to_end(key)
            if known:
                return None if template is None else (template, quick[1])
        shaped = shape_of(text)
        if shaped is None:
            return None
        shape, literals = shaped
        key = (rt.name, shape)
        with self._lock:
            known = key in self._shapes
            template = self._shapes.get(key)
            if known:
                self._shapes.move_to_end(key)
        if not known:
            template = _template(rt, shape)
            with self._lock:
                self._shapes[key] = template
                while len(self._shapes) > self._size:
                    self._shapes.popitem(last=False)
        return None if template is None else (template, literals)

    def __len__(self) -> int:
        with self._lock:
            return len(self._shapes)
