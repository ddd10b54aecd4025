"""What SCIM writes mean for credentials: the welcome of a new user, the IdP's password.

Called by ``services.users`` inside its create, replace and patch transactions,
kept here so the user write path stays about users. The create path stays
cheap: one settings read (the organization row is already in the session), one
look for an SSO connection when ``sign_in_methods`` is automatic, and one row
for the worker; nothing at all for SSO-only organizations.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from scim_server.db import Batch, insert_now, utcnow
from scim_server.errors import InvalidValueError, MutabilityError
from scim_server.models import Contact, CredentialSchedule, User
from scim_server.services import credential_schedules, mail, passwords, settings
from scim_server.services.addresses import scim_email, user_address
from scim_server.services.credentials import SENDABLE, Delivery, settle
from scim_server.services.passwords import Hashing
from scim_server.services.settings import IdentitySettings


def queue_welcome(
    session: Session,
    base_url: str,
    user: User,
    doc: dict[str, Any],
    current: IdentitySettings,
    batch: Batch | None = None,
) -> str | None:
    """A user just created over SCIM gets its welcome mail on the worker's next pass.

    Written in the create transaction as a credentials send due at once
    (``credential_schedules``, reason ``welcome``): the worker generates and hashes
    the password and queues the mail, so the IdP's request pays for neither
    argon2id nor the policy check. Nothing for an SSO-only organization, an
    inactive user, or one whose IdP sent a password (Okta password sync: the
    person knows it). No address: the user is created all the same, and the
    returned note (for the create's audit event) says why no mail will go.
    ``batch``: the schedule is added to it (and the user's new person contact, if any,
    is found in it) rather than written now.
    """
    if user.status not in SENDABLE or doc.get("password") is not None:
        return None
    if not settings.passwords_allowed(session, user.org_id, current):
        return None
    # The worker mails the contact's address (else the SCIM one); here it is enough
    # to know there is one, and the document usually says so without a query.
    if scim_email(doc) is None and _address(session, user, batch) is None:
        return "no welcome mail: the user has neither a contact e-mail nor a SCIM e-mail"
    now = utcnow()
    if batch is not None:
        # The worker's row: nothing here reads it again, so a plain row (every column,
        # as ``insert_now`` would write an object's), no ORM object.
        batch.add_rows(_SCHEDULES, [{**_WELCOME_ROW, **_welcome(user, base_url, now)}])
        return None
    # A Core INSERT: the create path's rows skip the unit of work.
    insert_now(session, CredentialSchedule(**_welcome(user, base_url, now)))
    return None


_SCHEDULES = CredentialSchedule.__table__
# A welcome's row by column name: what ``_welcome`` does not give is the column's default
# (each a constant; ``created_at``'s callable default is given).
_WELCOME_ROW: dict[str, Any] = {
    c.name: None if c.default is None or c.default.is_callable else c.default.arg
    for c in _SCHEDULES.columns
}


def _welcome(user: User, base_url: str, now: Any) -> dict[str, Any]:
    return {
        "org_id": user.org_id,
        "user_id": user.id,
        "send_at": now,
        "recipient": None,
        "base_url": base_url,
        "reason": "welcome",
        "state": "scheduled",
        "attempts": 0,
        "created_at": now,
    }


def _address(session: Session, user: User, batch: Batch | None) -> str | None:
    contact = batch.pending(Contact, (user.org_id, user.contact_id)) if batch else None
    if contact is None:
        return user_address(session, user)
    return contact.email or scim_email(user.data or {})


def set_scim_password(
    session: Session,
    hashing: Hashing,
    user: User,
    password: Any,
    current: IdentitySettings,
    *,
    created: bool = False,
) -> bool:
    """The IdP's ``password`` (RFC 7643 §4.1.1; Okta password sync), in the caller's transaction.

    Refused where the organization signs in only through SSO, or when the policy
    refuses it (400 invalidValue naming the rule). The same password sent again
    changes nothing (returns False). Never stored in the SCIM document.

    The person knows this password: the welcome still waiting for the worker is dropped
    (Okta's password sync PATCHes it right after the create), and the credentials mail
    not yet sent is cancelled (its temporary password or link no longer works), as new
    credentials cancel older ones. ``created``: the user was created in this transaction
    with its password, so has neither (nothing to look for on the create path).
    """
    if not settings.passwords_allowed(session, user.org_id, current):
        # RFC 7644 §3.12 mutability: the attribute cannot be written in the
        # organization's current state (its people have no local password).
        raise MutabilityError(
            "This organization signs in through single sign-on only: its people have no "
            "local password, so 'password' cannot be set."
        )
    if not isinstance(password, str):
        raise InvalidValueError("'password' must be a string.")
    existing = passwords.current_password(session, user)
    if (
        existing is not None
        and not existing.temporary
        and len(password) <= passwords.MAX_INPUT_CHARS
        and passwords.verify_password(hashing, existing.hash, password)[0]
    ):
        return False
    identifiers = passwords.personal_identifiers(user, user_address(session, user))
    try:
        passwords.set_password(
            session,
            hashing,
            current.password_policy(),
            user,
            password,
            identifiers=identifiers,
            detail="password from the identity provider (SCIM)",
        )
    except passwords.PasswordRejected as exc:
        raise InvalidValueError(f"'password' refused ({exc.rule} rule): {exc.detail}") from None
    passwords.expire_links(session, user, "activation")
    passwords.expire_links(session, user, "reset")
    settle(session, user, "password set by the identity provider")
    if not created:
        credential_schedules.drop_welcome(
            session, user, "no welcome: the identity provider set the password"
        )
        mail.cancel_credentials(
            session, user.org_id, user.id, "the identity provider set the password since"
        )
    return True


def on_create(
    session: Session,
    delivery: Delivery | None,
    user: User,
    doc: dict[str, Any],
    current: IdentitySettings,
    batch: Batch | None = None,
) -> str | None:
    """Before the create's event, in its transaction: queue the welcome mail.

    Returns a note for the event's explanation when a welcome was due but cannot
    go (no address). ``current``: the settings provisioning read (not read again). An
    organization whose ``sign_in_methods`` is automatic costs one look for an SSO
    connection.
    """
    if delivery is None or doc.get("password") is not None:
        return None
    return queue_welcome(session, delivery.base_url, user, doc, current, batch)


def after_create(
    session: Session, delivery: Delivery | None, user: User, doc: dict[str, Any]
) -> None:
    """After the create's event, in its transaction: the IdP's ``password``, if it sent one."""
    password = doc.get("password")
    if password is None:
        return
    if delivery is None:
        raise MutabilityError("'password' cannot be set here.")
    current = settings.get_settings(session, user.org_id)
    set_scim_password(session, delivery.hashing, user, password, current, created=True)


def on_update(session: Session, hashing: Hashing | None, user: User, password: Any) -> bool:
    """After a PUT or PATCH, in its transaction: set the IdP's ``password`` when it sent one.

    True when the password changed (an echo of the current one changes nothing).
    """
    if password is None:
        return False
    if hashing is None:
        raise MutabilityError("'password' cannot be set here.")
    current = settings.get_settings(session, user.org_id)
    return set_scim_password(session, hashing, user, password, current)
