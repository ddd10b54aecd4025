"""A person's own way back in: "forgot password", and the mailed activation and reset links.

``request_reset`` always behaves the same for the caller (the page gives one
answer whether or not the account exists); for an account that may use a
password it mails a single-use reset link (60 minutes) and puts the user in
``RECOVERY`` without removing the current password, since anyone can ask.
At most ``FORGOT_PER_HOUR`` links an hour go to one account, so the form
cannot flood a mailbox (the page also limits each address).

``use_link`` is the POST of the link's page: it consumes the link and sets the
chosen password through the policy in one transaction, so a refused password
leaves the link usable. ``end_expired_recoveries`` is the worker's: a reset
link that expired unused ends ``RECOVERY``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    column,
    exists,
    func,
    or_,
    select,
    table,
    true,
)
from sqlalchemy.orm import Session, sessionmaker

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.email_domains import email_domain
from scim_server.errors import ConflictError, DomainError
from scim_server.models import CredentialToken, Organization, User, UserPassword
from scim_server.services import (
    credentials,
    lifecycle,
    lockout,
    mail,
    passwords,
    settings,
    user_lookup,
)
from scim_server.services.addresses import still_has, user_address
from scim_server.services.credentials import Delivery, about, login_of
from scim_server.services.lifecycle import RECOVERY
from scim_server.text import fold

log = logging.getLogger(__name__)

RESET_LINK_TTL = timedelta(minutes=60)
FORGOT_PER_HOUR = 3
# Accounts one address may name in one organization: each organization has its own
# places, so another's accounts never take them.
MAX_ACCOUNTS = 10
# Organizations (that allow passwords) one address is looked up in, where no organization
# holds its domain verified: each takes one place, however many accounts it gives it.
MAX_ORGS = 50
MAX_IDENTIFIER = 320
PAGE_PURPOSES = {"activate": "activation", "reset": "reset"}

# The verified e-mail domains, read without importing ``sso`` (services sit below it);
# tests/services/test_recovery.py checks these names against sso's model.
SSO_EMAIL_DOMAINS = table(
    "sso_email_domains", column("org_id"), column("domain"), column("verified_at")
)


class LinkInvalidError(DomainError):
    """The link is unknown, used or expired (which one is not said)."""

    status = 410


@dataclass(frozen=True)
class LinkInfo:
    """What the link's page shows before anything is consumed."""

    purpose: str
    username: str
    org_name: str
    min_length: int
    max_length: int


def request_reset(
    session: Session, delivery: Delivery, identifier: Any, *, now: datetime | None = None
) -> int:
    """Mail a reset link to each account this e-mail address or username names; returns how many.

    The caller shows the same answer whatever this returns.
    """
    if not isinstance(identifier, str) or not 3 <= len(identifier.strip()) <= MAX_IDENTIFIER:
        return 0
    typed = identifier.strip()
    key = fold(typed)
    now = now or utcnow()
    sent = 0
    with session.begin():
        for user in _accounts_to_mail(session, typed, key):
            if user_address(session, user) is None:
                continue
            recent = credentials.sends_since(
                session, user, ("forgot",), now - credentials.THROTTLE_WINDOW
            )
            if len(recent) >= FORGOT_PER_HOUR:
                record(
                    session,
                    user.org_id,
                    "user.credentials.forgot",
                    outcome="failure",
                    **about(user),
                    detail=f"reset link not sent: {len(recent)} already sent in the last hour",
                )
                continue
            credentials.deliver_reset_link(
                session, delivery, user, reason="forgot", ttl=RESET_LINK_TTL, by_admin=False
            )
            sent += 1
    return sent


def _accounts_to_mail(session: Session, typed: str, key: str) -> list[User]:
    """The accounts a reset link may go to: those the password sign-in could reach with the
    same text (login name, SCIM userName, contact e-mail: ``user_lookup.named_by_login``, the
    sign-in's own lookup), at most ``MAX_ACCOUNTS`` in each organization; one statement.

    As the sign-in (``sso.local.accounts.find_account``): an address whose domain an
    organization holds verified names only that organization's accounts, and only
    organizations that allow passwords count. Both are decided in the lookup itself, before
    any limit, and the limit is per organization: one organization's accounts (a SCIM
    client may give any number of them someone else's address) can never push another's
    out of the list, nor get mail for an address whose domain another organization proved
    it owns. Whether an account has an address is read per row after the limit
    (``user_address``: the contact's e-mail, else the SCIM one, as mail takes it); it costs
    an organization at most two of its own places, since login names and userNames are each
    unique in an organization and an account found by its contact's e-mail has that address.
    """
    owner = domain_owner(session, typed)
    orgs = select(Organization.id).where(_passwords_allowed())
    if owner is not None:
        orgs = orgs.where(Organization.id == owner)
    named = user_lookup.named_by_login(key, orgs.scalar_subquery()).subquery()
    ranked = (
        select(
            User.org_id,
            User.id,
            func.row_number().over(partition_by=User.org_id, order_by=User.id).label("place"),
            func.dense_rank().over(order_by=User.org_id).label("org_place"),
        )
        .join(named, (User.org_id == named.c.org_id) & (User.id == named.c.id))
        .where(User.status.in_(credentials.SENDABLE))
        .subquery()
    )
    found = session.scalars(
        select(User)
        .join(ranked, (User.org_id == ranked.c.org_id) & (User.id == ranked.c.id))
        .where(ranked.c.place <= MAX_ACCOUNTS, ranked.c.org_place <= MAX_ORGS)
        .order_by(User.org_id, User.id)
    ).all()
    # The rule itself has the last word (the statement's copy of it only narrows the lookup).
    allowed: dict[str, bool] = {}
    for user in found:
        if user.org_id not in allowed:
            current = settings.get_settings(session, user.org_id)
            allowed[user.org_id] = settings.passwords_allowed(session, user.org_id, current)
    return [user for user in found if allowed[user.org_id]]


def _passwords_allowed() -> ColumnElement[bool]:
    """``settings.passwords_allowed`` of the organization row, as SQL: the admin's
    ``sign_in_methods`` unless it is ``sso_only``; unset, no enabled SSO connection.
    tests/services/test_recovery.py holds it to the same answers as the function."""
    methods = func.coalesce(Organization.settings["sign_in_methods"].as_string(), "")
    connected = exists().where(
        settings.SSO_CONNECTIONS.c.org_id == Organization.id,
        settings.SSO_CONNECTIONS.c.enabled == true(),
    )
    return or_(and_(methods != "", methods != "sso_only"), and_(methods == "", ~connected))


def domain_owner(session: Session, address: str) -> str | None:
    """The organization that holds ``address``'s domain verified, if any (a pending claim
    decides nothing: anyone may make one).

    ``sso.local.accounts.domain_org``'s answer (services do not import ``sso``; a test
    holds the two to the same answers): the domain as ``email_domains.email_domain``
    normalises it for both, then the one verified claim of it.
    """
    name = email_domain(address)
    if name is None:
        return None
    return session.scalar(
        select(SSO_EMAIL_DOMAINS.c.org_id).where(
            SSO_EMAIL_DOMAINS.c.domain == name, SSO_EMAIL_DOMAINS.c.verified_at.is_not(None)
        )
    )


def open_link(session: Session, token: Any, purpose: str) -> LinkInfo:
    """The GET of a link's page: who it is for; nothing is consumed."""
    link = passwords.find_link(session, token, purpose)
    if link is None:
        raise LinkInvalidError("This link is not valid any more.")
    user = session.get(User, (link.org_id, link.user_id))
    org = session.get(Organization, link.org_id)
    if user is None or org is None:
        raise LinkInvalidError("This link is not valid any more.")
    _check_address(session, link, user)
    current = settings.get_settings(session, link.org_id)
    if not settings.passwords_allowed(session, link.org_id, current):
        # Single sign-on only since the link was sent: no password to choose (``use_link``
        # refuses one); the page must not ask for it.
        raise LinkInvalidError("This link is not valid any more.")
    policy = current.password_policy()
    return LinkInfo(purpose, login_of(user), org.name, policy.min_length, policy.max_length)


def use_link(session: Session, delivery: Delivery, token: Any, purpose: str, password: Any) -> User:
    """The POST of a link's page: consume it and set the chosen password, or change nothing.

    ``PasswordRejected`` (the rule's message) and every other refusal roll the
    whole transaction back, so the link stays usable.
    """
    with session.begin():
        link = passwords.consume_link(session, token, purpose)
        if link is None:
            raise LinkInvalidError("This link is not valid any more.")
        user = credentials.locked_user(session, link.org_id, link.user_id)
        _check_address(session, link, user)
        current = credentials.require_passwords(session, user.org_id)
        if user.status not in credentials.SENDABLE:
            raise ConflictError("This account is locked or deactivated: ask your administrator.")
        address = user_address(session, user)
        passwords.set_password(
            session,
            delivery.hashing,
            current.password_policy(),
            user,
            password,
            identifiers=passwords.personal_identifiers(user, address),
            detail=f"chosen through the {purpose} link",
        )
        passwords.expire_links(session, user, "activation")
        passwords.expire_links(session, user, "reset")
        # The wrong guesses before were at a password that is gone: forgotten, as a whole
        # sign-in forgets them (else two more after the reset lock the owner out again).
        lockout.clear(session, user)
        credentials.settle(session, user, f"password chosen through the {purpose} link")
        record(
            session,
            user.org_id,
            "user.credentials.reset_completed"
            if purpose == "reset"
            else "user.credentials.activated",
            **about(user),
            detail=f"{purpose} link used; a password was chosen",
        )
        if address:
            mail.queue_mail(
                session,
                user.org_id,
                "password_changed",
                address,
                {"username": login_of(user), "login_url": delivery.login_url()},
                user_id=user.id,
            )
    return user


def _check_address(session: Session, link: CredentialToken, user: User) -> None:
    """Refuse a link mailed to an address the account no longer has (``addresses.still_has``).

    The mail worker does not send a secret to such an address (``mail_delivery``); one
    already delivered there must not open the account either: whoever reads that mailbox
    (a typo's owner, the next holder of a mailbox given away) is not the account's person.
    Decided at each use, whatever changed the address (a SCIM PATCH or PUT, an admin's edit
    of the contact, an import, the rules), so no way of changing it can be missed; the
    link answers as any dead link. A link sent to an admin ("to myself": ``sent_to`` None)
    is theirs to hand over and is not tied to the account's address."""
    if link.sent_to is None or still_has(session, user, link.sent_to):
        return
    log.info(
        "%s link of user %s refused: mailed to an address the account no longer has",
        link.purpose,
        user.id,
    )
    raise LinkInvalidError("This link is not valid any more.")


def end_expired_recoveries(factory: sessionmaker[Session], now: datetime, limit: int = 200) -> int:
    """The worker's: reset links that expired unused end ``RECOVERY``; returns how many links.

    The user goes back to where they were: ``AWAITING_NEW_PASSWORD`` when a
    temporary password must still be changed, an activation link is live or an admin
    demanded a new password, else ``PROVISIONED``/``ACTIVE``. (A reset asked for while a
    new password is demanded never left ``AWAITING_NEW_PASSWORD``: ``lifecycle``.)
    """
    with factory() as session, session.begin():
        expired = session.scalars(
            select(CredentialToken)
            .where(
                CredentialToken.purpose == "reset",
                CredentialToken.used_at.is_(None),
                CredentialToken.expires_at <= now,
            )
            .order_by(CredentialToken.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for link in expired:
            link.used_at = link.expires_at
            user = session.get(User, (link.org_id, link.user_id))
            if user is None or user.status != RECOVERY or _has_live(session, user, "reset", now):
                continue
            # An admin's demand (only a RECOVERY from before 0039 may still hold one: a reset
            # asked for now leaves AWAITING_NEW_PASSWORD as it is) is not met by a link unused.
            held = user.new_password_required
            lifecycle.transition(
                session, user, "complete_recovery", reason="the reset link expired unused"
            )
            if held or _must_choose(session, user, now):
                lifecycle.transition(
                    session,
                    user,
                    "require_new_password",
                    reason="back to choosing a password after the reset link expired",
                )
        return len(expired)


def _has_live(session: Session, user: User, purpose: str, now: datetime) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    CredentialToken.org_id == user.org_id,
                    CredentialToken.user_id == user.id,
                    CredentialToken.purpose == purpose,
                    CredentialToken.used_at.is_(None),
                    CredentialToken.expires_at > now,
                )
            )
        )
    )


def _must_choose(session: Session, user: User, now: datetime) -> bool:
    row = session.get(UserPassword, (user.org_id, user.id))
    return (row is not None and row.must_change) or _has_live(session, user, "activation", now)
