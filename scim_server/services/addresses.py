"""Where a person's mail goes: their contact's e-mail, else the primary SCIM e-mail."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from scim_server.errors import InvalidValueError
from scim_server.models import Contact, User
from scim_server.services import mail


def scim_email(doc: dict[str, Any]) -> str | None:
    """The primary e-mail of a SCIM user document, else its first one."""
    emails = [e for e in doc.get("emails") or [] if isinstance(e, dict) and e.get("value")]
    primary = [e for e in emails if e.get("primary") is True]
    chosen = primary[0] if primary else (emails[0] if emails else None)
    value = chosen.get("value") if chosen else None
    return value if isinstance(value, str) else None


def user_address(session: Session, user: User) -> str | None:
    """The address to write to about ``user``'s account, or None when there is none.

    An address is stored as the IdP or an admin gave it; one mail cannot go to
    (``mail.check_recipient``: a display name, a second address, no domain) counts as
    none. Mail is queued in the transaction of what it tells (a lockout, a reset link), so
    a refused recipient would roll that back: the lock would never hold, and the forgot
    page would answer differently for such an account."""
    contact = session.get(Contact, (user.org_id, user.contact_id)) if user.contact_id else None
    found = contact.email if contact is not None and contact.email else None
    found = found or scim_email(user.data or {})
    if found is None:
        return None
    try:
        return mail.check_recipient(found)
    except InvalidValueError:
        return None


def still_has(session: Session, user: User, sent_to: str) -> bool:
    """Whether ``user``'s address (``user_address``) is still ``sent_to``, where a secret went.

    Compared ignoring case: an address whose case alone changed names the same mailbox
    (RFC 5321 §2.4: domains are case-insensitive, and a local part told apart by case
    "impedes interoperability and is discouraged"; IdPs change the case of addresses
    freely), so a link mailed there keeps working. Any other change (a typo corrected, a
    mailbox given to someone else) is another mailbox, and no address is none. The mail
    worker (``mail_delivery.why_unwanted``) and the link pages (``recovery``) decide by
    this one rule."""
    address = user_address(session, user)
    return address is not None and address.casefold() == sent_to.casefold()
