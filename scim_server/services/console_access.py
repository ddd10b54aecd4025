"""Who may do what in the admin console: console roles per person, and what each allows.

Four roles (ISSUE 13): ``org_admin`` (everything), ``user_manager`` (users,
contacts, licenses, roles, rules), ``security_admin`` (SSO, tokens, policies,
MFA resets), ``auditor`` (read-only: the log, reports, exports). A role is a
row of ``console_grants`` keyed by organization and user; the console checks a
*capability* (``users.write``), never a role name, so a page and its menu entry
ask the same question.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.errors import ConflictError, InvalidValueError
from scim_server.models import Contact, User
from scim_server.models.console_access import CONSOLE_ROLES, ConsoleGrant
from scim_server.services.lifecycle import SIGN_IN_ALLOWED
from scim_server.text import fold

ORG_ADMIN, USER_MANAGER, SECURITY_ADMIN, AUDITOR = CONSOLE_ROLES

# capability -> the roles that have it (org_admin has every one).
CAPABILITIES: dict[str, frozenset[str]] = {
    "users.read": frozenset({USER_MANAGER, SECURITY_ADMIN, AUDITOR}),
    "users.write": frozenset({USER_MANAGER}),
    "contacts.read": frozenset({USER_MANAGER}),  # persons and organizations
    "contacts.write": frozenset({USER_MANAGER}),  # edit, enable access, availability hours
    "directory.read": frozenset({USER_MANAGER, SECURITY_ADMIN, AUDITOR}),  # licenses, roles
    "directory.write": frozenset({USER_MANAGER}),
    "billing.read": frozenset({USER_MANAGER, AUDITOR}),  # monthly totals, seat changes
    "settings.read": frozenset({USER_MANAGER, SECURITY_ADMIN, AUDITOR}),
    "settings.write": frozenset({SECURITY_ADMIN}),
    "tokens.read": frozenset({SECURITY_ADMIN, AUDITOR}),
    "tokens.write": frozenset({SECURITY_ADMIN}),  # revoke (an incident: stop a leaked one)
    # A token acts as the organization with no console role to limit it: an admin API
    # token resets any account's password to any address, a SCIM token sets any account's
    # password, e-mail or status (as its IdP). Made by an org_admin only, or a security
    # admin would mint one and take over an org admin's account with it.
    "tokens.create": frozenset(),
    "sso.read": frozenset({SECURITY_ADMIN, AUDITOR}),
    "sso.write": frozenset({SECURITY_ADMIN}),  # disable, rename, JIT, the test link
    # Whatever IdP a connection trusts says who signs in, org admins included: a security
    # admin's own IdP asserting the org admin's address signs them in as the org admin. So
    # what decides who may assert an identity (a connection made, its IdP's metadata, its
    # enabling or deletion, a domain added, verified, bound or removed): org_admin only.
    "sso.configure": frozenset(),
    "rules.read": frozenset({USER_MANAGER, AUDITOR}),
    "rules.write": frozenset({USER_MANAGER}),  # drafts: save a version (it acts on nobody)
    # Active rules act on every account, org admins' included, as a token does: a rule
    # setting the org admin's contact e-mail, activated and applied, would send their
    # password reset to whoever wrote it. Activating and applying: org_admin only.
    "rules.activate": frozenset(),
    "log.read": frozenset({SECURITY_ADMIN, AUDITOR}),
    "mfa.reset": frozenset({SECURITY_ADMIN}),  # remove a person's second factors
    "access.write": frozenset(),  # granting console roles: org_admin only
}


def capabilities(roles: frozenset[str]) -> frozenset[str]:
    """Every capability the given console roles carry."""
    if ORG_ADMIN in roles:
        return frozenset(CAPABILITIES)
    return frozenset(cap for cap, holders in CAPABILITIES.items() if holders & roles)


def beyond(
    session: Session, org_id: str, actor_roles: frozenset[str], user_ids: list[str]
) -> set[str]:
    """The users among ``user_ids`` whose console roles carry a capability ``actor_roles``
    do not. Acting on such an account (its password, second factors, e-mail, status, its
    deletion) would let the actor take it over and its capabilities with it: a user
    manager resetting an organization admin's password "to me". Reads in the session's
    transaction (a caller about to run a service that begins its own ends it)."""
    mine = capabilities(actor_roles)
    held: dict[str, set[str]] = {}
    rows = session.execute(
        select(ConsoleGrant.user_id, ConsoleGrant.role).where(
            ConsoleGrant.org_id == org_id, ConsoleGrant.user_id.in_(user_ids)
        )
    )
    for user_id, role in rows:
        held.setdefault(user_id, set()).add(role)
    return {uid for uid, roles in held.items() if not capabilities(frozenset(roles)) <= mine}


def roles_of(session: Session, org_id: str, user_id: str) -> frozenset[str]:
    """The console roles a user holds (empty: no console access)."""
    return frozenset(
        session.scalars(
            select(ConsoleGrant.role).where(
                ConsoleGrant.org_id == org_id, ConsoleGrant.user_id == user_id
            )
        )
    )


def _check_role(role: str) -> None:
    if role not in CONSOLE_ROLES:
        raise InvalidValueError(
            f"Unknown console role {role!r}; one of: {', '.join(CONSOLE_ROLES)}."
        )


def grant(session: Session, org_id: str, user_id: str, role: str) -> bool:
    """Give a user a console role; False when it was already held (nothing written)."""
    _check_role(role)
    with session.begin():
        user = session.get(User, (org_id, user_id))
        if user is None:
            raise InvalidValueError(f"No user {user_id!r} in this organization.")
        if session.get(ConsoleGrant, (org_id, user_id, role)) is not None:
            return False
        session.add(ConsoleGrant(org_id=org_id, user_id=user_id, role=role))
        record(
            session,
            org_id,
            "console.grant",
            resource_type="User",
            resource_id=user_id,
            user_name=user.user_name,
            detail=role,
        )
    return True


def revoke(session: Session, org_id: str, user_id: str, role: str) -> bool:
    """Take a console role away; False when it was not held. The organization's last
    org_admin stays (nobody could grant roles any more)."""
    _check_role(role)
    with session.begin():
        found = session.get(ConsoleGrant, (org_id, user_id, role))
        if found is None:
            return False
        if role == ORG_ADMIN:
            admins = session.scalars(
                select(ConsoleGrant.user_id)
                .where(ConsoleGrant.org_id == org_id, ConsoleGrant.role == ORG_ADMIN)
                .with_for_update()
            ).all()
            # Only an org admin whose account may sign in keeps the organization
            # administrable: a deactivated or locked one's grant counts for nothing.
            able = session.scalar(
                select(func.count())
                .select_from(User)
                .where(
                    User.org_id == org_id,
                    User.id.in_([a for a in admins if a != user_id]),
                    User.status.in_(SIGN_IN_ALLOWED),
                )
            )
            if not able:
                raise InvalidValueError(
                    "This is the organization's last org_admin who can sign in: grant the "
                    "role to someone else who can first."
                )
        session.delete(found)
        record(
            session,
            org_id,
            "console.revoke",
            resource_type="User",
            resource_id=user_id,
            detail=role,
        )
    return True


# How many of the accounts sharing an address ``find_user_by_email``'s refusal names.
_NAMED_IN_REFUSAL = 5


def find_user_by_email(session: Session, org_id: str, email: str) -> User | None:
    """The account whose userName is ``email`` (case-insensitive), else the one account whose
    contact's e-mail it is; None when none. A contact e-mail is not proof of who someone is
    (a user manager may set their own to a colleague's address, then be granted the role
    meant for them), so it never wins over a userName, and an address several accounts
    share names none of them: ConflictError, asking for the userName."""
    key = fold(email.strip())
    named = session.scalar(select(User).where(User.org_id == org_id, User.user_name_key == key))
    if named is not None:
        return named
    found = session.scalars(
        select(User)
        .join(Contact, (Contact.org_id == User.org_id) & (Contact.id == User.contact_id))
        .where(User.org_id == org_id, Contact.email_key == key)
        .order_by(User.user_name_key, User.id)
        .limit(_NAMED_IN_REFUSAL + 1)
    ).all()
    if len(found) > 1:
        names = ", ".join(u.user_name for u in found[:_NAMED_IN_REFUSAL])
        more = ", ..." if len(found) > _NAMED_IN_REFUSAL else ""
        raise ConflictError(
            f"{email.strip()} is the e-mail address of several accounts ({names}{more}): "
            "give the userName of the one you mean."
        )
    return found[0] if found else None


@dataclass(frozen=True)
class ConsoleMember:
    user_id: str
    user_name: str
    display_name: str
    status: str
    roles: frozenset[str]


def list_members(session: Session, org_id: str) -> list[ConsoleMember]:
    """Everyone holding a console role in the organization, by userName."""
    held: dict[str, set[str]] = {}
    for user_id, role in session.execute(
        select(ConsoleGrant.user_id, ConsoleGrant.role).where(ConsoleGrant.org_id == org_id)
    ):
        held.setdefault(user_id, set()).add(role)
    if not held:
        return []
    accounts = session.scalars(
        select(User)
        .where(User.org_id == org_id, User.id.in_(list(held)))
        .order_by(User.user_name_key)
    )
    return [
        ConsoleMember(
            u.id, u.user_name, u.display_name or u.user_name, u.status, frozenset(held[u.id])
        )
        for u in accounts
    ]
