"""Finding accounts: by userName in bulk (the spreadsheet import plans every row at once), and
the accounts a typed login names (the password sign-in and the forgot form: one rule)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import CompoundSelect, select, tuple_, union
from sqlalchemy.orm import Session

from scim_server.models import Contact, User
from scim_server.text import fold

BATCH = 500


def by_user_names(session: Session, org_id: str, names: Iterable[str]) -> dict[str, User]:
    """The accounts whose userName is one of ``names``, keyed by the folded userName."""
    keys = sorted({fold(n) for n in names if n})
    found: dict[str, User] = {}
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        for user in session.scalars(
            select(User).where(User.org_id == org_id, User.user_name_key.in_(chunk))
        ):
            found[user.user_name_key] = user
    return found


def named_by_login(key: str, orgs: Any) -> CompoundSelect[str, str]:
    """(org_id, id) of the users whose login name, SCIM userName or contact e-mail is ``key``
    (folded: ``text.fold``), in the organizations ``orgs`` names (a list of ids, or a
    subquery selecting them).

    What the password form accepts (``sso.local.accounts.find_account``) is what the forgot
    form mails a link for (``services.recovery``): both take their accounts from here. A
    ``UNION`` of three lookups, each naming its organizations (``org_id IN (...)``) so that
    it probes an index leading with ``org_id`` once per organization: one ``OR`` over the
    users/contacts join cannot use those indexes and scanned every user of the server.
    """
    by_login = select(User.org_id, User.id).where(User.org_id.in_(orgs), User.login_name_key == key)
    by_user_name = select(User.org_id, User.id).where(
        User.org_id.in_(orgs), User.user_name_key == key
    )
    by_email = select(User.org_id, User.id).where(
        tuple_(User.org_id, User.contact_id).in_(
            select(Contact.org_id, Contact.id).where(
                Contact.org_id.in_(orgs), Contact.email_key == key
            )
        )
    )
    return union(by_login, by_user_name, by_email)
