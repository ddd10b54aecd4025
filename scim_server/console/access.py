"""The signed-in console user of this request, and the permission checks on views and menu.

Every view says which capability it needs (``@require("users.write")``); the
menu shows only the entries whose capability the person holds, so a page that
would be 403 is never offered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from flask import abort, g

from scim_server.db import db
from scim_server.errors import ForbiddenError
from scim_server.services import console_access

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class ConsolePerson:
    """Who is using the console: their organization, account, console roles and capabilities."""

    org_id: str
    org_name: str
    user_id: str
    user_name: str
    display_name: str
    roles: frozenset[str]
    capabilities: frozenset[str]

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


@dataclass(frozen=True)
class NavEntry:
    endpoint: str
    label: str
    capability: str


# The console's menu, in order. An area adds its entry here with the capability its
# list page requires.
NAV: tuple[NavEntry, ...] = (
    NavEntry("console.users.list_users", "Users", "users.read"),
    NavEntry("console.contacts.list_contacts", "Contacts", "contacts.read"),
    NavEntry("console.imports.upload_form", "Import", "users.write"),
    NavEntry("console.directory.list_licenses", "Licenses", "directory.read"),
    NavEntry("console.billing.show_billing", "Billing", "billing.read"),
    NavEntry("console.directory.list_roles", "Roles", "directory.read"),
    NavEntry("console.sso.list_connections", "Single sign-on", "sso.read"),
    NavEntry("console.rules.edit_rules", "Mapping rules", "rules.read"),
    NavEntry("console.log.search_log", "Provisioning log", "log.read"),
    NavEntry("console.signins.list_sign_ins", "Sign-ins", "log.read"),
    NavEntry("console.reports.show_reports", "Reports", "log.read"),
    NavEntry("console.settings.show_settings", "Settings", "settings.read"),
    NavEntry("console.tokens.list_tokens", "SCIM tokens", "tokens.read"),
    NavEntry("console.oidc.list_clients", "OIDC clients", "sso.read"),
    NavEntry("console.access.list_members", "Console access", "access.write"),
)


def person() -> ConsolePerson:
    """The console user of this request (set by the console's before_request)."""
    found: ConsolePerson = g.console_person
    return found


def nav_for(who: ConsolePerson) -> list[NavEntry]:
    return [entry for entry in NAV if who.can(entry.capability)]


def require(
    capability: str, *, account: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The view answers 403 unless the signed-in person holds ``capability``.

    ``account``: the view acts on the account named by that URL argument; it also answers
    403 when that account holds a console capability the person does not
    (``console_access.beyond``): a user manager may not reset an organization admin's
    password to themselves, nor lock or delete the admin."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            who = person()
            if not who.can(capability):
                abort(403)
            if account is not None:
                refuse_beyond(str(kwargs[account]))
            return view(*args, **kwargs)

        wrapper.capability = capability  # type: ignore[attr-defined]
        return wrapper

    return decorator


def template_context() -> dict[str, Any]:
    """What every console template may use: the person, the menu."""
    who: ConsolePerson | None = g.get("console_person")
    return {
        "me": who,
        "nav": nav_for(who) if who else [],
        "org_name": who.org_name if who else None,
    }


def refuse_beyond(user_id: str) -> None:
    """ForbiddenError (403) when the account holds console capabilities the signed-in
    person does not (``require(..., account=)``)."""
    who = person()
    if user_id == who.user_id:
        return
    above = console_access.beyond(db.session, who.org_id, who.roles, [user_id])
    db.session.rollback()  # the view's services begin their own transactions
    if above:
        raise ForbiddenError(
            "This account holds console roles beyond yours: an organization admin acts on it."
        )
