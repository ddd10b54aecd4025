"""Identity links: which account a subject of a connection signs in to (``sso_identity_links``).

``sso.signin.decision`` decides when a link is made (the first successful sign-in
through a fallback, or a just-in-time creation); this module stores, reads
and removes links, each change with its audit event in the caller's (or its
own) transaction. Subjects are stored exactly as sent, NFC only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import InvalidValueError, NotFoundError
from scim_server.models import User
from scim_server.text import exact
from sso.connections.models import SsoIdentityLink
from sso.connections.service import get_connection


class LinkTakenError(Exception):
    """The subject or the account was linked by a concurrent sign-in."""


def of_subject(
    session: Session, org_id: str, connection_id: str, subject: str
) -> SsoIdentityLink | None:
    return session.get(SsoIdentityLink, (org_id, connection_id, exact(subject)))


def of_user(
    session: Session, org_id: str, connection_id: str, user_id: str
) -> SsoIdentityLink | None:
    return session.scalar(
        select(SsoIdentityLink).where(
            SsoIdentityLink.org_id == org_id,
            SsoIdentityLink.connection_id == connection_id,
            SsoIdentityLink.user_id == user_id,
        )
    )


def create(
    session: Session,
    connection_id: str,
    subject: str,
    user: User,
    *,
    about: dict[str, Any],
    detail: str,
) -> SsoIdentityLink:
    """Insert the link and its ``sso.identity_linked`` event; ``LinkTakenError`` if taken.

    In a savepoint, so that losing a race to the unique keys leaves the
    caller's transaction usable (to record the refusal).
    """
    row = SsoIdentityLink(
        org_id=user.org_id,
        connection_id=connection_id,
        subject=exact(subject),
        user_id=user.id,
        created_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise LinkTakenError(subject) from None
    record(
        session,
        user.org_id,
        "sso.identity_linked",
        resource_type="User",
        resource_id=user.id,
        external_id=user.external_id,
        user_name=user.user_name,
        detail=detail,
        explanation={"connection_id": connection_id, "subject": row.subject, **about},
    )
    return row


def link_view(row: SsoIdentityLink) -> dict[str, Any]:
    return {
        "connection_id": row.connection_id,
        "subject": row.subject,
        "user_id": row.user_id,
        "created": row.created_at.isoformat(),
    }


def find_links(
    session: Session,
    org_id: str,
    connection_id: str,
    *,
    user_id: str | None = None,
    subject: str | None = None,
) -> list[SsoIdentityLink]:
    """A connection's link of one user and/or of one subject (at most one each)."""
    get_connection(session, org_id, connection_id)
    if not user_id and not subject:
        raise InvalidValueError("Give user_id or subject.")
    stmt = select(SsoIdentityLink).where(
        SsoIdentityLink.org_id == org_id, SsoIdentityLink.connection_id == connection_id
    )
    if user_id:
        stmt = stmt.where(SsoIdentityLink.user_id == user_id)
    if subject:
        stmt = stmt.where(SsoIdentityLink.subject == exact(subject))
    return list(session.scalars(stmt.limit(2)))


def unlink(session: Session, org_id: str, connection_id: str, user_id: str) -> None:
    """Remove the user's link on the connection (e.g. its SAML NameID changed), audited.

    The next sign-in of the user goes through the fallbacks again and links
    whatever subject then matches the account.
    """
    with session.begin():
        conn = get_connection(session, org_id, connection_id)
        row = of_user(session, org_id, connection_id, user_id)
        if row is None:
            raise NotFoundError(f"No link of user {user_id!r} on connection {conn.id!r}.")
        user = session.get(User, (org_id, user_id))
        record(
            session,
            org_id,
            "sso.identity_unlinked",
            resource_type="User",
            resource_id=user_id,
            external_id=user.external_id if user else None,
            user_name=user.user_name if user else None,
            detail=f"subject {row.subject!r} of {conn.name} unlinked",
            explanation={"connection_id": conn.id, "subject": row.subject},
        )
        session.delete(row)
