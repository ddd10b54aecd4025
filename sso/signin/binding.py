"""Which account a sign-in reaches: the link of (connection, subject), else the fallbacks.

The link of (connection, subject) decides alone. Without one, the fallbacks
(externalId equal to the subject, then userName or a verified e-mail) may
only pick an account not yet linked on that connection (else
``subject_mismatch``: an e-mail must not override a bound subject, the
"nOAuth" takeover), and only when the values are the same text
(``scim_server.text.same_identity``), not merely equal under the fold of SCIM
uniqueness (else ``lookalike_identity``). Unverified values (an OIDC e-mail
without ``email_verified``, ``preferred_username``) never select an account.
Nor may a fallback select an account with an address in a verified domain bound to
another connection (``subject_mismatch``): that account is the other IdP's to sign in,
even when this IdP's subject equals its externalId or its userName.

Nor an account created just in time by another connection (``subject_mismatch``):
``users.source`` is ``jit`` and the account is linked on a connection other than this
one. ``sso.signin.jit`` links the creating subject in the creation's transaction, so
such an account is its creator's from the start, even when its first sign-in is
refused. Its externalId and userName are that IdP's values (a partner's subject, an
employee number such as ``E1234``, a name with no address), which the domain check
above cannot place: without this rule the employees' IdP asserting ``E1234`` would
enter, and link, the partner's account, and the partner's IdP an employee's. Accounts
made by SCIM or an admin are not affected: a fallback of a second connection still
binds them (moving to a new IdP). When an admin removed the creating link (``DELETE
/api/v1/sso/connections/<id>/links/<user_id>``, ``sso.signin.links.unlink``), or a
SAML transient NameID created the account (never linked), nothing ties it to a
connection any more: the fallbacks of any connection may bind it, the admin's decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.models import Contact, User
from scim_server.text import exact, fold, same_identity
from sso.connections.models import SsoConnection, SsoIdentityLink
from sso.errors import SsoError
from sso.signin import domains, links
from sso.signin.request import SignInRequest


@dataclass(frozen=True)
class Match:
    """The account a sign-in selected, and how: ``link`` or the fallback that chose it."""

    user: User
    matched_by: str  # "link" | "externalId" | "userName" | "email" | "jit"
    value: str | None = None  # the identity's value that matched (fallbacks)

    @property
    def needs_link(self) -> bool:
        return self.matched_by != "link"


class BindingError(SsoError):
    """A refusal about which account: ``user`` is the account the identity tried to reach."""

    def __init__(self, reason_code: str, detail: str, user: User) -> None:
        super().__init__(reason_code, detail)
        self.user = user


def find_user(session: Session, req: SignInRequest) -> Match | None:
    """The account this identity signs in to, or None (unknown); ``BindingError`` if refused.

    (1) The link of (connection, subject): that account, nothing else looked
    at. (2) Fallbacks, in order: externalId equal to the subject (exact,
    NFC); userName equal to the subject, a trusted userName or a verified
    e-mail; the contact e-mail equal to a verified e-mail. Candidates are
    found through the folded index keys, but a candidate binds only if a
    value is the same text (``same_identity``), and only if the account has
    no link on this connection yet.
    """
    if req.subject and req.subject_linkable:
        linked = links.of_subject(session, req.org_id, req.connection_id, req.subject)
        if linked is not None:
            user = session.get(User, (req.org_id, linked.user_id))
            if user is not None:
                return Match(user, "link")
    match = _fallback(session, req)
    if match is not None:
        _check_unlinked(session, req, match)
        _check_not_bound_elsewhere(session, req, match)
        _check_not_created_elsewhere(session, req, match)
    return match


def _check_unlinked(session: Session, req: SignInRequest, match: Match) -> None:
    """Once an account is linked on a connection, only that subject may enter it (nOAuth)."""
    other = links.of_user(session, req.org_id, req.connection_id, match.user.id)
    if other is not None and (not req.subject_linkable or other.subject != exact(req.subject)):
        raise BindingError(
            "subject_mismatch",
            f"{match.matched_by} {match.value!r} selects account {match.user.user_name!r}, "
            f"which is linked on this connection to subject {other.subject!r}, "
            f"not {req.subject!r}",
            match.user,
        )


def _check_not_bound_elsewhere(session: Session, req: SignInRequest, match: Match) -> None:
    """An account with an address in a domain bound to another connection is that IdP's alone.

    The domain checks of the decision see only what this IdP asserts; a partner's IdP
    may still send, as its subject, the externalId (an Entra object id) or a userName
    that is no address ("ceo.boss") of an employee, and the fallbacks would select the
    employee's account. So the account found is checked too, by every address it has.
    """
    found = domains.first_bound_elsewhere(
        session, req.org_id, account_addresses(session, match.user), req.connection_id
    )
    if found is not None:
        raise BindingError(
            "subject_mismatch",
            f"{match.matched_by} {match.value!r} selects account {match.user.user_name!r}, "
            f"whose address {found!r} is in a domain bound to another connection",
            match.user,
        )


def _check_not_created_elsewhere(session: Session, req: SignInRequest, match: Match) -> None:
    """An account created just in time is its creating connection's (linked in the creation).

    Its names are that IdP's choice and mean nothing to another IdP: an equal subject or
    userName elsewhere is a coincidence (an employee number, a partner's subject), not
    the same person. A JIT account with no link left is nobody's (an admin unlinked it).
    """
    if match.user.source != "jit":
        return
    other = session.scalar(
        select(SsoIdentityLink)
        .where(
            SsoIdentityLink.org_id == req.org_id,
            SsoIdentityLink.user_id == match.user.id,
            SsoIdentityLink.connection_id != req.connection_id,
        )
        .order_by(SsoIdentityLink.created_at)
        .limit(1)
    )
    if other is not None:
        conn = session.get(SsoConnection, (req.org_id, other.connection_id))
        raise BindingError(
            "subject_mismatch",
            f"{match.matched_by} {match.value!r} selects account {match.user.user_name!r}, "
            f"which was created just in time by another connection and is linked on "
            f"{conn.name if conn is not None else other.connection_id!r} to subject "
            f"{other.subject!r}",
            match.user,
        )


def account_addresses(session: Session, user: User) -> list[str]:
    """What may be an address of ``user``: userName, login name, externalId, the contact's
    e-mail and every e-mail of the SCIM document (the caller keeps the address-shaped)."""
    values = [user.user_name, user.login_name, user.external_id]
    if user.contact_id:
        contact = session.get(Contact, (user.org_id, user.contact_id))
        values.append(contact.email if contact is not None else None)
    emails = (user.data or {}).get("emails")
    for item in emails if isinstance(emails, list) else []:
        values.append(item.get("value") if isinstance(item, dict) else None)
    return [v for v in values if isinstance(v, str) and "@" in v]


def _fallback(session: Session, req: SignInRequest) -> Match | None:
    if req.subject:
        found = _unique(
            session,
            select(User).where(User.org_id == req.org_id, User.external_id == exact(req.subject)),
        )
        if found is not None:
            return Match(found, "externalId", req.subject)
    email = req.email if req.email and req.email_verified else None
    user_name = req.user_name if req.user_name_trusted else None
    values = [v for v in (req.subject, user_name, email) if v]
    if values:
        found = _unique(
            session,
            select(User).where(
                User.org_id == req.org_id, User.user_name_key.in_({fold(v) for v in values})
            ),
        )
        if found is not None:
            return _bind(found, "userName", found.user_name, values)
    if email:
        row = session.execute(
            select(User, Contact.email)
            .join(Contact, (Contact.org_id == User.org_id) & (Contact.id == User.contact_id))
            .where(User.org_id == req.org_id, Contact.email_key == fold(email))
            .limit(2)
        ).all()
        if len(row) > 1:
            raise SsoError("unknown_user", "the identity matches more than one account")
        if row:
            return _bind(row[0][0], "email", row[0][1] or "", [email])
    return None


def _bind(user: User, attribute: str, stored: str, values: list[str]) -> Match:
    """The candidate found under the fold binds only if one value is the same text."""
    for value in values:
        if same_identity(value, stored):
            return Match(user, attribute, value)
    folded = [v for v in values if fold(v) == fold(stored)]
    raise BindingError(
        "lookalike_identity",
        f"{folded or values!r} equals {attribute} {stored!r} of account {user.user_name!r} "
        "only under Unicode compatibility/case folding",
        user,
    )


def link(session: Session, req: SignInRequest, match: Match) -> None:
    """Bind the subject to the matched account on this connection, audited (caller's transaction).

    Checked again under the user's row lock: a concurrent sign-in of another
    subject may have linked the account since ``find_user``. The unique keys
    settle what the lock does not (the same subject linked to two accounts).
    """
    _check_unlinked(session, req, match)
    _check_not_bound_elsewhere(session, req, match)  # the account's addresses, under its lock
    _check_not_created_elsewhere(session, req, match)  # its links, under its lock
    user = match.user
    if links.of_user(session, req.org_id, req.connection_id, user.id) is not None:
        return  # this very subject, linked by a concurrent sign-in
    how = "created just in time" if match.matched_by == "jit" else f"matched by {match.matched_by}"
    try:
        links.create(
            session,
            req.connection_id,
            req.subject,
            user,
            about={"protocol": req.protocol, "matched_by": match.matched_by, "value": match.value},
            detail=f"{req.protocol} subject {req.subject!r} of {req.connection_name} linked "
            f"({how})",
        )
    except links.LinkTakenError:
        raise BindingError(
            "subject_mismatch",
            f"subject {req.subject!r} or account {user.user_name!r} was linked concurrently",
            user,
        ) from None


def _unique(session: Session, stmt: Any) -> User | None:
    found = list(session.scalars(stmt.limit(2)))
    if len(found) > 1:
        raise SsoError("unknown_user", "the identity matches more than one account")
    return found[0] if found else None
