"""Filters (RFC 7644 §3.4.2.2) compiled to SQLAlchemy expressions.

The parsed AST (``filter_parser``) is resolved against the resource type's
schemas and translated through an attribute map: indexed columns for what IdPs
look up (``id``, ``userName``, ``externalId``, group ``displayName``, member
ids), and the ``attribute_values`` index table for everything else. Values are
always bound parameters; nothing here builds SQL text.

Every leaf becomes ``id IN (SELECT resource_id ... WHERE <indexed lookup>)``
rather than a correlated EXISTS, so both SQLite and PostgreSQL drive the query
from the index instead of scanning the resource table.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, false, func, not_, or_, select, true

from scim_server.errors import InvalidFilterError
from scim_server.models import AttributeValue, Group, GroupMember, User
from scim_server.scim.filter_ast import (
    And,
    AttrPath,
    Compare,
    Expr,
    Not,
    Or,
    Present,
    ValuePath,
)
from scim_server.scim.schema import GROUP, PRODUCT_SCHEMA, USER, Attribute, ResourceType
from scim_server.services.members import (
    AllOf,
    AnyOf,
    MemberCondition,
    MemberField,
    MemberTest,
    NoneOf,
    compare_text,
    member_display_condition,
    member_key,
)
from scim_server.text import exact, fold

ORDERING_OPS = ("gt", "ge", "lt", "le")
# Comparisons whose SQL binds the compared text as it is (``co``/``sw``/``ew`` escape it
# into a LIKE pattern while the expression is built).
BINDABLE_OPS = ("eq", "ne", *ORDERING_OPS)


class Slot:
    """The ``index``-th string literal of a filter, in a translation made once per filter
    shape (``scim.filter_cache``): the compiler binds it as a parameter.

    Deliberately not a ``str``: a translation that reads a literal's text (a boolean's
    "true", a dateTime, ``meta.resourceType``) fails on it, and its shape is not cached.
    """

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class NotCacheableError(Exception):
    """A filter shape whose translation depends on its literals' text."""


# A parameter of a translated shape: the literal it is bound to, and the function that
# makes the compared value from it (``fold``, ``exact``; None: the literal as it is).
Bind = tuple[int, Any]


def alias_of(model: Any) -> Any:
    """The columns of a Core alias of ``model``'s table.

    Used like an ORM ``aliased()`` entity (``av.attr``), without the ORM's
    per-statement column adaptation, which cost more than the whole query of
    an indexed lookup.
    """
    return model.__table__.alias().c


# Aliases made once per process, handed out in order by each compiler (``alias``): making
# an alias's columns cost about 90 us, as much as the rest of an e-mail filter's translation.
# A statement never holds one alias twice (each compiler takes the next); statements may
# share them, as they share the tables.
_ALIASES: dict[Any, list[Any]] = {}
_ALIASES_LOCK = threading.Lock()


POOLED_ALIASES = 32  # per table; a filter of more leaves makes the rest afresh


def _nth_alias(model: Any, n: int) -> Any:
    if n >= POOLED_ALIASES:
        return alias_of(model)
    made = _ALIASES.get(model)
    if made is None or n >= len(made):
        with _ALIASES_LOCK:
            made = _ALIASES.setdefault(model, [])
            while len(made) <= n:
                made.append(alias_of(model))
    return made[n]


def attribute_key(core: str, urn: str, attr: str, sub: str | None) -> str:
    """The ``attribute_values.attr`` key: lower-case, URN-prefixed for extensions."""
    name = attr if sub is None else f"{attr}.{sub}"
    return (name if urn == core else f"{urn}:{name}").lower()


@dataclass(frozen=True)
class Leaf:
    """A resolved attribute reference."""

    urn: str
    attr: Attribute
    sub: Attribute | None

    @property
    def target(self) -> Attribute:
        return self.sub or self.attr

    @property
    def dotted(self) -> str:
        return self.attr.name if self.sub is None else f"{self.attr.name}.{self.sub.name}"


def _literal_for(leaf: Leaf, op: str, value: Any) -> Any:
    """Check the comparison value against the attribute type (RFC 7644 §3.4.2.2)."""
    kind = leaf.target.type
    if isinstance(value, Slot):
        # A string literal of a cached shape: only string attributes take it as it is.
        if kind in ("boolean", "binary", "complex", "dateTime", "integer", "decimal"):
            raise NotCacheableError(kind)
        return value
    if kind == "boolean":
        if op in ORDERING_OPS or op in ("co", "sw", "ew"):
            raise InvalidFilterError(f"Operator '{op}' cannot be used on boolean '{leaf.dotted}'.")
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise InvalidFilterError(f"'{leaf.dotted}' is boolean; compare it to true or false.")
        return value
    if kind == "binary":
        raise InvalidFilterError(f"Binary attribute '{leaf.dotted}' cannot be filtered.")
    if kind == "complex":
        raise InvalidFilterError(f"Complex attribute '{leaf.dotted}' needs a sub-attribute.")
    if kind == "dateTime":
        if not isinstance(value, str):
            raise InvalidFilterError(f"'{leaf.dotted}' is a dateTime; compare it to a string.")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidFilterError(f"'{value}' is not an xsd:dateTime.") from None
        if parsed.tzinfo is None:
            raise InvalidFilterError(f"'{value}' needs a time zone (e.g. Z).")
        return parsed
    if kind in ("integer", "decimal"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidFilterError(f"'{leaf.dotted}' is numeric; compare it to a number.")
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise InvalidFilterError(f"'{leaf.dotted}' is a string; compare it to a quoted string.")
    return value


def compare_plain(col: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op in ("co", "sw", "ew"):
        raise InvalidFilterError(f"Operator '{op}' needs a string attribute.")
    # Build only the comparison asked for: SQLAlchemy refuses `col > True`, so
    # evaluating every operator eagerly broke `active eq false` with a 500.
    if op == "eq":
        return col == value
    if op == "ne":
        return col != value
    if op == "gt":
        return col > value
    if op == "ge":
        return col >= value
    if op == "lt":
        return col < value
    return col <= value


class FilterCompiler:
    """Turns a filter AST into a WHERE clause for one resource type of one organization.

    With ``binds`` (a shape's translation, ``scim.filter_cache``), the AST's ``Slot``
    literals become bound parameters, each noted in ``binds`` by name; ``org_id`` is then
    a bound parameter too.

    ``others``: the other resource types a search at the root covers (RFC 7644 §3.4.3); an
    attribute of one of them that ``rt`` does not have reads as unassigned (``absent``),
    where it would otherwise be an unknown attribute.
    """

    def __init__(
        self,
        rt: ResourceType,
        org_id: Any,
        *,
        binds: dict[str, Bind] | None = None,
        others: tuple[ResourceType, ...] = (),
    ) -> None:
        self.rt = rt
        self.org_id = org_id
        self.model: Any = User if rt is USER else Group
        self._aliases: dict[Any, int] = {}
        self.binds = binds
        self.others = others

    def absent(self, path: AttrPath) -> bool:
        """Whether ``path`` names an attribute of another searched type only: RFC 7644
        §3.4.2.1, "for filtered attributes that are not part of a particular resource type,
        the service provider SHALL treat the attribute as if there is no attribute value".
        That type, which has it, checks the rest (sub-attribute, operator, value)."""
        return (
            bool(self.others)
            and self.rt.find(path.uri, path.attr) is None
            and any(other.find(path.uri, path.attr) is not None for other in self.others)
        )

    def value(self, literal: Any, op: str, make: Any = None, tag: str = "v") -> Any:
        """``make(literal)`` (the literal itself without ``make``) to compare with; for a
        ``Slot``, a parameter bound to it at each use."""
        if not isinstance(literal, Slot):
            return literal if make is None else make(literal)
        if self.binds is None or op not in BINDABLE_OPS:
            raise NotCacheableError(op)
        name = f"filter_{literal.index}_{tag}"
        self.binds[name] = (literal.index, make)
        return bindparam(name)

    def alias(self, model: Any) -> Any:
        """An alias of ``model``'s table that this compiler's expression holds nowhere else."""
        n = self._aliases.get(model, 0)
        self._aliases[model] = n + 1
        return _nth_alias(model, n)

    # -- resolution ------------------------------------------------------

    def resolve(self, path: AttrPath, parent: Leaf | None = None) -> Leaf:
        if parent is not None:
            if path.uri is not None or path.sub is not None:
                raise InvalidFilterError(f"'{path.attr}' must be a plain sub-attribute name.")
            sub = parent.attr.sub(path.attr)
            if sub is None:
                raise InvalidFilterError(f"Unknown sub-attribute '{parent.attr.name}.{path.attr}'.")
            return Leaf(parent.urn, parent.attr, sub)
        found = self.rt.find(path.uri, path.attr)
        if found is None:
            name = path.attr if path.uri is None else f"{path.uri}:{path.attr}"
            raise InvalidFilterError(f"Unknown attribute '{name}' for {self.rt.name}.")
        urn, attr = found
        if path.sub is None:
            return Leaf(urn, attr, None)
        sub = attr.sub(path.sub)
        if sub is None:
            raise InvalidFilterError(f"Unknown sub-attribute '{attr.name}.{path.sub}'.")
        return Leaf(urn, attr, sub)

    # -- expressions -----------------------------------------------------

    def compile(self, expr: Expr) -> ColumnElement[bool]:
        if isinstance(expr, And):
            return and_(self.compile(expr.left), self.compile(expr.right))
        if isinstance(expr, Or):
            return or_(self.compile(expr.left), self.compile(expr.right))
        if isinstance(expr, Not):
            return not_(self.compile(expr.expr))
        if isinstance(expr, ValuePath):
            # No value of an absent attribute matches a value filter.
            return false() if self.absent(expr.path) else self.value_path(expr)
        if isinstance(expr, Present | Compare):
            op = "pr" if isinstance(expr, Present) else expr.op
            value = None if isinstance(expr, Present) else expr.value
            if self.absent(expr.path):
                return _unassigned(op, value)
            leaf = self.resolve(expr.path)
            return self.leaf(leaf, op, value)
        raise InvalidFilterError("Unsupported filter expression.")

    def leaf(self, leaf: Leaf, op: str, value: Any) -> ColumnElement[bool]:
        # RFC 7644 §3.4.2.2: a complex multi-valued attribute compared without
        # a sub-attribute means its "value" (as in `emails co "@example.com"`).
        if leaf.sub is None and leaf.attr.type == "complex" and op != "pr":
            value_sub = leaf.attr.sub("value")
            if value_sub is None:
                raise InvalidFilterError(
                    f"Complex attribute '{leaf.attr.name}' needs a sub-attribute."
                )
            leaf = Leaf(leaf.urn, leaf.attr, value_sub)
        if op != "pr" and value is None:
            # `eq null` means "not present", `ne null` means present.
            if op not in ("eq", "ne"):
                raise InvalidFilterError(f"Operator '{op}' cannot compare with null.")
            present = self.leaf(leaf, "pr", None)
            return not_(present) if op == "eq" else present
        column = self.column_leaf(leaf, op, value)
        if column is not None:
            return column
        relation = self.relation_leaf(leaf, op, value)
        if relation is not None:
            return relation
        return self.indexed_leaf(leaf, op, value)

    # -- columns of the resource table ------------------------------------

    def column_leaf(self, leaf: Leaf, op: str, value: Any) -> ColumnElement[bool] | None:
        m = self.model
        name = leaf.dotted.lower()
        is_core = leaf.urn == self.rt.core
        if leaf.urn == PRODUCT_SCHEMA:
            return self.product_leaf(leaf, op, value)
        if not is_core:
            return None
        if op == "pr":
            presence = {
                "id": true(),
                "meta": true(),
                "meta.created": true(),
                "meta.lastmodified": true(),
                "meta.resourcetype": true(),
                "meta.location": true(),
                "meta.version": true(),
                "externalid": m.external_id.is_not(None),
            }
            if self.rt is USER:
                presence |= {"username": true(), "active": true()}
            else:
                presence |= {"displayname": true()}
            return presence.get(name)
        if name == "id":
            return compare_text(m.id, op, self.value(_literal_for(leaf, op, value), op))
        if name == "externalid":
            # externalId may be NULL: keep the result two-valued, so that `not (...)`
            # includes users without one and `ne` counts absent as not equal, as for
            # every other attribute (SQL's NULL != 'x' is NULL, not true).
            literal = _literal_for(leaf, op, value)
            cond = compare_text(m.external_id, op, self.value(literal, op, exact, "x"))
            if op == "ne":
                return or_(m.external_id.is_(None), cond)
            return and_(m.external_id.is_not(None), cond)
        if name in ("meta.created", "meta.lastmodified"):
            col = m.created_at if name == "meta.created" else m.updated_at
            return _compare_instant(col, op, _literal_for(leaf, op, value), value)
        if name == "meta.resourcetype":
            literal = _literal_for(leaf, op, value)
            if isinstance(literal, Slot):
                raise NotCacheableError(name)
            return true() if _matches_text(self.rt.name, op, literal) else false()
        if name.startswith("meta."):
            raise InvalidFilterError(f"'{leaf.dotted}' cannot be filtered.")
        if self.rt is USER and name == "username":
            literal = _literal_for(leaf, op, value)
            return compare_text(m.user_name_key, op, self.value(literal, op, fold, "f"))
        if self.rt is USER and name == "active":
            return compare_plain(m.active, op, _literal_for(leaf, op, value))
        if self.rt is GROUP and name == "displayname":
            literal = _literal_for(leaf, op, value)
            return compare_text(m.display_name_key, op, self.value(literal, op, fold, "f"))
        return None

    def product_leaf(self, leaf: Leaf, op: str, value: Any) -> ColumnElement[bool]:
        """The product extension is derived from columns, not the attribute index."""
        m = self.model
        name = leaf.dotted.lower()
        columns = {
            "status": (m.status, False),
            "username": (m.login_name_key, True),
            "contactid": (m.contact_id, False),
        }
        if name not in columns:
            raise InvalidFilterError(f"'{leaf.dotted}' cannot be filtered.")
        column, folded = columns[name]
        if op == "pr":
            return column.is_not(None)
        literal = _literal_for(leaf, op, value)
        if name == "status":
            if isinstance(literal, Slot):
                raise NotCacheableError(name)
            literal = literal.upper()
        return compare_text(column, op, self.value(literal, op, fold if folded else None, "f"))

    # -- memberships (rows of group_members) ------------------------------

    def relation_leaf(self, leaf: Leaf, op: str, value: Any) -> ColumnElement[bool] | None:
        name = leaf.attr.name.lower()
        if leaf.urn != self.rt.core or name not in ("members", "groups"):
            return None
        gm = self.alias(GroupMember)
        if op == "ne":
            # As in indexed_leaf: `members.value ne "x"` means no member is "x",
            # not "some member is other than x".
            return not_(self.relation_in(gm, self.relation_condition(gm, leaf, "eq", value)))
        return self.relation_in(gm, self.relation_condition(gm, leaf, op, value))

    def relation_in(self, gm: Any, cond: ColumnElement[bool]) -> ColumnElement[bool]:
        if self.rt is GROUP:
            sub = select(gm.group_id).where(gm.org_id == self.org_id, cond)
        else:
            sub = select(gm.member_id).where(gm.org_id == self.org_id, cond)
        return self.model.id.in_(sub)

    def relation_condition(self, gm: Any, leaf: Leaf, op: str, value: Any) -> ColumnElement[bool]:
        sub = (leaf.sub.name if leaf.sub else "value").lower()
        if op == "pr":
            return true() if sub in ("value", "type", "$ref") else self._display_cond(gm, op, None)
        if sub == "value":
            col = gm.member_id if self.rt is GROUP else gm.group_id
            # members.value / groups.value are caseExact false; ids are stored lower-case.
            literal = _literal_for(leaf, op, value)
            return compare_text(col, op, self.value(literal, op, member_key, "l"))
        if sub == "type":
            if self.rt is USER:
                # RFC 7643 §4.1.2 groups.type: "direct" (we store direct memberships only).
                literal = _literal_for(leaf, op, value)
                if isinstance(literal, Slot):
                    raise NotCacheableError(sub)
                return true() if _matches_text("direct", op, fold(literal)) else false()
            literal = _literal_for(leaf, op, value)
            return compare_text(func.lower(gm.member_type), op, self.value(literal, op, fold, "f"))
        if sub == "display":
            return self._display_cond(gm, op, _literal_for(leaf, op, value))
        raise InvalidFilterError(f"'{leaf.dotted}' cannot be filtered.")

    def _display_cond(self, gm: Any, op: str, value: Any) -> ColumnElement[bool]:
        if self.rt is USER:
            g = self.alias(Group)
            cond: ColumnElement[bool]
            if op == "pr" or value is None:
                cond = true()
            else:
                cond = compare_text(g.display_name_key, op, self.value(value, op, fold, "f"))
            return gm.group_id.in_(select(g.id).where(g.org_id == self.org_id, cond))
        if isinstance(value, Slot):
            raise NotCacheableError("members.display")
        return member_display_condition(gm, self.org_id, op, value)

    # -- the attribute_values index ----------------------------------------

    def value_condition(self, av: Any, leaf: Leaf, op: str, value: Any) -> ColumnElement[bool]:
        key = attribute_key(
            self.rt.core, leaf.urn, leaf.attr.name, leaf.sub.name if leaf.sub else None
        )
        if op == "pr":
            if leaf.target.type == "complex":
                keys = [
                    attribute_key(self.rt.core, leaf.urn, leaf.attr.name, s.name)
                    for s in leaf.attr.sub_attributes.values()
                ]
                return av.attr.in_(keys)
            return and_(av.attr == key, av.value_key != "")
        literal = _literal_for(leaf, op, value)
        cond = [av.attr == key]
        if isinstance(literal, bool):
            cond.append(compare_text(av.value_key, op, "true" if literal else "false"))
        elif isinstance(literal, int | float):
            if op in ORDERING_OPS:
                raise InvalidFilterError(f"Ordering on '{leaf.dotted}' is not supported.")
            cond.append(compare_text(av.value_key, op, _number_text(literal)))
        elif isinstance(literal, datetime):
            raise InvalidFilterError(f"'{leaf.dotted}' cannot be filtered.")
        else:
            cond.append(compare_text(av.value_key, op, self.value(literal, op, fold, "f")))
            if leaf.target.case_exact:
                cond.append(compare_text(av.value, op, self.value(literal, op, exact, "x")))
        return and_(*cond)

    def indexed_leaf(self, leaf: Leaf, op: str, value: Any) -> ColumnElement[bool]:
        av = self.alias(AttributeValue)
        positive_op = "eq" if op == "ne" else op
        if _false_when_absent(leaf, positive_op, value):
            # `emails.primary eq false`: some element (any of its rows) is not primary.
            cond = and_(av.attr.in_(self.element_keys(leaf)), self.not_true(av, leaf))
        else:
            cond = self.value_condition(av, leaf, positive_op, value)
        found = self.model.id.in_(select(av.resource_id).where(av.org_id == self.org_id, cond))
        # `ne` on an attribute means: no value equals it (absent counts as not equal).
        return not_(found) if op == "ne" else found

    # -- value paths: emails[type eq "work" and value co "@example.com"] --

    def value_path(self, expr: ValuePath) -> ColumnElement[bool]:
        parent = self.resolve(expr.path)
        if parent.attr.type != "complex":
            raise InvalidFilterError(f"'{parent.attr.name}' is not a complex attribute.")
        if parent.urn == self.rt.core and parent.attr.name.lower() in ("members", "groups"):
            gm = self.alias(GroupMember)
            return self.relation_in(gm, self._inner(expr.filter, parent, relation=gm))
        conjuncts = _conjuncts(expr.filter)
        driver_index = _pick_driver(conjuncts)
        e = self.alias(AttributeValue)
        if driver_index is not None:
            candidate = conjuncts[driver_index]
            assert isinstance(candidate, Compare)
            if _false_when_absent(
                self.resolve(candidate.path, parent), candidate.op, candidate.value
            ):
                # `primary eq false` holds for elements without a primary row: no driver.
                driver_index = None
        if driver_index is not None:
            driver = conjuncts.pop(driver_index)
            assert isinstance(driver, Compare)
            leaf = self.resolve(driver.path, parent)
            where = [self.value_condition(e, leaf, driver.op, driver.value)]
            if driver.value is None:
                raise InvalidFilterError("Compare with null inside a value path is not supported.")
        else:
            keys = [
                attribute_key(self.rt.core, parent.urn, parent.attr.name, s.name)
                for s in parent.attr.sub_attributes.values()
            ]
            where = [e.attr.in_(keys)]
        where += [self._inner(c, parent, element=e) for c in conjuncts]
        return self.model.id.in_(select(e.resource_id).where(e.org_id == self.org_id, *where))

    def _inner(
        self, expr: Expr, parent: Leaf, *, element: Any = None, relation: Any = None
    ) -> ColumnElement[bool]:
        """A filter on the sub-attributes of one element of ``parent``."""
        if isinstance(expr, And):
            return and_(
                *(
                    self._inner(x, parent, element=element, relation=relation)
                    for x in (expr.left, expr.right)
                )
            )
        if isinstance(expr, Or):
            return or_(
                *(
                    self._inner(x, parent, element=element, relation=relation)
                    for x in (expr.left, expr.right)
                )
            )
        if isinstance(expr, Not):
            return not_(self._inner(expr.expr, parent, element=element, relation=relation))
        if isinstance(expr, ValuePath):
            raise InvalidFilterError("Value paths cannot be nested.")
        assert isinstance(expr, Present | Compare)
        leaf = self.resolve(expr.path, parent)
        op = "pr" if isinstance(expr, Present) else expr.op
        value = None if isinstance(expr, Present) else expr.value
        if relation is not None:
            return self.relation_condition(relation, leaf, op, value)
        if op != "pr" and value is None:
            raise InvalidFilterError("Compare with null inside a value path is not supported.")
        positive_op = "eq" if op == "ne" else op
        if _false_when_absent(leaf, positive_op, value):
            found = self.not_true(element, leaf)
            return not_(found) if op == "ne" else found
        av = self.alias(AttributeValue)
        found = (
            select(av.resource_id)
            .where(
                av.org_id == self.org_id,
                av.resource_id == element.resource_id,
                av.pos == element.pos,
                self.value_condition(av, leaf, positive_op, value),
            )
            .exists()
        )
        return not_(found) if op == "ne" else found

    # -- boolean sub-attributes: an absent one reads false ----------------------------

    def element_keys(self, leaf: Leaf) -> list[str]:
        """The index keys of every sub-attribute of ``leaf``'s attribute: an element of it
        has a row under one of them."""
        return [
            attribute_key(self.rt.core, leaf.urn, leaf.attr.name, s.name)
            for s in leaf.attr.sub_attributes.values()
        ]

    def not_true(self, element: Any, leaf: Leaf) -> ColumnElement[bool]:
        """The element whose row ``element`` is holds no true ``leaf`` (a boolean
        sub-attribute): false or absent, as RFC 7643 §2.4 reads an absent ``primary``."""
        flag = self.alias(AttributeValue)
        key = attribute_key(self.rt.core, leaf.urn, leaf.attr.name, leaf.target.name)
        return not_(
            select(flag.resource_id)
            .where(
                flag.org_id == self.org_id,
                flag.resource_id == element.resource_id,
                flag.pos == element.pos,
                flag.attr == key,
                flag.value_key == "true",
            )
            .exists()
        )


def _false_when_absent(leaf: Leaf, op: str, value: Any) -> bool:
    """Whether ``leaf op value`` is `eq false` on a boolean sub-attribute, which holds for
    an element without it. RFC 7643 §2.4: "If not specified, the value of primary SHALL be
    assumed to be false" (primary is our schemas' only boolean sub-attribute)."""
    return (
        leaf.sub is not None
        and leaf.sub.type == "boolean"
        and op == "eq"
        and _literal_for(leaf, op, value) is False
    )


# Digits of a fraction of a second: xsd:dateTime allows any number (.NET writes seven).
_FRACTION = re.compile(r"[.,](\d+)")


def _compare_instant(col: Any, op: str, at: datetime, text: str) -> ColumnElement[bool]:
    """``col op text`` for a stored instant (whole microseconds); ``at`` is ``text`` parsed,
    which ``fromisoformat`` cuts to the microsecond. A bound with a non-zero part below the
    microsecond (``...39.6883499Z``) lies between two stored instants: none equals it, and
    ``lt``/``ge`` compare with the next microsecond (``le``/``gt`` with ``at`` already hold)."""
    fraction = _FRACTION.search(text)
    if fraction is None or not fraction.group(1)[6:].strip("0") or op not in BINDABLE_OPS:
        return compare_plain(col, op, at)
    if op == "eq":
        return false()
    if op == "ne":
        return true()
    if op in ("lt", "ge"):
        at += timedelta(microseconds=1)
    return compare_plain(col, op, at)


# Sub-attributes with few distinct values: an index lookup on them matches most
# elements, so they make poor drivers (`type eq "work"` is true for nearly everyone).
LOW_CARDINALITY = frozenset({"type", "primary", "display"})


def _pick_driver(conjuncts: list[Expr]) -> int | None:
    """The conjunct to drive the value-path lookup from: the most selective indexed one."""
    ranked = [
        ((c.op != "eq") + 2 * (c.path.attr.lower() in LOW_CARDINALITY), i)
        for i, c in enumerate(conjuncts)
        if isinstance(c, Compare) and c.op in ("eq", "sw") and c.value is not None
    ]
    return min(ranked)[1] if ranked else None


def _unassigned(op: str, value: Any) -> ColumnElement[bool]:
    """A comparison with an attribute without a value, as ``leaf`` reads one: ``pr`` is
    false, ``eq null`` true (not present), ``ne`` true (no value equals it), the rest false."""
    holds = (op == "eq" and value is None) or (op == "ne" and value is not None)
    return true() if holds else false()


def _conjuncts(expr: Expr) -> list[Expr]:
    if isinstance(expr, And):
        return _conjuncts(expr.left) + _conjuncts(expr.right)
    return [expr]


def _number_text(value: int | float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _matches_text(actual: str, op: str, value: str) -> bool:
    a, v = fold(actual), fold(value)
    return {
        "eq": a == v,
        "ne": a != v,
        "co": v in a,
        "sw": a.startswith(v),
        "ew": a.endswith(v),
        "gt": a > v,
        "ge": a >= v,
        "lt": a < v,
        "le": a <= v,
    }[op]


def sort_expression(
    rt: ResourceType, org_id: str, path: AttrPath, others: tuple[ResourceType, ...] = ()
) -> Any:
    """The ORDER BY expression for ``sortBy`` (RFC 7644 §3.4.2.3); None for an attribute of
    one of ``others`` only (``FilterCompiler.absent``): no resource of ``rt`` has a value."""
    compiler = FilterCompiler(rt, org_id, others=others)
    if compiler.absent(path):
        return None
    leaf = compiler.resolve(path)
    m = compiler.model
    if leaf.urn == PRODUCT_SCHEMA:
        # The server's view of the account (no attribute-value rows): filtered on its own
        # columns, not sortable; refused rather than answered in another order.
        raise InvalidFilterError(f"Cannot sort by '{PRODUCT_SCHEMA}:{leaf.dotted}'.")
    if leaf.sub is None and leaf.attr.type == "complex":
        primary = leaf.attr.sub("value")
        if primary is None:
            raise InvalidFilterError(f"Cannot sort by complex attribute '{leaf.attr.name}'.")
        leaf = Leaf(leaf.urn, leaf.attr, primary)
    name = leaf.dotted.lower()
    if leaf.urn == rt.core:
        columns = {
            "id": m.id,
            "externalid": m.external_id,
            "meta.created": m.created_at,
            "meta.lastmodified": m.updated_at,
        }
        if rt is USER:
            columns |= {"username": m.user_name_key, "active": m.active}
        else:
            columns |= {"displayname": m.display_name_key}
        if name in columns:
            return columns[name]
        if name.split(".")[0] in ("members", "groups", "meta"):
            raise InvalidFilterError(f"Cannot sort by '{leaf.dotted}'.")
    key = attribute_key(rt.core, leaf.urn, leaf.attr.name, leaf.sub.name if leaf.sub else None)
    av = alias_of(AttributeValue)
    if not leaf.attr.multi_valued:
        return (
            select(func.min(av.value_key))
            .where(av.org_id == org_id, av.resource_id == m.id, av.attr == key)
            .scalar_subquery()
        )
    # RFC 7644 §3.4.2.3: a multi-valued attribute sorts by "the value of the primary
    # attribute, if any, or else the first value in the list" (not the smallest value).
    rank: list[Any] = []
    if leaf.attr.sub("primary") is not None:
        flag = alias_of(AttributeValue)
        is_primary = (
            select(flag.resource_id)
            .where(
                flag.org_id == av.org_id,
                flag.resource_id == av.resource_id,
                flag.pos == av.pos,
                flag.attr == attribute_key(rt.core, leaf.urn, leaf.attr.name, "primary"),
                flag.value_key == "true",
            )
            .exists()
        )
        rank.append(case((is_primary, 0), else_=1))
    return (
        select(av.value_key)
        .where(av.org_id == org_id, av.resource_id == m.id, av.attr == key)
        .order_by(*rank, av.pos)
        .limit(1)
        .scalar_subquery()
    )


def member_selection(expr: Expr) -> MemberCondition:
    """The members a PATCH path like ``members[value eq "..."]`` names, checked and typed.

    The filter's sub-attributes and values are checked here, as in a list
    filter (RFC 7644 §3.4.2.2); the service turns the result into SQL.
    """
    compiler = FilterCompiler(GROUP, "")
    return _member_selection(compiler, compiler.resolve(AttrPath(None, "members", None)), expr)


def _member_selection(compiler: FilterCompiler, parent: Leaf, expr: Expr) -> MemberCondition:
    if isinstance(expr, And):
        return AllOf(
            (
                _member_selection(compiler, parent, expr.left),
                _member_selection(compiler, parent, expr.right),
            )
        )
    if isinstance(expr, Or):
        return AnyOf(
            (
                _member_selection(compiler, parent, expr.left),
                _member_selection(compiler, parent, expr.right),
            )
        )
    if isinstance(expr, Not):
        return NoneOf(_member_selection(compiler, parent, expr.expr))
    if isinstance(expr, ValuePath):
        raise InvalidFilterError("Value paths cannot be nested.")
    leaf = compiler.resolve(expr.path, parent)
    sub = (leaf.sub.name if leaf.sub else "value").lower()
    if isinstance(expr, Present):
        return MemberTest("display" if sub == "display" else "value", "pr")
    if sub not in ("value", "type", "display"):
        raise InvalidFilterError(f"'{leaf.dotted}' cannot be filtered.")
    literal = _literal_for(leaf, expr.op, expr.value)
    field: MemberField = "value" if sub == "value" else "type" if sub == "type" else "display"
    return MemberTest(field, expr.op, literal)
