"""Credentials a person receives by mail: the welcome, resends, an admin's password reset.

Per the organization's ``credentials_delivery``: a generated temporary password
(argon2id-hashed at once; its clear text lives only in the mail's outbox row,
whose body is cleared once sent) or a single-use activation link (only its
SHA-256 is stored). Every send happens in the caller's or its own transaction
with the mail it queues, its ``credential_sends`` record and its audit event,
so a rollback sends nothing. Organizations that sign in only through SSO get
no credentials at all (DESIGN.md §1: their people sign in at their IdP).

Status semantics (issue 12): a temporary password that must be changed, or an
activation link, puts the user in ``AWAITING_NEW_PASSWORD``; an admin's reset
link puts them in ``RECOVERY``. A person whose account is deactivated or
locked receives nothing until an admin activates or unlocks it (a mail queued
before is cancelled when the worker comes to it: ``mail_delivery``).

New credentials (or a new link) cancel the account's earlier credentials mails not
yet sent (queued, or failed and waiting for a retry): the person gets the latest
ones only, never a mail whose password or link no longer works.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import ConflictError, DomainError, NotFoundError
from scim_server.models import Contact, CredentialSend, MailOutbox, User
from scim_server.services import lifecycle, mail, passwords, settings
from scim_server.services.addresses import user_address
from scim_server.services.lifecycle import (
    ACTIVE,
    AWAITING_NEW_PASSWORD,
    PROVISIONED,
    RECOVERY,
)
from scim_server.services.passwords import Hashing
from scim_server.services.settings import IdentitySettings

# Statuses in which a person may be sent credentials.
SENDABLE = frozenset({PROVISIONED, ACTIVE, AWAITING_NEW_PASSWORD, RECOVERY})
# Admin sends and resends of one user's credentials within an hour (a mailbox is not a target).
RESENDS_PER_HOUR = 3
THROTTLE_WINDOW = timedelta(hours=1)
ADMIN_SENDS = ("send", "resend")


class TooManyRequestsError(DomainError):
    """Too many sends for this user in the last hour; ``retry_after`` in seconds."""

    status = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class SsoOnlyError(ConflictError):
    """The organization signs in only through SSO: no password, no credentials mail."""


@dataclass(frozen=True)
class Delivery:
    """What making credentials needs from the running server: the hash cost and the public URL."""

    hashing: Hashing
    base_url: str

    def login_url(self) -> str:
        return mail.login_url(self.base_url)

    def link(self, purpose: str, token: str) -> str:
        """The page a mailed link opens (``sso.recovery``): activation or reset."""
        page = "activate" if purpose == "activation" else "reset"
        return f"{self.base_url.rstrip('/')}/sso/{page}/{token}"


@dataclass(frozen=True)
class Sent:
    """What went out (never the secret): the mail, its kind, to whom, and how."""

    mail_id: str
    kind: str
    recipient: str
    method: str  # "temporary_password" | "activation_link" | "reset_link"


# -- who and whether ------------------------------------------------------------------------


def about(user: User) -> dict[str, Any]:
    return {
        "resource_type": "User",
        "resource_id": user.id,
        "external_id": user.external_id,
        "user_name": user.user_name,
    }


def _person_name(session: Session, user: User) -> str | None:
    contact = session.get(Contact, (user.org_id, user.contact_id)) if user.contact_id else None
    return (contact.given_name if contact else None) or user.display_name


def login_of(user: User) -> str:
    """The name the person signs in with (the product's username, else the SCIM userName)."""
    return user.login_name or user.user_name


def require_passwords(
    session: Session, org_id: str, current: IdentitySettings | None = None
) -> IdentitySettings:
    """The organization's settings, if its people may have a password; else ``SsoOnlyError``."""
    current = current or settings.get_settings(session, org_id)
    if not settings.passwords_allowed(session, org_id, current):
        raise SsoOnlyError(
            "This organization signs in through single sign-on only (sign_in_methods is "
            "sso_only): its people sign in at their identity provider and get no password "
            "or credentials mail."
        )
    return current


def check_sendable(user: User) -> None:
    if user.status not in SENDABLE:
        raise ConflictError(
            f"The account is {user.status}: activate or unlock it before sending credentials."
        )


def mail_time(moment: datetime, *, round_up: bool = False) -> str:
    """A moment as mails state it ("on 7 December 2026 at 11:46 UTC"). To the minute below,
    which errs early for an expiry; ``round_up`` for a moment the reader must not come back
    before (an automatic lock's end)."""
    if round_up and (moment.second or moment.microsecond):
        moment = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return "on " + moment.strftime("%d %B %Y at %H:%M UTC").lstrip("0")


# -- status -----------------------------------------------------------------------------------


def await_new_password(session: Session, user: User, reason: str) -> None:
    """Bring the user to ``AWAITING_NEW_PASSWORD`` (the next sign-in chooses a password).

    A reset link asked for before dies, whatever the status: under an admin's demand a
    reset asked for leaves ``AWAITING_NEW_PASSWORD`` as it is (``lifecycle``), and its link
    must not outlive the credentials that replace it."""
    passwords.expire_links(session, user, "reset")
    if user.status == AWAITING_NEW_PASSWORD:
        return
    if user.status == RECOVERY:
        lifecycle.transition(session, user, "complete_recovery", reason=reason)
    lifecycle.transition(session, user, "require_new_password", reason=reason)


def settle(session: Session, user: User, reason: str) -> None:
    """End ``AWAITING_NEW_PASSWORD`` or ``RECOVERY``: the person has a password of their own
    (or new credentials that need no change); a reset link asked for before dies with it."""
    passwords.expire_links(session, user, "reset")
    if user.status in (AWAITING_NEW_PASSWORD, RECOVERY):
        lifecycle.transition(session, user, "complete_recovery", reason=reason)


# -- making and queueing ----------------------------------------------------------------------


def deliver(
    session: Session,
    delivery: Delivery,
    user: User,
    current: IdentitySettings,
    *,
    reason: str,
    recipient: str | None = None,
    note: str | None = None,
    previous: str | None = None,
) -> Sent:
    """Make new credentials for ``user`` and queue their mail, in the caller's transaction.

    ``recipient`` None: the user's own address (``user_address``); else the acting
    admin's ("to myself"), and the mail says whom it is for. The previous temporary
    password or activation link stops working. Raises ``ConflictError`` when the
    user has no address to send to. So does a reset link asked for before
    (``await_new_password``, ``settle``): the admin's credentials replace it.
    ``note`` (why, beyond ``reason``) ends the event's detail; ``previous``: the address
    the credentials these replace went to, the event's recipient ``before`` (the worker's
    welcome sent again to a corrected address, ``mail_delivery``).
    """
    for_admin = recipient is not None
    address = recipient or user_address(session, user)
    if not address:
        raise ConflictError(
            "The user has no e-mail address (neither on its contact nor in its SCIM emails): "
            "send the credentials to yourself instead."
        )
    now = utcnow()
    context: dict[str, Any] = {
        "username": login_of(user),
        "login_url": delivery.login_url(),
        "name": None if for_admin else _person_name(session, user),
        "for_user": _for_user(user) if for_admin else None,
    }
    why = f"credentials {reason}"
    if current.credentials_delivery == "activation_link":
        days = current.number("activation_link_days")
        # New credentials replace the old ones: no earlier password outlives the link
        # (as a new temporary password replaces it in the other mode).
        passwords.remove_password(session, user, detail=f"{why}: replaced by an activation link")
        token = passwords.issue_link(
            session,
            user,
            "activation",
            timedelta(days=days),
            sent_to=None if for_admin else address,
        )
        await_new_password(session, user, why)
        kind, method = "activation_link", "activation_link"
        context |= {
            "link": delivery.link("activation", token),
            "expires": mail_time(now + timedelta(days=days)),
        }
    else:
        days = current.number("temporary_password_days")
        secret = passwords.generate_temporary(current.password_policy())
        must_change = current.must_change_on_first_login
        passwords.set_password(
            session,
            delivery.hashing,
            current.password_policy(),
            user,
            secret,
            identifiers=[],
            temporary=True,
            must_change=must_change,
            expires_at=now + timedelta(days=days),
            detail=f"temporary password ({why})",
        )
        passwords.expire_links(session, user, "activation")
        if must_change:
            await_new_password(session, user, why)
        else:
            settle(session, user, why)
        kind = {"resend": "resend", "reset": "password_reset"}.get(reason, "welcome")
        method = "temporary_password"
        context |= {
            "temporary_password": secret,
            "expires": mail_time(now + timedelta(days=days)),
            "must_change": must_change,
        }
    outbox = _queue(session, user, kind, address, context, reason)
    return _recorded(
        session, user, reason, outbox.id, kind, address, method, for_admin, note, previous
    )


def deliver_reset_link(
    session: Session,
    delivery: Delivery,
    user: User,
    *,
    reason: str,
    ttl: timedelta,
    recipient: str | None = None,
    by_admin: bool,
) -> Sent:
    """A reset link (``RECOVERY`` until used or expired), mailed in the caller's transaction."""
    for_admin = recipient is not None
    address = recipient or user_address(session, user)
    if not address:
        raise ConflictError(
            "The user has no e-mail address (neither on its contact nor in its SCIM emails): "
            "send the link to yourself instead."
        )
    token = passwords.issue_link(
        session, user, "reset", ttl, sent_to=None if for_admin else address
    )
    if user.status != RECOVERY:
        lifecycle.transition(session, user, "start_recovery", reason=f"password {reason}")
    # A moment, not a duration: the worker may send the mail later than it is queued.
    expires = mail_time(utcnow() + ttl)
    context = {
        "username": login_of(user),
        "login_url": delivery.login_url(),
        "link": delivery.link("reset", token),
        "expires": expires,
        "by_admin": by_admin,
        "name": None if for_admin else _person_name(session, user),
        "for_user": _for_user(user) if for_admin else None,
    }
    # A person's own request (``recovery.forgot``) leaves every password and link working
    # but the earlier reset link: the welcome or an admin's mail still waiting holds
    # credentials that still work, and is not a stranger's to stop. An admin's reset
    # removed the password first (``reset_password``): everything waiting goes.
    replaces = mail.CREDENTIAL_KINDS if by_admin else mail.replaced_by("reset_link")
    outbox = _queue(session, user, "reset_link", address, context, reason, replaces)
    return _recorded(
        session, user, reason, outbox.id, "reset_link", address, "reset_link", for_admin
    )


def _queue(
    session: Session,
    user: User,
    kind: str,
    address: str,
    context: dict[str, Any],
    reason: str,
    replaces: tuple[str, ...] = mail.CREDENTIAL_KINDS,
) -> MailOutbox:
    """Queue the credentials mail; the earlier ones not yet sent are cancelled (they hold a
    password or link these replace: ``replaces``), an abandoned one too (an admin's retry
    would send it)."""
    mail.cancel_credentials(
        session, user.org_id, user.id, f"replaced by newer credentials ({reason})", replaces
    )
    return mail.queue_mail(session, user.org_id, kind, address, context, user_id=user.id)


def _for_user(user: User) -> str:
    name = user.display_name
    return f"{name} ({login_of(user)})" if name else login_of(user)


def _recorded(
    session: Session,
    user: User,
    reason: str,
    mail_id: str,
    kind: str,
    address: str,
    method: str,
    for_admin: bool,
    note: str | None = None,
    previous: str | None = None,
) -> Sent:
    session.add(
        CredentialSend(
            org_id=user.org_id,
            id=str(uuid.uuid4()),
            user_id=user.id,
            reason=reason,
            mail_id=mail_id,
            created_at=utcnow(),
        )
    )
    whom = "the acting admin" if for_admin else "the user"
    detail = f"{method.replace('_', ' ')} mailed to {whom} ({address})"
    recipient = {"after": address} if previous is None else {"before": previous, "after": address}
    record(
        session,
        user.org_id,
        f"user.credentials.{reason}",
        **about(user),
        detail=f"{detail}; {note}" if note else detail,
        changes={"credentials": {"after": method}, "recipient": recipient},
    )
    return Sent(mail_id=mail_id, kind=kind, recipient=address, method=method)


def sends_since(
    session: Session, user: User, reasons: tuple[str, ...], since: datetime
) -> list[datetime]:
    """When this user's credentials were sent for ``reasons`` since ``since``, oldest first."""
    return list(
        session.scalars(
            select(CredentialSend.created_at)
            .where(
                CredentialSend.org_id == user.org_id,
                CredentialSend.user_id == user.id,
                CredentialSend.reason.in_(reasons),
                CredentialSend.created_at > since,
            )
            .order_by(CredentialSend.created_at)
        )
    )


def _throttle(session: Session, user: User, now: datetime) -> None:
    recent = sends_since(session, user, ADMIN_SENDS, now - THROTTLE_WINDOW)
    if len(recent) >= RESENDS_PER_HOUR:
        retry = recent[-RESENDS_PER_HOUR] + THROTTLE_WINDOW - now
        seconds = max(int(retry.total_seconds()) + 1, 1)
        raise TooManyRequestsError(
            f"Credentials were already sent {len(recent)} times in the last hour to this user "
            f"(at most {RESENDS_PER_HOUR}); try again in {-(-seconds // 60)} minutes.",
            retry_after=seconds,
        )


# -- what an admin does -----------------------------------------------------------------------


def locked_user(session: Session, org_id: str, user_id: str) -> User:
    """The user's row, locked for this transaction; another organization's is not found."""
    user = session.scalar(
        select(User).where(User.org_id == org_id, User.id == user_id).with_for_update()
    )
    if user is None:
        raise NotFoundError(f"User {user_id!r} not found.")
    return user


def send_credentials(
    session: Session,
    delivery: Delivery,
    org_id: str,
    user_id: str,
    *,
    recipient: str | None = None,
    resend: bool = False,
) -> Sent:
    """An admin sends (or resends) the user's credentials now: new ones, the old ones die.

    At most ``RESENDS_PER_HOUR`` an hour per user (``TooManyRequestsError``).
    """
    with session.begin():
        user = locked_user(session, org_id, user_id)
        current = require_passwords(session, org_id)
        check_sendable(user)
        _throttle(session, user, utcnow())
        return deliver(
            session,
            delivery,
            user,
            current,
            reason="resend" if resend else "send",
            recipient=recipient,
        )


def reset_password(
    session: Session,
    delivery: Delivery,
    org_id: str,
    user_id: str,
    *,
    recipient: str | None = None,
) -> Sent:
    """An admin resets the password: the current one is removed (it may be compromised).

    Then a reset link (``RECOVERY``; it lasts ``activation_link_days``) or a new
    temporary password, per ``credentials_delivery``.
    """
    with session.begin():
        user = locked_user(session, org_id, user_id)
        current = require_passwords(session, org_id)
        check_sendable(user)
        passwords.remove_password(session, user, detail="password reset by an admin")
        passwords.expire_links(session, user, "activation")
        if current.credentials_delivery == "activation_link":
            ttl = timedelta(days=current.number("activation_link_days"))
            return deliver_reset_link(
                session, delivery, user, reason="reset", ttl=ttl, recipient=recipient, by_admin=True
            )
        passwords.expire_links(session, user, "reset")
        return deliver(session, delivery, user, current, reason="reset", recipient=recipient)
