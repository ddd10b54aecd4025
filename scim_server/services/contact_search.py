"""The console's contact list: search, kind and has-account filters, keyset pages by name.

Pages are keyset pages on (name_key, id), never OFFSET
(``ix_contacts_org_id_name_key_id``), so a deep page costs what the first does. Each
row says whether the contact has an account (and which), for Open user / Enable access.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from sqlalchemy import exists, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import ColumnElement

from scim_server.errors import InvalidValueError
from scim_server.models import Contact, User
from scim_server.text import fold

KINDS = ("person", "organization")
ACCOUNT_FILTERS = ("yes", "no")
PAGE_SIZE = 50


@dataclass(frozen=True)
class ContactQuery:
    search: str = ""
    kind: str | None = None
    account: str | None = None  # "yes": has an account; "no": has none
    member_of: str | None = None  # the persons of this organization contact
    after: str | None = None
    before: str | None = None
    size: int = PAGE_SIZE


@dataclass(frozen=True)
class ContactRow:
    id: str
    kind: str
    name: str
    email: str | None
    organization: str | None  # the organization contact a person belongs to
    resource_system: str | None
    user_id: str | None
    username: str | None
    status: str | None


@dataclass(frozen=True)
class ContactPage:
    rows: list[ContactRow]
    total: int
    next_cursor: str | None
    prev_cursor: str | None


def parse_query(args: dict[str, str]) -> ContactQuery:
    """The list's query parameters, checked: a bad one is a clear InvalidValueError."""
    kind = args.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise InvalidValueError(f"Unknown contact kind {kind!r}; one of: {', '.join(KINDS)}.")
    account = args.get("account") or None
    if account is not None and account not in ACCOUNT_FILTERS:
        raise InvalidValueError("account must be yes or no.")
    search = (args.get("q") or "").strip()
    if len(search) > 200:
        raise InvalidValueError("A search is at most 200 characters.")
    after = args.get("after") or None
    return ContactQuery(
        search=search,
        kind=kind,
        account=account,
        after=after,
        before=None if after else args.get("before") or None,
    )


def _encode(name_key: str, contact_id: str) -> str:
    raw = json.dumps([name_key, contact_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key, contact_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(key, str) or not isinstance(contact_id, str):
            raise ValueError
    except (ValueError, TypeError):
        raise InvalidValueError("This page link is not valid any more; start again.") from None
    return key, contact_id


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(q: ContactQuery, org_id: str) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [Contact.org_id == org_id]
    if q.search:
        pattern = f"%{_escape_like(fold(q.search))}%"
        conds.append(
            or_(
                Contact.name_key.like(pattern, escape="\\"),
                Contact.email_key.like(pattern, escape="\\"),
            )
        )
    if q.kind:
        conds.append(Contact.kind == q.kind)
    if q.member_of:
        conds.append(Contact.organization_contact_id == q.member_of)
    if q.account:
        has = exists().where(User.org_id == Contact.org_id, User.contact_id == Contact.id)
        conds.append(has if q.account == "yes" else ~has)
    return conds


def search_contacts(session: Session, org_id: str, q: ContactQuery) -> ContactPage:
    """One page of the organization's contacts by name; ``total`` counts every match."""
    conds = _conditions(q, org_id)
    total = session.scalar(select(func.count()).select_from(Contact).where(*conds)) or 0
    backwards = q.before is not None
    cursor = q.before if backwards else q.after
    key = tuple_(Contact.name_key, Contact.id)
    if cursor is not None:
        value = tuple_(*_decode(cursor))
        conds.append(key < value if backwards else key > value)
    order = (
        [Contact.name_key.desc(), Contact.id.desc()]
        if backwards
        else [Contact.name_key.asc(), Contact.id.asc()]
    )
    found = list(session.scalars(select(Contact).where(*conds).order_by(*order).limit(q.size + 1)))
    more = len(found) > q.size
    found = found[: q.size]
    if backwards:
        found.reverse()
    has_next = True if backwards else more
    has_prev = more if backwards else cursor is not None
    return ContactPage(
        rows=_rows(session, org_id, found),
        total=total,
        next_cursor=_encode(found[-1].name_key, found[-1].id) if found and has_next else None,
        prev_cursor=_encode(found[0].name_key, found[0].id) if found and has_prev else None,
    )


def _rows(session: Session, org_id: str, found: list[Contact]) -> list[ContactRow]:
    """The page's contacts with their account and organization (two queries per page)."""
    if not found:
        return []
    accounts = {
        contact_id: (user_id, username, status)
        for contact_id, user_id, username, status in session.execute(
            select(
                User.contact_id,
                User.id,
                func.coalesce(User.login_name, User.user_name),
                User.status,
            ).where(User.org_id == org_id, User.contact_id.in_([c.id for c in found]))
        )
    }
    company = aliased(Contact)
    company_ids = {c.organization_contact_id for c in found if c.organization_contact_id}
    companies = (
        dict(
            session.execute(
                select(company.id, company.name).where(
                    company.org_id == org_id, company.id.in_(company_ids)
                )
            ).all()
        )
        if company_ids
        else {}
    )
    out = []
    for c in found:
        user_id, username, status = accounts.get(c.id, (None, None, None))
        out.append(
            ContactRow(
                id=c.id,
                kind=c.kind,
                name=c.name,
                email=c.email,
                organization=companies.get(c.organization_contact_id or ""),
                resource_system=c.resource_system,
                user_id=user_id,
                username=username,
                status=status,
            )
        )
    return out


def organizations(session: Session, org_id: str, limit: int = 500) -> list[tuple[str, str]]:
    """(id, name) of the organization contacts, by name: what a person may belong to."""
    return [
        (cid, name)
        for cid, name in session.execute(
            select(Contact.id, Contact.name)
            .where(Contact.org_id == org_id, Contact.kind == "organization")
            .order_by(Contact.name_key, Contact.id)
            .limit(limit)
        )
    ]
