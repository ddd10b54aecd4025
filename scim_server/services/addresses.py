"""Where a person's mail goes: their contact's e-mail, else the primary SCIM e-mail."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from scim_server.models import Contact, User


def user_address(session: Session, user: User) -> str | None:
    """The address to write to about ``user``'s account, or None when there is none."""
    if user.contact_id is not None:
        contact = session.get(Contact, (user.org_id, user.contact_id))
        if contact is not None and contact.email:
            return contact.email
    emails: Any = (user.data or {}).get("emails")
    if isinstance(emails, list):
        values = [e for e in emails if isinstance(e, dict) and isinstance(e.get("value"), str)]
        for e in sorted(values, key=lambda e: not e.get("primary")):
            return str(e["value"])
    return None
