"""Which account a typed login names: the e-mail's domain decides the organization, else a match.

An address whose domain an organization holds verified (``sso_email_domains``)
can only name an account of that organization. Otherwise the login is
compared (under the identity fold) with login names, SCIM userNames and
contact e-mails in the organizations that allow passwords. More than one
account: none is chosen (``Found.ambiguous``); the caller refuses with the
generic answer rather than guess whose password to try.

The match is a ``UNION`` of three lookups driven from ``organizations``, so
that each probes an ``(org_id, key)`` index once per organization. One ``OR``
over the users/contacts join cannot use those indexes (they lead with
``org_id``) and scanned every user of the server on each sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import CompoundSelect, select
from sqlalchemy.orm import Session

from scim_server.models import Organization, User
from scim_server.services import settings as org_settings
from scim_server.services import user_lookup
from scim_server.text import fold
from sso.signin.domains import email_domain, verified_domain

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
    """The organization that holds the address's domain verified, if any (a pending claim
    decides nothing: anyone may make one)."""
    domain = email_domain(login)
    if domain is None:
        return None
    row = verified_domain(session, domain)
    return row.org_id if row is not None else None


def find_account(session: Session, login: str) -> Found:
    """The one account ``login`` names where passwords are allowed (caller's transaction)."""
    key = fold(login.strip())
    if not key or len(key) > MAX_LOGIN:
        return Found(None)
    owner = domain_org(session, login)
    matches = _matches(key, owner).subquery()
    stmt = (
        select(User)
        .join(matches, (User.org_id == matches.c.org_id) & (User.id == matches.c.id))
        .order_by(User.org_id, User.id)
        .limit(MAX_CANDIDATES * 4)
    )
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


def _matches(key: str, owner: str | None) -> CompoundSelect[str, str]:
    """The (org_id, id) of users whose login name, userName or contact e-mail is ``key``, in
    the one ``owner`` organization or in all (``user_lookup.named_by_login``: the forgot
    form's rule too)."""
    orgs: Any = [owner] if owner is not None else select(Organization.id).scalar_subquery()
    return user_lookup.named_by_login(key, orgs)
