"""Contacts: persons and organizations, with or without system access."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, case, false, func, literal, select, union_all
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import from_row, utcnow
from scim_server.errors import InvalidValueError, NotFoundError
from scim_server.models import Contact, User
from scim_server.text import fold

PERSON_FIELDS = ("given_name", "family_name", "email", "phone", "title", "department")
OTHER_FIELDS = ("external_id", "organization_contact_id", "name", "resource_system")


def usable_keys(
    match_keys: Sequence[str], external_id: str | None, email: str | None
) -> tuple[str, ...]:
    """The organization's match keys, in order, that this identity has a value for."""
    return tuple(
        k for k in match_keys if (k == "externalId" and external_id) or (k == "email" and email)
    )


def match_params(org_id: str, external_id: str | None, email: str | None) -> dict[str, Any]:
    """The parameters of ``person_match``'s statement."""
    return {"org_id": org_id, "external_id": external_id, "email_key": fold(email or "")}


def find_person(
    session: Session,
    org_id: str,
    match_keys: Sequence[str],
    external_id: str | None,
    email: str | None,
) -> Contact | None:
    """The person contact a new account belongs to, by the organization's match keys in order.

    A contact that already has an account is not matched again: two accounts
    never share one person. One query for all the keys (the common answer, no
    match, costs one round trip); the contact itself is read only when found.
    """
    keys = usable_keys(match_keys, external_id, email)
    if not keys:
        return None
    params = match_params(org_id, external_id, email)
    found = session.connection().execute(select(person_match(keys)), params).scalar()
    return matched_person(session, org_id, found)


def matched_person(session: Session, org_id: str, contact_id: str | None) -> Contact | None:
    """The contact ``person_match`` found (read only when there is one)."""
    return None if contact_id is None else session.get(Contact, (org_id, contact_id))


_PERSON_MATCHES: dict[tuple[str, ...], Any] = {}


def person_match(keys: tuple[str, ...]) -> Any:
    """The id of the person contact ``keys`` match (a scalar subquery; NULL for none), so a
    create can ask it in the statement it runs anyway (``services.users``' preflight).

    Its parameters: ``match_params``. Candidates of each key (index lookups of at most 50
    rows), ranked by the key's place, then the oldest; a person contact without an account.
    `kind` and `taken` are tested outside the per-key subqueries (each bounded by its
    LIMIT): inside, without statistics SQLite would let (org_id, kind) pick its index
    and walk every person contact of the organization.
    """
    stmt = _PERSON_MATCHES.get(keys)
    if stmt is not None:
        return stmt
    taken = (
        select(User.id).where(User.org_id == Contact.org_id, User.contact_id == Contact.id).exists()
    )
    parts = []
    for rank, key in enumerate(keys):
        cond = (
            Contact.external_id == bindparam("external_id")
            if key == "externalId"
            else Contact.email_key == bindparam("email_key")
        )
        part = (
            select(
                literal(rank).label("rank"),
                Contact.id.label("id"),
                Contact.kind.label("kind"),
                Contact.created_at.label("created_at"),
                taken.label("taken"),
            )
            .where(Contact.org_id == bindparam("org_id"), cond)
            .order_by(Contact.created_at)
            .limit(50)
            .subquery()
        )
        parts.append(select(part))
    candidates = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("candidates")
    # The first free person (NULL when the first candidate is not one: then none is), with
    # no WHERE on the candidates: SQLite would build an automatic index to apply it.
    free = and_(candidates.c.kind == "person", candidates.c.taken == false())
    stmt = (
        select(case((free, candidates.c.id)))
        .order_by(case((free, 0), else_=1), candidates.c.rank, candidates.c.created_at)
        .limit(1)
        .scalar_subquery()
    )
    _PERSON_MATCHES[keys] = stmt
    return stmt


def create_contact(
    session: Session, org_id: str, kind: str, name: str, *, audit: bool = True, **fields: Any
) -> Contact:
    """A new contact; ``audit=False`` when the caller's own event tells of it (a user's
    person contact, in the user's create event): it is then returned unsaved, for the
    caller to add or insert with the user (``services.provisioning``)."""
    if kind not in ("person", "organization"):
        raise InvalidValueError("A contact kind is 'person' or 'organization'.")
    _check_name(name)
    now = utcnow()
    contact = Contact(
        org_id=org_id,
        id=str(uuid.uuid4()),
        kind=kind,
        name=name,
        name_key=fold(name),
        created_at=now,
        updated_at=now,
    )
    update_fields(contact, fields)
    if not audit:
        return contact
    session.add(contact)
    session.flush()
    record(
        session,
        org_id,
        "contact.create",
        resource_type="Contact",
        resource_id=contact.id,
        detail=f"{kind} {name!r}",
    )
    return contact


def new_person(org_id: str, name: str, fields: dict[str, Any]) -> tuple[Contact, dict[str, Any]]:
    """``create_contact(session, org_id, "person", name, audit=False)`` then
    ``update_fields`` with the ``fields`` that are not None: the same contact, the same
    changes returned and the same errors, its values put in its dict at once
    (``db.from_row``: no instrumented attribute set per field; a user's create makes
    one per POST). Unsaved, for the caller to add or insert with the user."""
    _check_name(name)
    now = utcnow()
    values: dict[str, Any] = {
        "org_id": org_id,
        "id": str(uuid.uuid4()),
        "kind": "person",
        "name": name,
        "name_key": fold(name),
        "created_at": now,
        "updated_at": now,
    }
    changes, updates = _field_changes(
        values.get, {field: value for field, value in fields.items() if value is not None}
    )
    values.update(updates)
    return from_row(Contact, values), changes


def _check_name(name: str) -> None:
    if not name or len(name) > 512:
        raise InvalidValueError("A contact needs a name of 1 to 512 characters.")


def _check_field(name: str, value: Any) -> None:
    if name not in _FIELDS:
        raise InvalidValueError(f"Unknown contact field {name!r}.")
    if value is not None and not isinstance(value, str):
        raise InvalidValueError(f"Contact field {name!r} must be a string.")


_FIELDS = frozenset((*PERSON_FIELDS, *OTHER_FIELDS))


def update_fields(contact: Contact, fields: dict[str, Any]) -> dict[str, Any]:
    """Set the given fields; return {field: {"before", "after"}} for those that changed."""
    changes, updates = _field_changes(lambda name: getattr(contact, name), fields)
    for name, value in updates.items():
        setattr(contact, name, value)
    return changes


def _field_changes(
    current: Callable[[str], Any], fields: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields checked against what ``current`` gives: ({field: {"before", "after"}} of
    those that change, the column values to set: those fields, the keys derived from them,
    ``updated_at`` when anything changed). For an object (``update_fields``) and for the
    values of one not made yet (``new_person``)."""
    changes: dict[str, Any] = {}
    updates: dict[str, Any] = {}
    for name, value in fields.items():
        _check_field(name, value)
        before = current(name)
        if before != value:
            changes[name] = {"before": before, "after": value}
            updates[name] = value
    if "email" in fields:
        email = updates.get("email", current("email"))
        updates["email_key"] = fold(email) if email else None
    if "name" in fields:
        name = updates.get("name", current("name"))
        if name:
            updates["name_key"] = fold(name)
    if changes:
        updates["updated_at"] = utcnow()
    return changes, updates


def organization_contact(session: Session, org_id: str, name: str) -> Contact:
    """The organization contact with this name, found (case-insensitively) or created."""
    return find_organization_contact(session, org_id, name) or create_contact(
        session, org_id, "organization", name
    )


def find_organization_contact(session: Session, org_id: str, name: str) -> Contact | None:
    """The organization contact with this name (case-insensitively), the oldest if several."""
    return session.scalar(
        select(Contact)
        .where(
            Contact.org_id == org_id, Contact.kind == "organization", Contact.name_key == fold(name)
        )
        .order_by(Contact.created_at)
        .limit(1)
    )


def get_contact(session: Session, org_id: str, contact_id: str) -> Contact:
    contact = session.scalar(
        select(Contact).where(Contact.org_id == org_id, Contact.id == contact_id)
    )
    if contact is None:
        raise NotFoundError(f"Contact {contact_id!r} not found.")
    return contact


def list_contacts(
    session: Session, org_id: str, *, kind: str | None, query: str | None, offset: int, limit: int
) -> tuple[int, list[Contact]]:
    conditions = [Contact.org_id == org_id]
    if kind:
        conditions.append(Contact.kind == kind)
    if query:
        key = fold(query)
        conditions.append(
            Contact.name_key.startswith(key, autoescape=True) | (Contact.email_key == key)
        )
    total = session.scalar(select(func.count()).select_from(Contact).where(*conditions)) or 0
    rows = session.scalars(
        select(Contact)
        .where(*conditions)
        .order_by(Contact.name_key, Contact.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return total, list(rows)
