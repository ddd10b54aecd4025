"""Keeps the ``attribute_values`` search index in step with a resource document."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import bindparam, delete, insert, update
from sqlalchemy.orm import Session

from scim_server.db import reuse_plan
from scim_server.fixed import Fixed
from scim_server.models import AttributeValue
from scim_server.text import fold

# Values longer than this are not searchable (only binary data, such as
# certificates, can be longer); it keeps every index entry within PostgreSQL's
# btree row limit.
MAX_INDEXED = 512
NOT_INDEXED = frozenset({"password", "username", "externalid", "active", "members", "groups"})


def _text(value: Any) -> str | None:
    if type(value) is str:  # the usual value: one test
        return value if len(value) <= MAX_INDEXED else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, str):
        return value if len(value) <= MAX_INDEXED else None
    return None


def index_rows(org_id: str, resource_id: str, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten a canonical document into (attr, pos, value) rows.

    Every create and most PATCHes run it (a user's ~12 rows): one loop over the leaves,
    without a closure per value."""
    rows: list[dict[str, Any]] = []
    append = rows.append
    for name, value in doc.items():
        if ":" in name and isinstance(value, dict):
            attrs = [
                (f"{name}:{ext_name}".lower(), ext_value) for ext_name, ext_value in value.items()
            ]
        elif name.lower() not in NOT_INDEXED:
            attrs = [(name.lower(), value)]
        else:
            continue
        for key, attr_value in attrs:
            for attr, pos, leaf in _leaves(key, attr_value):
                text = _text(leaf)
                if text is not None:
                    append(
                        {
                            "org_id": org_id,
                            "resource_id": resource_id,
                            "attr": attr,
                            "pos": pos,
                            "value": text,
                            "value_key": fold(text),
                        }
                    )
    return rows


def _leaves(key: str, value: Any) -> list[tuple[str, int, Any]]:
    """One attribute's (attr, pos, value): each item, or a complex item's simple sub-attributes."""
    leaves: list[tuple[str, int, Any]] = []
    for pos, item in enumerate(value if isinstance(value, list) else (value,)):
        if isinstance(item, dict):
            leaves += [
                (f"{key}.{sub.lower()}", pos, sub_value)
                for sub, sub_value in item.items()
                if not isinstance(sub_value, dict | list)
            ]
        else:
            leaves.append((key, pos, item))
    return leaves


def reindex(
    session: Session,
    org_id: str,
    resource_id: str,
    doc: dict[str, Any],
    *,
    before: list[dict[str, Any]] | None = None,
) -> None:
    """Make the resource's index rows those of ``doc``.

    ``before``, the rows of the document the index was last made from
    (``index_rows``; ``[]`` for a new resource), lets only the differences be
    written: a PATCH of one attribute changes one row, not all of them.
    Without it every row is deleted and inserted again.
    """
    rows = index_rows(org_id, resource_id, doc)
    if before is None:
        drop_index(session, org_id, resource_id)
        if rows:
            session.execute(insert(AttributeValue), rows)
        return
    gone, changed, added = differences(org_id, resource_id, before, rows)
    conn = session.connection()
    if gone:
        _DELETE_ONE.run(conn, gone)
    if changed:
        _UPDATE_ONE.run(conn, changed)
    if added:
        conn.execute(insert(AttributeValue), added)


def reindex_change(
    session: Session,
    org_id: str,
    resource_id: str,
    stored: dict[str, Any],
    doc: dict[str, Any],
) -> None:
    """``reindex`` of a resource whose index holds ``stored``'s rows, now ``doc``: only
    the attributes that differ are flattened (``changed_part``), the same statements."""
    parts = changed_part(stored, doc)
    if parts is None:
        reindex(session, org_id, resource_id, doc, before=index_rows(org_id, resource_id, stored))
    else:
        was, now = parts
        reindex(session, org_id, resource_id, now, before=index_rows(org_id, resource_id, was))


def differences(
    org_id: str, resource_id: str, before: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows gone, rows whose value changed, rows added) from ``before`` to ``rows``, as the
    parameters of ``_DELETE_ONE``, ``_UPDATE_ONE`` and an INSERT."""
    old = {(r["attr"], r["pos"]): r for r in before}
    new = {(r["attr"], r["pos"]): r for r in rows}
    gone = [
        {"o": org_id, "r": resource_id, "a": attr, "p": pos}
        for attr, pos in old.keys() - new.keys()
    ]
    added = [r for k, r in new.items() if k not in old]
    changed = [
        {"o": org_id, "r": resource_id, "a": k[0], "p": k[1], "v": r["value"], "k": r["value_key"]}
        for k, r in new.items()
        if k in old and (old[k]["value"], old[k]["value_key"]) != (r["value"], r["value_key"])
    ]
    return gone, changed, added


def changed_part(
    stored: dict[str, Any], doc: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The top-level attributes that differ between two documents, as (``stored``'s,
    ``doc``'s): their index rows are all that can differ, as each attribute's rows are
    named after it alone (``_apart``). None (flatten both whole) when two attributes could
    name the same rows. Values compare as JSON text (``True`` is not ``1`` to the index), by
    ``==`` when orjson cannot write them."""
    names = stored.keys() | doc.keys()
    if not _apart(names, stored, doc):
        return None
    was: dict[str, Any] = {}
    now: dict[str, Any] = {}
    for name in names:
        before, after = stored.get(name, _ABSENT), doc.get(name, _ABSENT)
        if _same(before, after):
            continue
        if before is not _ABSENT:
            was[name] = before
        if after is not _ABSENT:
            now[name] = after
    return was, now


def _apart(names: set[str], stored: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether no two attributes can name the same index row. A core attribute's rows are
    ``name`` and ``name.sub``; an extension's (a name with ``:``, an object) ``name:sub``.
    They stay apart when names differ but for case, a core name has no dot, an extension
    holds an object in both documents, and no extension's name begins with another's and a
    colon, or with a core name and a dot."""
    lowered = {name.lower() for name in names}
    if len(lowered) != len(names):
        return False
    core = [name for name in lowered if ":" not in name]
    extensions = [name for name in lowered if ":" in name]
    if any("." in name for name in core):
        return False
    for name in names:
        if ":" in name and not all(
            isinstance(d.get(name), dict) or name not in d for d in (stored, doc)
        ):
            return False
    prefixes = tuple([f"{name}:" for name in extensions] + [f"{name}." for name in core])
    return not any(name.startswith(prefixes) for name in extensions)


class _Absent:
    """An attribute one of the two documents does not hold."""


_ABSENT = _Absent()


def _same(before: Any, after: Any) -> bool:
    if before is after:
        return True
    if before != after:
        return False
    try:
        return orjson.dumps(before) == orjson.dumps(after)
    except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits
        return False  # taken as changed: flattened, as before


_ONE = (
    (AttributeValue.org_id == bindparam("o"))
    & (AttributeValue.resource_id == bindparam("r"))
    & (AttributeValue.attr == bindparam("a"))
    & (AttributeValue.pos == bindparam("p"))
)
# By the row's primary key: their plans are reused (``db.reuse_plan``).
_DELETE_ONE = Fixed(reuse_plan(delete(AttributeValue).where(_ONE)))
_UPDATE_ONE = Fixed(
    reuse_plan(
        update(AttributeValue).where(_ONE).values(value=bindparam("v"), value_key=bindparam("k"))
    )
)
# By a prefix of the primary key: the plan is reused (``db.reuse_plan``).
_DROP = Fixed(
    reuse_plan(
        delete(AttributeValue).where(
            AttributeValue.org_id == bindparam("org_id"),
            AttributeValue.resource_id == bindparam("resource_id"),
        )
    )
)


def drop_index(session: Session, org_id: str, resource_id: str) -> None:
    session.flush()  # as ``session.execute`` would (autoflush)
    _DROP.run(session.connection(), {"org_id": org_id, "resource_id": resource_id})
