"""E-mail domains of an organization: home-realm discovery and the sign-in allow-list.

A domain counts (discovery, the allow-list of assertions, which organization a
password sign-in's address belongs to) only once verified: its owner published
``scim-server-verification=<token>`` as a TXT record at
``_scim-server-verification.<domain>`` (``verify_domain``), or the operator
vouched for the organization (``scim-server sso domain verify --without-dns``).
Until then the claim is pending and routes nothing. Several organizations may
claim a domain; one only may hold it verified (a partial unique index), so
discovery can never send a person to another tenant's IdP, and an assertion for
an address outside the organization's verified domains is refused whatever IdP
signed it. A domain routed to one connection is allow-listed for that connection
only; one routed to none, for all the organization's connections.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.email_domains import email_domain, normalize_domain
from scim_server.errors import (
    ConflictError,
    DomainError,
    InvalidValueError,
    NotFoundError,
    UniquenessError,
)
from sso.connections.models import SsoConnection, SsoEmailDomain
from sso.connections.service import get_connection
from sso.signin import txt_records

RECORD_PREFIX = "_scim-server-verification"
VALUE_PREFIX = "scim-server-verification="


class VerificationError(ConflictError):
    """409: the domain was not proven. ``reason``: ``not_found`` (no such name),
    ``no_record`` (no TXT record with the token) or ``taken`` (another organization holds it
    verified)."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


class DnsUnavailableError(DomainError):
    """503: the DNS lookup got no answer (timeout, failing servers); try again."""

    status = 503
    reason = "dns_unavailable"

    def __init__(self, detail: str, cause: str) -> None:
        super().__init__(detail)
        self.cause = cause


def record_name(domain: str) -> str:
    """Where the TXT record proving ``domain`` is published."""
    return f"{RECORD_PREFIX}.{domain}"


def record_value(token: str) -> str:
    return f"{VALUE_PREFIX}{token}"


def list_domains(session: Session, org_id: str) -> list[SsoEmailDomain]:
    """The organization's domains, verified and pending (another's claims never show)."""
    return list(
        session.scalars(
            select(SsoEmailDomain)
            .where(SsoEmailDomain.org_id == org_id)
            .order_by(SsoEmailDomain.domain)
        )
    )


def verified_domain(session: Session, domain: str) -> SsoEmailDomain | None:
    """The one verified claim of ``domain`` (any organization's), or None."""
    return session.scalar(
        select(SsoEmailDomain).where(
            SsoEmailDomain.domain == domain, SsoEmailDomain.verified_at.is_not(None)
        )
    )


def _taken(session: Session, org_id: str, name: str) -> bool:
    holder = verified_domain(session, name)
    return holder is not None and holder.org_id != org_id


def add_domain(
    session: Session, org_id: str, domain: Any, connection_id: Any = None
) -> SsoEmailDomain:
    """Claim ``domain``, routed to ``connection_id`` (None: any enabled connection): pending
    until verified, with the token its TXT record must carry.

    Both come from a JSON body as the client sent them: anything but a string id is
    refused before it reaches a query."""
    name = normalize_domain(domain)
    if connection_id is not None and not isinstance(connection_id, str):
        raise InvalidValueError("connection_id must be a connection id (a string) or null.")
    with session.begin():
        if connection_id is not None:
            get_connection(session, org_id, connection_id)
        if session.get(SsoEmailDomain, (org_id, name)) is not None:
            raise UniquenessError(f"The domain {name!r} is already registered.")
        if _taken(session, org_id, name):
            # One verified holder routes discovery; a later claim would only wait forever.
            raise UniquenessError(
                f"The domain {name!r} is already registered and verified by another organization."
            )
        row = SsoEmailDomain(
            org_id=org_id,
            domain=name,
            connection_id=connection_id,
            verification_token=secrets.token_urlsafe(24),
        )
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


def verify_domain(
    session: Session,
    org_id: str,
    domain: str,
    resolvers: list[tuple[str, int]],
    timeout: float,
) -> SsoEmailDomain:
    """Verify the organization's claim of ``domain`` by its TXT record; already verified: as is.

    The DNS question is asked outside any transaction (no lock held over the network);
    the claim is then marked verified if its token is still the one the record carries.
    """
    name = normalize_domain(domain)
    with session.begin():
        row = _own(session, org_id, name)
        if row.verified_at is not None:
            return row
        if _taken(session, org_id, name):
            raise _taken_error(name)
        token = row.verification_token
        if not token:  # not a claim add_domain made: no value anyone was told to publish
            raise VerificationError(
                f"The domain {name!r} has no verification token: remove it and add it again.",
                "no_record",
            )
    where, wanted = record_name(name), record_value(token)
    try:
        values = txt_records.txt_values(where, resolvers, timeout)
    except txt_records.DnsLookupError as exc:
        raise DnsUnavailableError(
            f"The TXT record at {where} could not be looked up: {exc.reason}. Try again later.",
            exc.reason,
        ) from None
    if values is None:
        raise VerificationError(
            f"{where} does not exist in DNS (NXDOMAIN). Publish a TXT record there "
            f"with the value {wanted!r}, then verify again.",
            "not_found",
        )
    if wanted not in (v.strip() for v in values):
        found = "no TXT record" if not values else f"{len(values)} TXT record(s), none with it"
        raise VerificationError(
            f"{where} has {found}. Publish a TXT record there with the value "
            f"{wanted!r} (DNS changes may take a while to show), then verify again.",
            "no_record",
        )
    return _mark_verified(session, org_id, name, token, method="dns")


def verify_domain_without_dns(session: Session, org_id: str, domain: str) -> SsoEmailDomain:
    """The operator vouches for the organization's claim (no DNS record asked for)."""
    return _mark_verified(session, org_id, normalize_domain(domain), None, method="operator")


def _own(session: Session, org_id: str, name: str) -> SsoEmailDomain:
    row = session.get(SsoEmailDomain, (org_id, name))
    if row is None:
        raise NotFoundError(f"Domain {name!r} is not registered for this organization.")
    return row


def _taken_error(name: str) -> VerificationError:
    return VerificationError(
        f"The domain {name!r} is verified by another organization: it cannot be verified "
        "for this one. If you own it, contact the operator of this server.",
        "taken",
    )


def _mark_verified(
    session: Session, org_id: str, name: str, token: str | None, *, method: str
) -> SsoEmailDomain:
    """Mark the claim verified; ``token``: the one the DNS record carried (None: the
    operator's word, no record)."""
    try:
        with session.begin():
            row = _own(session, org_id, name)
            if row.verified_at is not None:
                return row
            if token is not None and row.verification_token != token:  # claimed again meanwhile
                raise VerificationError(
                    f"The claim of {name!r} changed while it was being verified; verify again.",
                    "no_record",
                )
            if _taken(session, org_id, name):
                raise _taken_error(name)
            row.verified_at = utcnow()
            row.verification_token = None
            session.flush()  # another organization verifying at this moment: the index refuses
            record(
                session,
                org_id,
                "sso.domain.verify",
                resource_type="SsoEmailDomain",
                resource_id=name,
                detail=method,
            )
    except IntegrityError:
        raise _taken_error(name) from None
    return row


def remove_domain(session: Session, org_id: str, domain: str) -> None:
    name = normalize_domain(domain)
    with session.begin():
        session.delete(_own(session, org_id, name))
        record(
            session, org_id, "sso.domain.remove", resource_type="SsoEmailDomain", resource_id=name
        )


def _verified_claim(session: Session, org_id: str, address: str | None) -> SsoEmailDomain | None:
    """The organization's verified domain of ``address`` (exact match), or None."""
    domain = email_domain(address)
    if domain is None:
        return None
    row = session.get(SsoEmailDomain, (org_id, domain))
    return row if row is not None and row.verified_at is not None else None


def domain_allowed(session: Session, org_id: str, email: str | None, connection_id: str) -> bool:
    """May ``connection_id`` assert the address: in one of the organization's verified
    domains, bound to that connection or to none?

    A domain bound to a connection is that IdP's alone: another connection of the
    organization (a partner's IdP) asserting ``ceo@example.com`` would otherwise reach the
    account by its e-mail."""
    row = _verified_claim(session, org_id, email)
    return row is not None and row.connection_id in (None, connection_id)


def bound_elsewhere(session: Session, org_id: str, value: str | None, connection_id: str) -> bool:
    """Is ``value`` an address of a verified domain bound to another connection?

    Such a NameID or userName must not select an account by the userName fallback either."""
    row = _verified_claim(session, org_id, value)
    return row is not None and row.connection_id not in (None, connection_id)


def first_bound_elsewhere(
    session: Session, org_id: str, values: Iterable[str | None], connection_id: str
) -> str | None:
    """The first of ``values`` that is an address of a verified domain bound to another
    connection, or None; one query for all of them.

    An account with such an address belongs to that connection's IdP: a fallback of this
    connection (externalId or userName equal to the subject) must not select it, whatever
    the asserted e-mail says."""
    by_domain: dict[str, str] = {}
    for value in values:
        domain = email_domain(value)
        if domain is not None and value is not None:
            by_domain.setdefault(domain, value)
    if not by_domain:
        return None
    bound = set(
        session.scalars(
            select(SsoEmailDomain.domain).where(
                SsoEmailDomain.org_id == org_id,
                SsoEmailDomain.domain.in_(by_domain),
                SsoEmailDomain.verified_at.is_not(None),
                SsoEmailDomain.connection_id.is_not(None),
                SsoEmailDomain.connection_id != connection_id,
            )
        )
    )
    return next((value for domain, value in by_domain.items() if domain in bound), None)


def discover(session: Session, email: str) -> SsoConnection | None:
    """Home-realm discovery: the enabled connection for the address's verified domain, if one."""
    domain = email_domain(email)
    if domain is None:
        return None
    row = verified_domain(session, domain)
    if row is None:
        return None
    stmt = select(SsoConnection).where(
        SsoConnection.org_id == row.org_id, SsoConnection.enabled.is_(True)
    )
    if row.connection_id is not None:
        stmt = stmt.where(SsoConnection.id == row.connection_id)
    found = list(session.scalars(stmt.limit(2)))
    return found[0] if len(found) == 1 else None
