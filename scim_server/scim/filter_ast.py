"""Immutable AST for SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2).

Produced by :mod:`scim_server.scim.filter_parser`; consumers never see the
``scim2_filter_parser`` library's own node classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

Value: TypeAlias = str | int | float | bool | None
"""A JSON ``compValue``: string, number, ``true``/``false`` or ``null``."""

COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})


class FilterError(ValueError):
    """A filter that is malformed or unsupported (SCIM ``scimType`` ``invalidFilter``)."""


class PathError(ValueError):
    """A PATCH ``path`` that is malformed (SCIM ``scimType`` ``invalidPath``)."""


@dataclass(frozen=True, slots=True)
class AttrPath:
    """``[URI ":"] ATTRNAME ["." subAttr]``; ``attr`` is ``""`` for a bare schema URN path."""

    uri: str | None
    attr: str
    sub: str | None = None

    def __str__(self) -> str:
        text = f"{self.uri}:{self.attr}" if self.uri else self.attr
        return f"{text}.{self.sub}" if self.sub else text


@dataclass(frozen=True, slots=True)
class Compare:
    """``attrPath compareOp compValue``; ``op`` is lower-case, one of :data:`COMPARE_OPS`."""

    path: AttrPath
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class Present:
    """``attrPath pr``."""

    path: AttrPath


@dataclass(frozen=True, slots=True)
class And:
    """``left and right``."""

    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Or:
    """``left or right``."""

    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Not:
    """``not (expr)``."""

    expr: Expr


@dataclass(frozen=True, slots=True)
class ValuePath:
    """``attr[filter]``: ``filter`` applies to one value of a multi-valued attribute.

    ``path.sub`` is always None and the inner filter's paths are plain sub-attribute
    names (``uri`` and ``sub`` None); value paths never nest.
    """

    path: AttrPath
    filter: Expr


Expr: TypeAlias = Compare | Present | And | Or | Not | ValuePath


@dataclass(frozen=True, slots=True)
class PatchPath:
    """A PATCH ``path``: ``attrPath`` or ``valuePath [subAttr]`` (RFC 7644 §3.5.2).

    ``filter`` is the optional ``[...]`` value filter and ``value_sub`` the
    sub-attribute after it, as in ``emails[type eq "work"].value``.
    """

    path: AttrPath
    filter: Expr | None = None
    value_sub: str | None = None
