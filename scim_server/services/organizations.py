from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.errors import InvalidValueError, NotFoundError, UniquenessError
from scim_server.models import Organization
from scim_server.services import counts


def create_organization(session: Session, name: str) -> Organization:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidValueError("An organization name must be 1 to 200 characters.")
    with session.begin():
        if session.scalar(select(Organization.id).where(Organization.name == name)):
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
    """Look an organization up by id or by exact name."""
    org = session.scalar(
        select(Organization).where(
            or_(Organization.id == name_or_id, Organization.name == name_or_id)
        )
    )
    if org is None:
        raise NotFoundError(f"No organization {name_or_id!r}.")
    return org


def list_organizations(session: Session) -> list[Organization]:
    return list(session.scalars(select(Organization).order_by(Organization.name)))
