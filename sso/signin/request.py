"""The value a verified login becomes: what the sign-in decision, binding and JIT work from.

Built by ``sso.signin.identity`` from a SAML assertion or an OIDC login; a
plain value, so the protocol side and the decision meet without importing
each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SignInRequest:
    """What a verified SAML assertion or OIDC login says, in the terms the decision needs."""

    org_id: str
    connection_id: str
    connection_name: str
    protocol: str  # "saml" | "oidc"
    subject: str  # NameID or sub
    email: str | None
    user_name: str | None
    external_id: str | None
    profile: dict[str, list[str]] = field(default_factory=dict)  # the rules' vocabulary
    jit_enabled: bool = False
    # May the e-mail select an account? OIDC: email_verified true; SAML: always (signed
    # by the organization's own IdP). An unverified address never selects one.
    email_verified: bool = False
    # May ``user_name`` select an account? SAML's userName attribute (the organization's
    # IdP asserts it); never OIDC's preferred_username, which the person may often set.
    user_name_trusted: bool = False
    # False for a SAML transient NameID: it changes at every login, so it is never linked.
    subject_linkable: bool = True
    source_ip: str | None = None
    user_agent: str | None = None
    # The full identity (groups included) for the mapping rules of a JIT creation.
    identity: Any = None
