"""What the product learns about a signed-in user, and whether that user may sign in at all.

Claims are the same in the id_token and at the userinfo endpoint. The
standard OIDC claims follow their scopes (OIDC Core §5.4); the internal model
(organization, contact, license, roles) is always given with ``openid``: it is
what the product needs to decide what the person may do.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from scim_server.models import Contact, License, Organization, User
from scim_server.services.lifecycle import AUTO_LOCKED, LOCKED_BY_ADMIN, SIGN_IN_ALLOWED
from scim_server.services.roles import roles_of

# Claim names of the internal model, documented in the README.
CLAIMS_SUPPORTED = (
    "sub",
    "org_id",
    "org_name",
    "contact_id",
    "license",
    "roles",
    "preferred_username",
    "name",
    "given_name",
    "family_name",
    "email",
)

INACTIVE = "inactive account"
LOCKED = "locked account"
NO_LICENSE = "missing license"
WRONG_ORGANIZATION = "application not available to this organization"


def refusal_reason(user: User) -> str | None:
    """Why ``user`` may not sign in (DESIGN.md §2), or None when it may."""
    if user.status in (LOCKED_BY_ADMIN, AUTO_LOCKED):
        return LOCKED
    if user.status not in SIGN_IN_ALLOWED:
        return INACTIVE
    if not user.license_id:
        return NO_LICENSE
    return None


def _primary_email(user: User) -> str | None:
    emails = user.data.get("emails") if isinstance(user.data, dict) else None
    if not isinstance(emails, list):
        return None
    values = [e for e in emails if isinstance(e, dict) and isinstance(e.get("value"), str)]
    primary = [e for e in values if e.get("primary") is True]
    chosen = primary or values
    return chosen[0]["value"] if chosen else None


def user_claims(session: Session, user: User, scope: str) -> dict[str, Any]:
    """The claims about ``user`` for a token of ``scope``."""
    scopes = set(scope.split())
    org = session.get(Organization, user.org_id)
    contact = session.get(Contact, (user.org_id, user.contact_id)) if user.contact_id else None
    lic = session.get(License, (user.org_id, user.license_id)) if user.license_id else None
    held = roles_of(session, user.org_id, [user.id]).get(user.id, [])
    claims: dict[str, Any] = {
        "sub": user.id,
        "org_id": user.org_id,
        "org_name": org.name if org else None,
        "contact_id": user.contact_id,
        "license": lic.name if lic else None,
        "roles": [{"name": r["name"], "kind": r["kind"]} for r in held],
    }
    if "profile" in scopes:
        claims["preferred_username"] = user.login_name or user.user_name
        claims["name"] = (contact.name if contact else None) or user.display_name
        claims["given_name"] = contact.given_name if contact else None
        claims["family_name"] = contact.family_name if contact else None
    if "email" in scopes:
        claims["email"] = (contact.email if contact else None) or _primary_email(user)
    return {k: v for k, v in claims.items() if v is not None}
