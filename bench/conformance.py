"""Check that the bulk loader writes exactly what the server's own services write.

The server changes alongside this harness: a new column, a change in the
stored document or in the search index would otherwise leave the benchmark
measuring rows the server never produces. One user (with its person contact)
and one group are created through the real services in a scratch
organization and compared, column by column and index row by index row, with
what the loader builds.
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection, Engine

from bench.dataset import EPOCH, Row, group_row, user_body, user_rows
from bench.loader import complete_rows, service_session
from scim_server.db import Base
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import GROUP, GROUP_SCHEMA, USER
from scim_server.services.groups import create_group
from scim_server.services.indexing import index_rows
from scim_server.services.organizations import create_organization
from scim_server.services.users import create_user

# Per-row values that legitimately differ between two creations.
VOLATILE = frozenset({"org_id", "id", "contact_id", "created_at", "updated_at"})


class LoaderOutOfDate(RuntimeError):
    """The server stores something the loader does not: update bench/dataset.py."""


def _stored(conn: Connection, table: Table, org_id: str, row_id: str) -> dict[str, Any]:
    stmt = select(table).where(table.c.org_id == org_id, table.c.id == row_id)
    row = conn.execute(stmt).mappings().one_or_none()
    if row is None:
        raise LoaderOutOfDate(f"the service wrote no {table.name} row {row_id!r}")
    return dict(row)


def _index(conn: Connection, org_id: str, resource_id: str) -> set[tuple[Any, ...]]:
    av = Base.metadata.tables["attribute_values"]
    stmt = select(av.c.attr, av.c.pos, av.c.value, av.c.value_key).where(
        av.c.org_id == org_id, av.c.resource_id == resource_id
    )
    return {tuple(r) for r in conn.execute(stmt)}


def _differences(table: Table, stored: dict[str, Any], built: Row) -> list[str]:
    built = dict(complete_rows(table, [built])[0])
    return [
        f"{table.name}.{name}: server {stored[name]!r}, loader {built.get(name)!r}"
        for name in stored
        if name not in VOLATILE and stored[name] != built.get(name)
    ]


def check_loader_matches_services(engine: Engine) -> None:
    """Raise ``LoaderOutOfDate`` listing every difference found."""
    tables = Base.metadata.tables
    with service_session(engine) as session:
        org_id = create_organization(session, "bench-conformance").id
    body = user_body(random.Random(0), 0, domain="conformance.example.com")
    with service_session(engine) as session:
        user_id = create_user(session, org_id, parse_resource(USER, body, creating=True)).id
    group_doc = {"schemas": [GROUP_SCHEMA], "displayName": "Conformance"}
    with service_session(engine) as session:
        group_id = create_group(session, org_id, parse_resource(GROUP, group_doc, creating=True)).id
    built_group = group_row(org_id, group_id, "Conformance", EPOCH)
    problems: list[str] = []
    with engine.connect() as conn:
        stored_user = _stored(conn, tables["users"], org_id, user_id)
        contact_id = stored_user.get("contact_id") or ""
        built_user, built_contact = user_rows(org_id, user_id, contact_id, body, EPOCH)
        problems += _differences(tables["users"], stored_user, built_user)
        stored_contact = _stored(conn, tables["contacts"], org_id, contact_id)
        problems += _differences(tables["contacts"], stored_contact, built_contact)
        problems += _differences(
            tables["groups"], _stored(conn, tables["groups"], org_id, group_id), built_group
        )
        for resource_id, doc in ((user_id, built_user["data"]), (group_id, built_group["data"])):
            built = {
                (r["attr"], r["pos"], r["value"], r["value_key"])
                for r in index_rows(org_id, resource_id, doc)
            }
            if built != _index(conn, org_id, resource_id):
                problems.append(f"attribute_values of {resource_id} differ")
    if problems:
        raise LoaderOutOfDate("; ".join(problems))
