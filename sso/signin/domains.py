"""E-mail domains of an organization: home-realm discovery and the sign-in allow-list.

A domain belongs to one organization only, so discovery can never send a
person to another tenant's IdP, and an assertion for an address outside the
organization's domains is refused whatever IdP signed it.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.errors import InvalidValueError, NotFoundError, UniquenessError
from sso.connections.models import SsoConnection, SsoEmailDomain
from sso.connections.service import get_connection

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_domain(value: Any) -> str:
    """Lower-case IDNA form of a domain; refuse anything that is not a plain host name."""
    if not isinstance(value, str):
        raise InvalidValueError("domain must be a string.")
    text = value.strip().rstrip(".").lower()
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidValueError(f"{value!r} is not a valid domain.") from None
    labels = text.split(".")
    if len(text) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise InvalidValueError(f"{value!r} is not a valid domain (e.g. example.com).")
    return text


def email_domain(email: str | None) -> str | None:
    """The normalised domain of an address, or None if it is not an address."""
    if not email or email.count("@") != 1:
        return None
    local, _, domain = email.rpartition("@")
    if not local:
        return None
    try:
        return normalize_domain(domain)
    except InvalidValueError:
        return None


def list_domains(session: Session, org_id: str) -> list[SsoEmailDomain]:
    return list(
        session.scalars(
            select(SsoEmailDomain)
            .where(SsoEmailDomain.org_id == org_id)
            .order_by(SsoEmailDomain.domain)
        )
    )


def add_domain(
    session: Session, org_id: str, domain: Any, connection_id: Any = None
) -> SsoEmailDomain:
    """Register ``domain``, routed to ``connection_id`` (None: any enabled connection).

    Both come from a JSON body as the client sent them: anything but a string id is
    refused before it reaches a query."""
    name = normalize_domain(domain)
    if connection_id is not None and not isinstance(connection_id, str):
        raise InvalidValueError("connection_id must be a connection id (a string) or null.")
    with session.begin():
        if connection_id is not None:
            get_connection(session, org_id, connection_id)
        if session.scalar(select(SsoEmailDomain.org_id).where(SsoEmailDomain.domain == name)):
            # Global: one domain routes discovery to exactly one organization.
            raise UniquenessError(f"The domain {name!r} is already registered.")
        row = SsoEmailDomain(org_id=org_id, domain=name, connection_id=connection_id)
        session.add(row)
        session.flush()
        record(
            session,
            org_id,
            "sso.domain.add",
            resource_type="SsoEmailDomain",
            resource_id=name,
            detail=connection_id,
        )
    return row


def remove_domain(session: Session, org_id: str, domain: str) -> None:
    name = normalize_domain(domain)
    with session.begin():
        row = session.get(SsoEmailDomain, (org_id, name))
        if row is None:
            raise NotFoundError(f"Domain {name!r} is not registered for this organization.")
        session.delete(row)
        record(
            session, org_id, "sso.domain.remove", resource_type="SsoEmailDomain", resource_id=name
        )


def domain_allowed(session: Session, org_id: str, email: str | None) -> bool:
    """Is the address in one of the organization's registered domains (exact match)?"""
    domain = email_domain(email)
    if domain is None:
        return False
    return session.get(SsoEmailDomain, (org_id, domain)) is not None


def discover(session: Session, email: str) -> SsoConnection | None:
    """Home-realm discovery: the enabled connection for the address's domain, if exactly one."""
    domain = email_domain(email)
    if domain is None:
        return None
    row = session.scalar(select(SsoEmailDomain).where(SsoEmailDomain.domain == domain))
    if row is None:
        return None
    stmt = select(SsoConnection).where(
        SsoConnection.org_id == row.org_id, SsoConnection.enabled.is_(True)
    )
    if row.connection_id is not None:
        stmt = stmt.where(SsoConnection.id == row.connection_id)
    found = list(session.scalars(stmt.limit(2)))
    return found[0] if len(found) == 1 else None
