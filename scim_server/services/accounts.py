"""User accounts as an admin handles them: list, status actions, manual license and roles.

Each takes a session, owns its transaction and
writes its audit event in it, so a refused request changes nothing. Manual
assignments (source "manual") are the admin's; rule re-evaluation never
touches them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import ConflictError, InvalidValueError, NotFoundError
from scim_server.models import License, Role, User, UserRole
from scim_server.services import licenses, lifecycle, lockout, provisioning, roles, users
from scim_server.services.rule_sets import rules_usable
from scim_server.text import fold

# What an admin may do to an account (auto_lock belongs to the sign-in code).
ADMIN_OPS = (
    "activate",
    "deactivate",
    "lock",
    "unlock",
    "require_new_password",
    "start_recovery",
    "complete_recovery",
)


def _about(user: User) -> dict[str, Any]:
    return {
        "resource_type": "User",
        "resource_id": user.id,
        "external_id": user.external_id,
        "user_name": user.user_name,
    }


def _touch(user: User) -> None:
    """The SCIM view shows license and roles (product extension): its version moves with them."""
    user.version += 1
    user.updated_at = utcnow()


def list_users(
    session: Session,
    org_id: str,
    *,
    status: str | None,
    license_name: str | None,
    offset: int,
    limit: int,
) -> tuple[int, list[User]]:
    conditions = [User.org_id == org_id]
    if status:
        conditions.append(User.status == status)
    if license_name:
        lic = licenses.find_license(session, org_id, license_name)
        if lic is None:
            raise InvalidValueError(f"Unknown license {license_name!r}.")
        conditions.append(User.license_id == lic.id)
    total = session.scalar(select(func.count()).select_from(User).where(*conditions)) or 0
    rows = session.scalars(
        select(User)
        .where(*conditions)
        .order_by(User.user_name_key, User.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return total, list(rows)


def act(session: Session, org_id: str, user_id: str, op: str, reason: str | None) -> User:
    """A named status transition; an invalid one is the lifecycle's clear 409."""
    if op not in ADMIN_OPS:
        raise NotFoundError(f"Unknown user action {op!r}; one of: {', '.join(ADMIN_OPS)}.")
    with session.begin():
        user = users.get_user(session, org_id, user_id, for_update=True)
        lifecycle.transition(session, user, op, reason=reason)
        if op == "unlock":
            # The failures that led to an automatic lock go with it, and the doubling restarts.
            lockout.clear(session, user)
    return user


def _license_name(session: Session, org_id: str, license_id: str | None) -> str | None:
    if license_id is None:
        return None
    return session.scalar(
        select(License.name).where(License.org_id == org_id, License.id == license_id)
    )


def _license_state(session: Session, org_id: str, user: User) -> dict[str, Any]:
    """The license as the log tells it: by name for a person reading it, and by id
    (``license_id``) for what reads it later (the billing report: a license renamed since
    is still the same license)."""
    return {
        "license": _license_name(session, org_id, user.license_id),
        "license_id": user.license_id,
        "license_shortage": _license_name(session, org_id, user.license_wanted_id),
        "license_source": user.license_source,
    }


def _state_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]}


OWN_LICENSE = (
    "This would leave your own account without a license: you could not sign in again, "
    "and this session would end. Ask another administrator."
)


def _keep_license(user: User, own: bool) -> None:
    """``own``: a person's change of their own account, refused (nothing changes) when it
    leaves them without a license, as a lock of oneself is (``console.user_profile``)."""
    if own and user.license_id is None:
        raise ConflictError(OWN_LICENSE)


def set_manual_license(
    session: Session,
    org_id: str,
    user_id: str,
    name: str | None,
    *,
    own: bool = False,
    license_id: str | None = None,
) -> User:
    """An admin's license decision (None: explicitly none), which the rules then leave alone.

    Strict whatever the organization's seat mode: an admin assigning a full
    license is told so (409), not handed a silent shortage. ``own``: see ``_keep_license``.
    ``license_id``: the license by id instead of ``name`` (the console's picker, whose other
    choices a license's name could spell).
    """
    with session.begin():
        user = users.get_user(session, org_id, user_id, for_update=True)
        lic = None
        if license_id is not None:
            lic = session.scalar(
                select(License).where(License.org_id == org_id, License.id == license_id)
            )
            if lic is None:
                raise InvalidValueError(f"Unknown license {license_id!r}.")
            name = lic.name
        elif name is not None:
            lic = licenses.find_license(session, org_id, name)
            if lic is None:
                raise InvalidValueError(f"Unknown license {name!r}.")
        before = _license_state(session, org_id, user)
        licenses.assign(session, org_id, user, lic, source="manual", strict=True)
        _keep_license(user, own)
        licenses.end_sessions_if_lost(user, before["license_id"])
        user.license_source = "manual"  # also for "none": the rules must not hand one back
        after = _license_state(session, org_id, user)
        changes = _state_changes(before, after)
        if changes:
            _touch(user)
        record(
            session,
            org_id,
            "user.license",
            **_about(user),
            detail=f"manual license {name!r}" if name else "manual: no license",
            changes=changes,
        )
    return user


def release_manual_license(
    session: Session, org_id: str, user_id: str, *, own: bool = False
) -> User:
    """Hand the user's license back to the rules: clear the manual choice, re-evaluate.
    ``own``: see ``_keep_license``."""
    with session.begin():
        user = users.get_user(session, org_id, user_id, for_update=True)
        if user.license_source != "manual":
            raise NotFoundError(f"User {user_id!r} has no manual license assignment.")
        before = _license_state(session, org_id, user)
        licenses.assign(session, org_id, user, None, source="rule")
        with rules_usable():
            outcome = provisioning.reevaluate(session, org_id, [user.id]).get(user.id, {})
        _keep_license(user, own)
        licenses.end_sessions_if_lost(user, before["license_id"])
        after = _license_state(session, org_id, user)
        changes = _state_changes(before, after)
        _touch(user)
        record(
            session,
            org_id,
            "user.license",
            **_about(user),
            detail="manual license released to the rules",
            changes={**changes, **_role_changes(outcome.get("changes") or {})},
            explanation={"rules": outcome["rules"]} if outcome.get("rules") else None,
        )
    return user


def _role_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """The rule-role part of a re-evaluation (its license part is the net change above)."""
    return {k: v for k, v in changes.items() if not k.startswith("license")}


def _manual_roles(session: Session, org_id: str, user_id: str) -> dict[str, str | None]:
    rows = session.execute(
        select(UserRole.role_id, UserRole.rule).where(
            UserRole.org_id == org_id, UserRole.user_id == user_id, UserRole.source == "manual"
        )
    )
    return {role_id: rule for role_id, rule in rows}


def _set_manual_roles(
    session: Session, user: User, wanted: dict[str, str | None], detail: str
) -> None:
    changes = roles.set_source_roles(session, user.org_id, user.id, "manual", wanted)
    if changes:
        _touch(user)
    record(session, user.org_id, "user.roles", **_about(user), detail=detail, changes=changes)


def add_manual_role(session: Session, org_id: str, user_id: str, name: str) -> User:
    """Grant a role by hand; rule re-evaluation never removes it."""
    with session.begin():
        user = users.get_user(session, org_id, user_id, for_update=True)
        role = roles.find_roles(session, org_id, [name]).get(fold(name))
        if role is None:
            raise InvalidValueError(f"Unknown role {name!r}.")
        wanted = _manual_roles(session, org_id, user.id)
        wanted.setdefault(role.id, None)
        _set_manual_roles(session, user, wanted, f"manual role {role.name!r} ({role.kind}) added")
    return user


def remove_manual_role(session: Session, org_id: str, user_id: str, role_id: str) -> User:
    """Withdraw a hand-granted role; the same role from the rules or the IdP stays."""
    with session.begin():
        user = users.get_user(session, org_id, user_id, for_update=True)
        wanted = _manual_roles(session, org_id, user.id)
        if role_id not in wanted:
            raise NotFoundError(f"User {user_id!r} holds no manual role {role_id!r}.")
        del wanted[role_id]
        name = session.scalar(select(Role.name).where(Role.org_id == org_id, Role.id == role_id))
        _set_manual_roles(session, user, wanted, f"manual role {name!r} removed")
    return user


def set_manual_role_of_kind(
    session: Session, org_id: str, user_id: str, kind: str, role_id: str | None
) -> User:
    """The user's one hand-picked role of ``kind`` (the console's role task / role ticket
    pickers): replaces the manual roles of that kind; None removes them. Roles of the kind
    from the rules or the IdP stay.
    """
    with session.begin():
        user = users.get_user(session, org_id, user_id, for_update=True)
        role = None
        if role_id is not None:
            role = session.scalar(select(Role).where(Role.org_id == org_id, Role.id == role_id))
            if role is None or role.kind != kind:
                raise InvalidValueError(f"No {kind} role {role_id!r} in this organization.")
        of_kind = set(
            session.scalars(select(Role.id).where(Role.org_id == org_id, Role.kind == kind))
        )
        wanted = {
            rid: rule
            for rid, rule in _manual_roles(session, org_id, user.id).items()
            if rid not in of_kind
        }
        if role is not None:
            wanted[role.id] = None
        detail = f"manual {kind} role: {role.name!r}" if role else f"manual {kind} role removed"
        _set_manual_roles(session, user, wanted, detail)
    return user
