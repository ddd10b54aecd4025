"""Which members of a group a change concerns, and how the service finds them in SQL.

The SCIM layer turns a PATCH path such as ``members[value eq "..."]`` into a
``MemberCondition`` (validated, values already typed); this module is the only
place that turns one into a condition on ``group_members`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, true

from scim_server.models import AttributeValue, Group, GroupMember, User
from scim_server.text import fold

Doc = dict[str, Any]
MemberField = Literal["value", "type", "display"]


def member_key(member_id: str) -> str:
    """A member's (or a user's group's) id as stored, for comparing with a given one.

    RFC 7643 §4.2 / §4.1.2: ``members.value`` and ``groups.value`` are caseExact false (as
    /Schemas says), so an id an IdP sends upper-cased (Okta's ``members[value eq "..."]``)
    names the same member. Ids are made lower-case (``str(uuid4())``): lower-casing the
    given one compares without case while the id columns' indexes still serve the lookup.
    """
    return member_id.lower()


@dataclass(frozen=True)
class MemberTest:
    """``field op value`` on a member; ``op`` ``pr`` (present) takes no value."""

    field: MemberField
    op: str
    value: str | None = None


@dataclass(frozen=True)
class AllOf:
    parts: tuple[MemberCondition, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[MemberCondition, ...]


@dataclass(frozen=True)
class NoneOf:
    """Negation: the members that do not match ``part``."""

    part: MemberCondition


MemberCondition: TypeAlias = MemberTest | AllOf | AnyOf | NoneOf


@dataclass(frozen=True)
class MemberChange:
    """One membership change: the one type for "which members".

    ``kind`` is ``add``, ``remove`` (the listed ``values``, member references
    ``{"value", "type"?, "display"?}``), ``replace`` (the members become
    ``values``), ``clear``, or ``remove_where`` (the members matching ``where``;
    with ``must_match``, at least one).
    """

    kind: Literal["add", "remove", "replace", "clear", "remove_where"]
    values: tuple[Doc, ...] = ()
    where: MemberCondition | None = None
    # ``remove_where`` only: a change that matches no member is refused (noTarget), as a
    # replace through a filter that matches nothing is (RFC 7644 §3.5.2.3).
    must_match: bool = False


def compare_text(col: Any, op: str, value: str) -> ColumnElement[bool]:
    """Compare a column holding pre-normalised text; LIKE wildcards in values are literal."""
    if op == "eq":
        return col == value
    if op == "ne":
        return col != value
    if op == "co":
        return col.contains(value, autoescape=True)
    if op == "sw":
        return col.startswith(value, autoescape=True)
    if op == "ew":
        return col.endswith(value, autoescape=True)
    return {"gt": col > value, "ge": col >= value, "lt": col < value, "le": col <= value}[op]


def member_display_condition(
    gm: Any, org_id: str, op: str, value: str | None
) -> ColumnElement[bool]:
    """Members whose display compares with ``value`` (``gm``: group_members or an alias).

    RFC 7643 §4.2: the display compared is the one the group shows for the member
    (``groups.members_of``): the one the client set when adding it, else a user's
    displayName, else its userName, or a group's displayName. Each is compared by
    its folded key, as every ``display`` filter is: the stored display's, the user's
    displayName's index row (a displayName too long to index, ``indexing.MAX_INDEXED``,
    matches nothing, as in a filter on the user's displayName), the userName's and the
    group's name's columns.
    """
    if op == "pr":
        return true()  # every member shows one: a userName or a group's name at least
    folded = fold(value or "")
    av = AttributeValue.__table__.alias().c
    u = User.__table__.alias().c
    ug = Group.__table__.alias().c
    # The attribute index holds a displayName row only for a user that has one.
    by_display_name = select(av.resource_id).where(
        av.org_id == org_id, av.attr == "displayname", compare_text(av.value_key, op, folded)
    )
    by_user_name = select(u.id).where(
        u.org_id == org_id,
        u.display_name.is_(None),
        compare_text(u.user_name_key, op, folded),
    )
    by_group_name = select(ug.id).where(
        ug.org_id == org_id, compare_text(ug.display_name_key, op, folded)
    )
    derived = or_(
        and_(
            gm.member_type == "User",
            or_(gm.member_id.in_(by_display_name), gm.member_id.in_(by_user_name)),
        ),
        and_(gm.member_type == "Group", gm.member_id.in_(by_group_name)),
    )
    return or_(
        and_(gm.display_key.is_not(None), compare_text(gm.display_key, op, folded)),
        and_(gm.display_key.is_(None), derived),
    )


def member_sql(org_id: str, cond: MemberCondition) -> ColumnElement[bool]:
    """The condition on ``group_members`` rows that selects the members ``cond`` names."""
    if isinstance(cond, AllOf):
        return and_(*(member_sql(org_id, part) for part in cond.parts))
    if isinstance(cond, AnyOf):
        return or_(*(member_sql(org_id, part) for part in cond.parts))
    if isinstance(cond, NoneOf):
        return not_(member_sql(org_id, cond.part))
    if cond.field == "display":
        return member_display_condition(GroupMember, org_id, cond.op, cond.value)
    if cond.op == "pr":
        return true()
    assert cond.value is not None, "only pr compares without a value"
    if cond.field == "value":
        # caseExact false: the stored ids are lower-case (``member_key``).
        return compare_text(GroupMember.member_id, cond.op, member_key(cond.value))
    return compare_text(func.lower(GroupMember.member_type), cond.op, fold(cond.value))
