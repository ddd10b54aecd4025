"""User status lifecycle (DESIGN.md §2): every transition is a named operation and an event."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import DomainError
from scim_server.models import User
from scim_server.services import passwords

PROVISIONED = "PROVISIONED"
ACTIVE = "ACTIVE"
DEACTIVATED = "DEACTIVATED"
LOCKED_BY_ADMIN = "LOCKED_BY_ADMIN"
AUTO_LOCKED = "AUTO_LOCKED"
AWAITING_NEW_PASSWORD = "AWAITING_NEW_PASSWORD"
RECOVERY = "RECOVERY"
STATUSES = (
    PROVISIONED,
    ACTIVE,
    DEACTIVATED,
    LOCKED_BY_ADMIN,
    AUTO_LOCKED,
    AWAITING_NEW_PASSWORD,
    RECOVERY,
)
# Statuses in which a person may sign in (with a license). ``RECOVERY`` is one: anyone may
# ask for a reset link with the person's address, and the current password (and their
# IdP) keeps working until the link is used, or a stranger could sign anyone out.
SIGN_IN_ALLOWED = frozenset({PROVISIONED, ACTIVE, RECOVERY})


class InvalidTransitionError(DomainError):
    status = 409


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[str]
    target: str | None  # None: back to PROVISIONED or ACTIVE, by whether the user ever signed in


TRANSITIONS = {
    t.name: t
    for t in (
        Transition("deactivate", frozenset(STATUSES) - {DEACTIVATED}, DEACTIVATED),
        Transition("activate", frozenset({DEACTIVATED}), None),
        Transition(
            "lock",
            frozenset({PROVISIONED, ACTIVE, AUTO_LOCKED, AWAITING_NEW_PASSWORD, RECOVERY}),
            LOCKED_BY_ADMIN,
        ),
        Transition("unlock", frozenset({LOCKED_BY_ADMIN, AUTO_LOCKED}), None),
        Transition(
            "auto_lock",
            frozenset({PROVISIONED, ACTIVE, AWAITING_NEW_PASSWORD, RECOVERY}),
            AUTO_LOCKED,
        ),
        Transition("require_new_password", frozenset({PROVISIONED, ACTIVE}), AWAITING_NEW_PASSWORD),
        Transition(
            "start_recovery", frozenset({PROVISIONED, ACTIVE, AWAITING_NEW_PASSWORD}), RECOVERY
        ),
        Transition("complete_recovery", frozenset({AWAITING_NEW_PASSWORD, RECOVERY}), None),
    )
}


# What an admin decided that only an admin lifts: a deactivation suspends it, and the
# activation that ends the deactivation gives it back (an IdP's deactivate and reactivate,
# Entra's soft delete and restore, must not lift an admin's lock on the way). An admin's
# demand for a new password is held apart, through anything (``new_password_required``).
HELD_THROUGH_DEACTIVATION = frozenset({LOCKED_BY_ADMIN})


def _resting(user: User) -> str:
    return ACTIVE if user.last_login_at is not None else PROVISIONED


def transition(
    session: Session, user: User, name: str, *, reason: str | None = None, bump_version: bool = True
) -> str:
    """Apply the named transition in the caller's transaction; refuse an invalid one clearly.

    ``bump_version`` is off when the caller (a SCIM write) moves the version itself.
    """
    before = change_status(user, name, bump_version=bump_version)
    record_transition(session, user, name, before, reason)
    return user.status


def change_status(user: User, name: str, *, bump_version: bool = True) -> str:
    """The row half of ``transition``: check and set the new status; return the old one.

    A move to a status that may not sign in (but the automatic lockout) also moves the
    account's ``session_epoch`` on (its sessions and tokens end). ``new_password_required``
    keeps an admin's ``require_new_password`` under any status that covers it. A SCIM write
    sets all of them before its one flush (one UPDATE of the row) and records the
    transition after its own event (``record_transition``).
    """
    spec = TRANSITIONS.get(name)
    if spec is None:
        raise InvalidTransitionError(f"Unknown user operation {name!r}.")
    if user.status not in spec.sources:
        allowed = ", ".join(sorted(spec.sources))
        raise InvalidTransitionError(
            f"Cannot {name.replace('_', ' ')} a user whose status is {user.status} "
            f"(allowed from: {allowed})."
        )
    before = user.status
    if name == "complete_recovery":
        # A new password was set (or an admin lifts the demand): the one way it ends here.
        user.new_password_required = False
    elif before == AWAITING_NEW_PASSWORD or name == "require_new_password":
        # However the account came to await one (a mapping rule's initial status too).
        user.new_password_required = True
    if name == "deactivate":
        user.status_before_deactivation = before if before in HELD_THROUGH_DEACTIVATION else None
        user.status = DEACTIVATED
    elif name == "activate":
        # AWAITING_NEW_PASSWORD, held here before 0039, is the demand's (below).
        held = user.status_before_deactivation
        user.status = held if held in HELD_THROUGH_DEACTIVATION else _resting(user)
        user.status_before_deactivation = None
    else:
        user.status = spec.target or _resting(user)
    if user.new_password_required and user.status in SIGN_IN_ALLOWED:
        # An admin's demand for a new password outlasts whatever covered it (a lock, an
        # automatic lock, a deactivation) and a reset link anyone may ask for
        # (``start_recovery``): only a new password lifts it. Until then the account may
        # not sign in (SSO refused, the password leads to "Choose a new password"); the
        # person who uses the reset link sets a new one, which satisfies it.
        user.status = AWAITING_NEW_PASSWORD
    if user.status not in SIGN_IN_ALLOWED and name != "auto_lock":
        # A deactivation or a lock ends every session for good, as a password change does
        # (``passwords.end_sessions``): the status check alone would give a session or a
        # token from before it back with the reactivation (a stolen cookie included). From
        # any status, the automatic lockout's included: its sessions were only paused, and
        # an admin's lock or the IdP's deactivation of it must end them as any other does.
        # A plain value, written by the status change's own UPDATE (no statement more).
        # Not the automatic lockout itself: a stranger's wrong guesses cause it, and would
        # sign the owner out of everything at will; its sessions are refused while it lasts.
        user.session_epoch = (user.session_epoch or 0) + 1
    active = user.active = user.status != DEACTIVATED
    # Keep the SCIM view (`active`) in step with the status (a SCIM write's document is
    # already: it asked for the change).
    if user.data.get("active") is not active:
        user.data = {**user.data, "active": active}
    user.updated_at = utcnow()
    if bump_version:
        user.version += 1
    return before


# Transitions that end the reset and activation links mailed before (``ENDS_LINKS``): an
# admin's lock (a suspected takeover) and a deactivation end every session, and a link
# from before them would hand the account to whoever holds it once it is given back. Not
# the automatic lockout: a stranger's wrong guesses cause it, and must not kill the owner's
# link (as they end none of the owner's sessions).
ENDS_LINKS = frozenset({"lock", "deactivate"})


def record_transition(
    session: Session, user: User, name: str, before: str, reason: str | None = None
) -> None:
    """The event half of ``transition``: the named status change, in the caller's transaction;
    a lock or a deactivation also ends the account's live links there (``ENDS_LINKS``: every
    path to them, a SCIM write's ``active`` included, records its transition here)."""
    if name in ENDS_LINKS:
        passwords.expire_all_links(session, user)
    record(
        session,
        user.org_id,
        f"user.{name}",
        resource_type="User",
        resource_id=user.id,
        external_id=user.external_id,
        user_name=user.user_name,
        detail=reason,
        changes={"status": {"before": before, "after": user.status}},
    )


def record_sign_in(session: Session, user: User) -> None:
    """A successful sign-in: PROVISIONED becomes ACTIVE (a transition, with its event)
    and last-login is set.

    The status is part of the SCIM resource (the product extension): its change moves
    ``meta.version`` and ``meta.lastModified`` together (RFC 7643 §3.1), or a client
    syncing by ``meta.lastModified gt`` misses it. Last-login alone moves neither.
    """
    now = user.last_login_at = utcnow()
    if user.status == PROVISIONED:
        user.status = ACTIVE
        user.version += 1
        user.updated_at = now
        record(
            session,
            user.org_id,
            "user.first_sign_in",
            resource_type="User",
            resource_id=user.id,
            external_id=user.external_id,
            user_name=user.user_name,
            changes={"status": {"before": PROVISIONED, "after": ACTIVE}},
        )
