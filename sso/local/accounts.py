"""Which account a typed login names: the e-mail's domain decides the organization, else a match.

An address whose domain an organization registered (``sso_email_domains``)
can only name an account of that organization. Otherwise the login is
compared (under the identity fold) with login names, SCIM userNames and
contact e-mails in the organizations that allow passwords. More than one
account: none is chosen (``Found.ambiguous``); the caller refuses with the
generic answer rather than guess whose password to try.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from scim_server.models import Contact, User
from scim_server.services import settings as org_settings
from scim_server.text import fold
from sso.connections.models import SsoEmailDomain
from sso.signin.domains import email_domain

MAX_LOGIN = 320
MAX_CANDIDATES = 5


@dataclass(frozen=True)
class Found:
    """The account (or none), and every organization the login pointed at (for the records)."""

    user: User | None
    orgs: tuple[str, ...] = ()
    ambiguous: bool = False
    candidates: tuple[User, ...] = field(default_factory=tuple)


def domain_org(session: Session, login: str) -> str | None:
    """The organization that registered the address's domain, if any."""
    domain = email_domain(login)
    if domain is None:
        return None
    return session.scalar(select(SsoEmailDomain.org_id).where(SsoEmailDomain.domain == domain))


def find_account(session: Session, login: str) -> Found:
    """The one account ``login`` names where passwords are allowed (caller's transaction)."""
    key = fold(login.strip())
    if not key or len(key) > MAX_LOGIN:
        return Found(None)
    owner = domain_org(session, login)
    stmt = (
        select(User)
        .outerjoin(Contact, (Contact.org_id == User.org_id) & (Contact.id == User.contact_id))
        .where(or_(User.login_name_key == key, User.user_name_key == key, Contact.email_key == key))
        .order_by(User.org_id, User.id)
        .limit(MAX_CANDIDATES * 4)
    )
    if owner is not None:
        stmt = stmt.where(User.org_id == owner)
    rows = list(dict.fromkeys(session.scalars(stmt)))
    allowed: dict[str, bool] = {}
    users = []
    for user in rows:
        if user.org_id not in allowed:
            current = org_settings.get_settings(session, user.org_id)
            allowed[user.org_id] = org_settings.passwords_allowed(session, user.org_id, current)
        if allowed[user.org_id]:
            users.append(user)
    orgs = tuple(dict.fromkeys(u.org_id for u in users)) or ((owner,) if owner else ())
    if len(users) > 1:
        return Found(None, orgs, ambiguous=True, candidates=tuple(users[:MAX_CANDIDATES]))
    return Found(users[0] if users else None, orgs)
