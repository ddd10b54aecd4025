"""From what a protocol verified to what the sign-in decision and the mapping rules read.

Both protocols name attributes differently (Entra's claim URIs, Okta's plain
names, OIDC's standard claims); ``mappings.sources`` turns each into the one
vocabulary the rules use, so SAML and OIDC sign-ins are decided alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mappings
from mappings import sources
from sso.connections.models import SsoConnection
from sso.saml.sp import SamlAssertion
from sso.signin.request import SignInRequest

# SAML 2.0 Core §8.3.8: a transient identifier is new at every login; it binds nothing.
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"


def _first(profile: Mapping[str, list[str]], name: str) -> str | None:
    values = profile.get(name) or []
    return values[0].strip() if values and values[0].strip() else None


def _looks_like_email(value: str | None) -> bool:
    return bool(value) and value.count("@") == 1 and not value.startswith("@")  # type: ignore[union-attr]


def saml_profile(assertion: SamlAssertion) -> dict[str, list[str]]:
    raw = sources.saml_raw(assertion.attributes)
    return sources.common_from_aliases(raw, "saml:", sources.SAML_ALIASES)


def saml_identity(assertion: SamlAssertion) -> Any:
    """The rules engine's view of the assertion (``mappings.ExternalIdentity``)."""
    return mappings.ExternalIdentity.from_saml(assertion.name_id, assertion.attributes)


def saml_sign_in(
    conn: SsoConnection, assertion: SamlAssertion, source_ip: str | None, user_agent: str | None
) -> SignInRequest:
    """The decision's input; the NameID stands in for the address when it is one (Entra's UPN).

    The e-mail and userName are taken as verified: the assertion is signed by
    the organization's own IdP, whose administrator owns those attributes.
    """
    profile = saml_profile(assertion)
    email = _first(profile, "email")
    if email is None and _looks_like_email(assertion.name_id):
        email = assertion.name_id
    return SignInRequest(
        org_id=conn.org_id,
        connection_id=conn.id,
        connection_name=conn.name,
        protocol="saml",
        identity=saml_identity(assertion),
        subject=assertion.name_id,
        email=email,
        user_name=_first(profile, "userName"),
        external_id=_first(profile, "externalId"),
        profile=profile,
        jit_enabled=conn.jit_enabled,
        email_verified=True,
        user_name_trusted=True,
        subject_linkable=assertion.name_id_format != TRANSIENT,
        source_ip=source_ip,
        user_agent=user_agent,
    )


def oidc_profile(claims: Mapping[str, Any]) -> dict[str, list[str]]:
    return sources.oidc_common(sources.oidc_raw(claims), claims)


def oidc_sign_in(
    conn: SsoConnection,
    subject: str,
    claims: Mapping[str, Any],
    source_ip: str | None,
    user_agent: str | None,
) -> SignInRequest:
    """The decision's input from verified claims (an unverified e-mail is already dropped).

    Only ``sub`` and an e-mail with ``email_verified`` true may select an
    account; ``preferred_username`` is the JIT username at most.
    """
    profile = oidc_profile(claims)
    return SignInRequest(
        org_id=conn.org_id,
        connection_id=conn.id,
        connection_name=conn.name,
        protocol="oidc",
        identity=mappings.ExternalIdentity.from_oidc(dict(claims)),
        subject=subject,
        email=_first(profile, "email"),
        user_name=_first(profile, "userName"),
        external_id=_first(profile, "externalId"),
        profile=profile,
        jit_enabled=conn.jit_enabled,
        # OIDC Core §5.1: email_verified absent means not verified; Cognito sends "true".
        email_verified=claims.get("email_verified") in (True, "true"),
        source_ip=source_ip,
        user_agent=user_agent,
    )
