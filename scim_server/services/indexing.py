"""Keeps the ``attribute_values`` search index in step with a resource document."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from scim_server.models import AttributeValue
from scim_server.text import fold

# Values longer than this are not searchable (only binary data, such as
# certificates, can be longer); it keeps every index entry within PostgreSQL's
# btree row limit.
MAX_INDEXED = 512
NOT_INDEXED = frozenset({"password", "username", "externalid", "active", "members", "groups"})


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, str):
        return value if len(value) <= MAX_INDEXED else None
    return None


def index_rows(org_id: str, resource_id: str, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten a canonical document into (attr, pos, value) rows."""
    rows: list[dict[str, Any]] = []

    def add(attr: str, pos: int, value: Any) -> None:
        text = _text(value)
        if text is not None:
            rows.append(
                {
                    "org_id": org_id,
                    "resource_id": resource_id,
                    "attr": attr,
                    "pos": pos,
                    "value": text,
                    "value_key": fold(text),
                }
            )

    def walk(prefix: str, name: str, value: Any) -> None:
        key = f"{prefix}{name}".lower()
        items = value if isinstance(value, list) else [value]
        for pos, item in enumerate(items):
            if isinstance(item, dict):
                for sub, sub_value in item.items():
                    if not isinstance(sub_value, dict | list):
                        add(f"{key}.{sub.lower()}", pos, sub_value)
            else:
                add(key, pos, item)

    for name, value in doc.items():
        if ":" in name and isinstance(value, dict):
            for ext_name, ext_value in value.items():
                walk(f"{name}:", ext_name, ext_value)
        elif name.lower() not in NOT_INDEXED:
            walk("", name, value)
    return rows


def reindex(session: Session, org_id: str, resource_id: str, doc: dict[str, Any]) -> None:
    drop_index(session, org_id, resource_id)
    rows = index_rows(org_id, resource_id, doc)
    if rows:
        session.execute(insert(AttributeValue), rows)


def drop_index(session: Session, org_id: str, resource_id: str) -> None:
    session.execute(
        delete(AttributeValue).where(
            AttributeValue.org_id == org_id, AttributeValue.resource_id == resource_id
        )
    )
