"""Just-in-time accounts: an unknown person from a trusted IdP, created the way SCIM creates one.

The identity becomes a SCIM User document, validated by the SCIM schema and
created by ``scim_server.services.users.insert_user``: the same contact
matching, username format, mapping rules (license, roles), seats and audit
event as a SCIM POST. There is one provisioning path. Unlike a SCIM POST, the
account joins the settings' default groups (no IdP pushes its memberships), and it
is linked to the subject in the same transaction (``create``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from scim_server.errors import DomainError, InvalidValueError, UniquenessError
from scim_server.models import User
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import USER, USER_SCHEMA
from scim_server.services import users
from scim_server.text import fold
from sso.errors import SsoError
from sso.signin import links
from sso.signin.domains import domain_allowed
from sso.signin.request import SignInRequest

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
_CORE = {"displayName": "displayName", "title": "title", "userType": "userType", "locale": "locale"}
_ENTERPRISE = ("department", "employeeNumber", "organization", "division", "costCenter")


def _first(profile: dict[str, list[str]], name: str) -> str | None:
    values = profile.get(name) or []
    return values[0] if values else None


def names(req: SignInRequest) -> dict[str, str]:
    """The new account's userName and externalId: what later fallbacks compare with.

    The subject stands in for a missing externalId only when it identifies the person
    for good: a SAML transient NameID (SAML Core §8.3.8) is a one-time value, as
    meaningless to a SCIM client reading externalId as to a later fallback, so without
    the IdP's own externalId the account has none.
    """
    external_id = req.external_id or (req.subject if req.subject_linkable else None)
    found = {"userName": _user_name(req) or req.email or req.subject}
    if external_id:
        found["externalId"] = external_id
    return found


def _user_name(req: SignInRequest) -> str | None:
    """The IdP's userName for the account, when it may name it. OIDC's
    ``preferred_username`` (untrusted) is often the person's to set, and OIDC Core §5.7
    says not to rely on it: shaped as an address it is taken only when it is the person's
    verified e-mail (in any case), else Mallory's ``ceo@example.com`` would name her
    account after the CEO, whose own first sign-in and the IdP's SCIM create would then
    meet hers. Otherwise the verified e-mail names the account (``names``)."""
    value = req.user_name
    if value is None or req.user_name_trusted or "@" not in value:
        return value
    own = req.email if req.email_verified else None
    return value if own is not None and fold(value) == fold(own) else None


def check_names(session: Session, org_id: str, req: SignInRequest) -> None:
    """An address-shaped userName or externalId must be one this connection may assert.

    They are the IdP's choice (OIDC's ``preferred_username`` is often the person's), and
    a fallback of another connection later selects the account by them: a partner's user
    named ``ceo@example.org`` (a domain bound to the employees' IdP) would receive the
    real CEO's first sign-in. So the same test as an asserted e-mail, trusted or not:
    a verified domain of the organization, bound to this connection or to none.
    """
    for attribute, value in names(req).items():
        if "@" in value and not domain_allowed(session, org_id, value, req.connection_id):
            raise SsoError(
                "email_domain_not_allowed",
                f"just-in-time {attribute} {value!r} is not an address this connection may "
                "assert (a verified domain, bound to it or to none)",
            )


def scim_document(req: SignInRequest) -> dict[str, Any]:
    """The SCIM User body for the identity (what an IdP would have POSTed), validated.

    ``check_names`` has vetted its userName and externalId."""
    profile = req.profile
    body: dict[str, Any] = {"schemas": [USER_SCHEMA], **names(req), "active": True}
    name = {k: _first(profile, k) for k in ("givenName", "familyName")}
    if any(name.values()):
        body["name"] = {k: v for k, v in name.items() if v}
    if req.email:
        body["emails"] = [{"value": req.email, "type": "work", "primary": True}]
    for source, target in _CORE.items():
        value = _first(profile, source)
        if value:
            body[target] = value
    enterprise = {k: _first(profile, k) for k in _ENTERPRISE if _first(profile, k)}
    if enterprise:
        body["schemas"].append(ENTERPRISE)
        body[ENTERPRISE] = enterprise
    try:
        return parse_resource(USER, body, creating=True)
    except DomainError as err:  # e.g. an IdP value the schema refuses
        raise InvalidValueError(f"identity is not a valid SCIM user: {err.detail}") from None


def create(session: Session, org_id: str, req: SignInRequest) -> User:
    """Create the account through the identity services (raises their domain errors, and
    ``SsoError`` for names this connection may not give: ``check_names``), linked to the
    subject in the same transaction.

    The link is what makes the account this connection's: another connection's fallbacks
    may not select an account created just in time and linked elsewhere
    (``sso.signin.binding``). So it is written with the account, not with the sign-in,
    which may still be refused (no license yet: the account stays, waiting for an admin).
    A SAML transient NameID links nothing (``subject_linkable``): such an account is tied
    to no connection.

    Two first sign-ins of one new person at once (a double click, two tabs): both find no
    account, both create; the second's create fails on the names the first took (its
    insert waits for the first's commit: ``LostRaceError``; or it checks after that commit:
    ``UniquenessError``) or on the link. The first's account is linked to this very subject
    by then (in its creation's transaction), so the second signs in to it: what it would
    have found one moment later (``binding.find_user``'s link), and it goes through the
    same checks after this (status, license). Only if no link names an account is the
    create refused, as before.
    """
    try:
        with session.begin():
            check_names(session, org_id, req)
            user = users.insert_user(
                session,
                org_id,
                scim_document(req),
                identity=req.identity,
                source="jit",
                default_groups=True,
            )
            if req.subject_linkable:
                _link(session, req, user)
            return user
    except users.LostRaceError:
        winner = _linked_meanwhile(session, org_id, req)
        if winner is not None:
            return winner
        raise SsoError(
            "jit_failed", "just-in-time creation refused: a concurrent create took its names"
        ) from None
    except links.LinkTakenError:
        winner = _linked_meanwhile(session, org_id, req)
        if winner is not None:
            return winner
        raise SsoError(
            "jit_failed",
            f"just-in-time creation refused: subject {req.subject!r} was linked concurrently",
        ) from None
    except UniquenessError:
        winner = _linked_meanwhile(session, org_id, req)
        if winner is not None:
            return winner
        raise


def _linked_meanwhile(session: Session, org_id: str, req: SignInRequest) -> User | None:
    """The account a concurrent sign-in of this subject created and linked, read in a new
    transaction (the failed one is rolled back); None if the subject is linked to none."""
    if not req.subject_linkable:
        return None
    with session.begin():
        linked = links.of_subject(session, org_id, req.connection_id, req.subject)
        if linked is None:
            return None
        return session.get(User, (org_id, linked.user_id))


def _link(session: Session, req: SignInRequest, user: User) -> None:
    """The creating subject's link, audited as ``sso.identity_linked`` (matched by ``jit``);
    ``links.LinkTakenError`` if a concurrent sign-in linked the subject first."""
    links.create(
        session,
        req.connection_id,
        req.subject,
        user,
        about={"protocol": req.protocol, "matched_by": "jit", "value": None},
        detail=f"{req.protocol} subject {req.subject!r} of {req.connection_name} linked "
        "(created just in time)",
    )
