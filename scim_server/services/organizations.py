from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.errors import ConflictError, InvalidValueError, NotFoundError, UniquenessError
from scim_server.models import Organization
from scim_server.services import counts
from scim_server.text import has_control


def _is_uuid(value: str) -> bool:
    """Does ``value`` read as a UUID (any form ``uuid.UUID`` takes: braces, urn:, no dashes)?"""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def create_organization(session: Session, name: str) -> Organization:
    """Create an organization; its name must never be mistaken for an id.

    Every command takes ``NAME_OR_ID`` (``find_organization``): a name that is another
    organization's id, or any UUID (a future one's id), would have a token minted for the
    wrong tenant. Names are listed one per line, tab-separated (``org list``), and go
    into mail and the log: no control characters either.
    """
    if has_control(name):  # before trimming: a trailing tab or NEL is refused, not dropped
        raise InvalidValueError("An organization name cannot hold control characters.")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidValueError("An organization name must be 1 to 200 characters.")
    if _is_uuid(name):
        raise InvalidValueError(
            f"An organization name cannot be a UUID ({name!r}): organizations are also found by id."
        )
    with session.begin():
        taken = session.scalar(
            select(Organization.id).where(or_(Organization.name == name, Organization.id == name))
        )
        if taken == name:  # an id that is not a UUID (data from elsewhere)
            raise InvalidValueError(
                f"An organization name cannot be a UUID or an id ({name!r} is one)."
            )
        if taken:
            raise UniquenessError(f"An organization named {name!r} already exists.")
        org = Organization(id=str(uuid.uuid4()), name=name)
        session.add(org)
        session.flush()
        counts.start_organization(session, org.id)
        record(
            session,
            org.id,
            "organization.create",
            resource_type="Organization",
            resource_id=org.id,
            detail=name,
        )
    return org


def find_organization(session: Session, name_or_id: str) -> Organization:
    """Look an organization up by id or by exact name; refused when it is both (two rows).

    An organization named with another's id (stored before names were checked) makes the
    reference ambiguous: taking the first row found could be the other tenant's.
    """
    found = list(
        session.scalars(
            select(Organization)
            .where(or_(Organization.id == name_or_id, Organization.name == name_or_id))
            .limit(2)
        )
    )
    if not found:
        raise NotFoundError(f"No organization {name_or_id!r}.")
    if len(found) > 1:
        ids = ", ".join(sorted(org.id for org in found))
        raise ConflictError(
            f"{name_or_id!r} matches two organizations (the id of one, the name of the other:"
            f" {ids}); give the id of the one meant."
        )
    return found[0]


def list_organizations(session: Session) -> list[Organization]:
    return list(session.scalars(select(Organization).order_by(Organization.name)))
