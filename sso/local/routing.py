"""Home-realm discovery with local passwords: which way an address goes after the first step.

The address's domain decides the organization. ``sso_only`` (the default
while the organization has SSO): straight to its IdP. ``password_allowed``:
the password form, with a button for its IdP when it has one.
``password_only``, or a domain nobody verified (a pending claim routes
nothing): the password form. The
answer never depends on whether an account exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from scim_server.services import settings as org_settings
from sso.connections.models import SsoConnection
from sso.signin import domains


@dataclass(frozen=True)
class Route:
    """``idp``: go there now. Else the password form, ``sso_option`` as a second way."""

    idp: SsoConnection | None = None
    password: bool = True
    sso_option: SsoConnection | None = None


def route(session: Session, login: str) -> Route:
    domain = domains.email_domain(login)
    if domain is None:
        return Route()
    row = domains.verified_domain(session, domain)
    if row is None:
        return Route()
    conn = domains.discover(session, login)
    current = org_settings.get_settings(session, row.org_id)
    methods = org_settings.sign_in_methods(session, row.org_id, current)
    if methods == "sso_only":
        return Route(idp=conn, password=False)
    if methods == "password_allowed":
        return Route(sso_option=conn)
    return Route()
