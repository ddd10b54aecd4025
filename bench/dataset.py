"""A deterministic, realistic data set, built once and loaded into every backend.

Users look like what Entra ID and Okta provision (userName, externalId, name,
work and home emails, title, enterprise department). Rows are built exactly as
the services would store them: the canonical document in ``users.data``, keys
through ``scim_server.text.fold`` and the search index through
``index_rows``, so that the server sees the same data as if each user had been
POSTed, at a fraction of the cost (``bench.conformance`` checks that claim
against the real services on every run).
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.profiles import Profile
from scim_server.scim.schema import ENTERPRISE_SCHEMA, USER_SCHEMA
from scim_server.services.indexing import index_rows
from scim_server.text import exact, fold

Row = dict[str, Any]

FIRST = (
    "Ada", "Barbara", "Chen", "Dmitri", "Elena", "Farah", "Grace", "Hiro", "Ines", "Jamal",
    "Kofi", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
)  # fmt: skip
LAST = (
    "Jensen", "Okafor", "Silva", "Novak", "Haddad", "Kim", "Müller", "Rossi", "Tanaka", "Dubois",
    "Kowalski", "Nguyen", "Ivanova", "García", "Larsen", "Patel", "O'Brien", "Costa", "Berg",
)  # fmt: skip
TITLES = ("Engineer", "Senior Engineer", "Manager", "Analyst", "Designer", "Accountant")
DEPARTMENTS = ("Engineering", "Finance", "Sales", "Marketing", "Support", "Legal", "People")
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def new_id(rng: random.Random) -> str:
    """A UUID4 drawn from ``rng``, so that every run builds the same data."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def user_body(
    rng: random.Random, n: int, domain: str = "example.com", ascii_only: bool = False
) -> dict[str, Any]:
    """A SCIM User as an IdP sends it (also the POST /Users body).

    ``ascii_only`` keeps the addresses ASCII (Müller -> muller): django-scim2
    refuses an address with a non-ASCII local part.
    """
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = f"{first}.{last}".lower().replace("'", "") + str(n)
    if ascii_only:
        local = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode()
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
        "userName": f"{local}@{domain}",
        "externalId": new_id(rng),
        "name": {"givenName": first, "familyName": last, "formatted": f"{first} {last}"},
        "displayName": f"{first} {last}",
        "emails": [
            {"type": "work", "value": f"{local}@{domain}", "primary": True},
            {"type": "home", "value": f"{local}@home.example.net"},
        ],
        "title": rng.choice(TITLES),
        "active": True,
        ENTERPRISE_SCHEMA: {"department": rng.choice(DEPARTMENTS), "employeeNumber": str(n)},
    }


def stored_document(body: dict[str, Any]) -> dict[str, Any]:
    """The ``users.data`` document the server stores for a ``user_body``.

    ``bench.conformance`` checks this (and every other column) against a user
    created through the real service before anything is loaded.
    """
    return {k: v for k, v in body.items() if k != "schemas"}


def user_rows(
    org_id: str, uid: str, contact_id: str, body: dict[str, Any], created: datetime
) -> tuple[Row, Row]:
    """The ``users`` row and its person ``contacts`` row, as ``create_user`` writes them."""
    doc = stored_document(body)
    enterprise = doc.get(ENTERPRISE_SCHEMA, {})
    email = next(e["value"] for e in doc["emails"] if e.get("primary"))
    user = {
        "org_id": org_id,
        "id": uid,
        "user_name": doc["userName"],
        "user_name_key": fold(doc["userName"]),
        "external_id": exact(doc["externalId"]),
        "display_name": doc["displayName"],
        "active": True,
        "contact_id": contact_id,
        "source": "scim",  # how the user came (services.users.create_user's default)
        "username": doc["userName"],
        "username_key": fold(doc["userName"]),
        "data": doc,
        "version": 1,
        "created_at": created,
        "updated_at": created,
    }
    contact = {
        "org_id": org_id,
        "id": contact_id,
        "kind": "person",
        "name": doc["displayName"],
        "name_key": fold(doc["displayName"]),
        "given_name": doc["name"]["givenName"],
        "family_name": doc["name"]["familyName"],
        "email": email,
        "email_key": fold(email),
        "phone": None,
        "title": doc.get("title"),
        "department": enterprise.get("department"),
        "external_id": doc["externalId"],
        "organization_contact_id": None,
        "created_at": created,
        "updated_at": created,
    }
    return user, contact


def group_row(org_id: str, gid: str, name: str, created: datetime) -> Row:
    """The ``groups`` row for a group with only a displayName (members are rows)."""
    return {
        "org_id": org_id,
        "id": gid,
        "display_name": name,
        "display_name_key": fold(name),
        "external_id": None,
        "data": {"displayName": name},
        "version": 1,
        "created_at": created,
        "updated_at": created,
    }


@dataclass
class OrgData:
    """One organization: its rows per table and the ids the scenarios need."""

    id: str
    name: str
    size: int
    user_ids: list[str] = field(default_factory=list)
    user_names: list[str] = field(default_factory=list)
    work_emails: list[str] = field(default_factory=list)
    big_group_id: str | None = None
    small_group_ids: list[str] = field(default_factory=list)
    # Users in no group: member-add scenarios add and remove these.
    free_user_ids: list[str] = field(default_factory=list)
    tables: dict[str, list[Row]] = field(default_factory=dict)

    def row_count(self) -> int:
        return sum(len(rows) for rows in self.tables.values())


def people(
    org_id: str,
    rng: random.Random,
    numbers: range,
    domain: str = "example.com",
    ascii_only: bool = False,
) -> tuple[dict[str, list[Row]], list[dict[str, Any]]]:
    """Rows for users numbered ``numbers`` (created one second apart), and their bodies."""
    tables: dict[str, list[Row]] = {"contacts": [], "users": [], "attribute_values": []}
    bodies = []
    for n in numbers:
        body = user_body(rng, n, domain, ascii_only)
        created = EPOCH + timedelta(seconds=n)
        user, contact = user_rows(org_id, new_id(rng), new_id(rng), body, created)
        tables["users"].append(user)
        tables["contacts"].append(contact)
        tables["attribute_values"].extend(index_rows(org_id, user["id"], user["data"]))
        bodies.append(body)
    return tables, bodies


def _group(
    org: OrgData, rng: random.Random, name: str, members: list[str]
) -> tuple[Row, list[Row], list[Row]]:
    group = group_row(org.id, new_id(rng), name, EPOCH)
    rows = [
        {
            "org_id": org.id,
            "group_id": group["id"],
            "member_id": mid,
            "member_type": "User",
            "created_at": EPOCH,
        }
        for mid in members
    ]
    return group, index_rows(org.id, group["id"], group["data"]), rows


def build_org(profile: Profile, size: int, seed: int) -> OrgData:
    """Users, the small groups and, in the largest organization, the big group."""
    rng = random.Random(seed)
    org = OrgData(id=new_id(rng), name=f"bench-{size}", size=size)
    tables, bodies = people(org.id, rng, range(size), ascii_only=profile.ascii_only)
    attrs = tables["attribute_values"]
    org.user_ids = [u["id"] for u in tables["users"]]
    org.user_names = [b["userName"] for b in bodies]
    org.work_emails = [b["emails"][0]["value"] for b in bodies]
    groups: list[Row] = []
    members: list[Row] = []
    # The big group takes the first users; small groups the last ones; the
    # users in between belong to no group and are free to be added.
    big = profile.big_group_size if size == profile.largest else 0
    small_total = profile.small_groups_per_org * profile.small_group_size
    if big:
        group, index, rows = _group(org, rng, f"All staff ({big})", org.user_ids[:big])
        org.big_group_id = group["id"]
        groups.append(group)
        attrs.extend(index)
        members.extend(rows)
    for k in range(profile.small_groups_per_org):
        start = size - small_total + k * profile.small_group_size
        chosen = org.user_ids[start : start + profile.small_group_size]
        group, index, rows = _group(org, rng, f"Team {k:03d}", chosen)
        org.small_group_ids.append(group["id"])
        groups.append(group)
        attrs.extend(index)
        members.extend(rows)
    org.free_user_ids = org.user_ids[big : size - small_total]
    org.tables = {
        "organizations": [{"id": org.id, "name": org.name, "created_at": EPOCH}],
        "contacts": tables["contacts"],
        "users": tables["users"],
        "groups": groups,
        "attribute_values": attrs,
        "group_members": members,
    }
    return org


def build_dataset(profile: Profile, seed: int = 7) -> list[OrgData]:
    """One organization per size in the profile; the same seed builds the same rows."""
    return [build_org(profile, size, seed + i) for i, size in enumerate(profile.org_sizes)]
