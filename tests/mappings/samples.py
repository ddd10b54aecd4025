"""Payloads shaped like what Entra ID and Okta send, and helpers to build rule sets."""

from __future__ import annotations

from typing import Any

from mappings import ExternalIdentity, GroupRef, RuleSet, validate

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LICENSES = ("Engineer", "Planner", "Manager")
ROLES = ("Engineer", "Portal user", "Approver", "Auditor")

# RFC 7643 §8.2 (enterprise user) as Entra ID sends it on create.
SCIM_ENTRA_USER: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
    "externalId": "bjensen",
    "userName": "bjensen@example.com",
    "active": True,
    "displayName": "Babs Jensen",
    "title": "Tour Guide",
    "userType": "Employee",
    "preferredLanguage": "en-US",
    "password": "t1meMa$heen",
    "name": {
        "formatted": "Ms. Barbara J Jensen III",
        "familyName": "Jensen",
        "givenName": "Barbara",
    },
    "emails": [
        {"value": "babs@home.example", "type": "home"},
        {"value": "bjensen@example.com", "type": "work", "primary": True},
    ],
    "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
    ENTERPRISE: {
        "employeeNumber": "701984",
        "costCenter": "4130",
        "organization": "Universal Studios",
        "division": "Theme Park",
        "department": "Tour Operations",
        "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"},
    },
}
SCIM_GROUPS = [
    {"id": "8f1c", "displayName": "Engineering", "externalId": "6f3a0c6e-entra-object-id"},
    {"id": "9a2d", "displayName": "All staff", "externalId": None},
]

# Entra ID SAML: claim URIs, group claims as object ids, NameID the UPN.
SAML_ENTRA_NAME_ID = "bjensen@example.com"
SAML_ENTRA_ATTRIBUTES = {
    "http://schemas.microsoft.com/identity/claims/tenantid": [
        "72f988bf-86f1-41af-91ab-2d7cd011db47"
    ],
    "http://schemas.microsoft.com/identity/claims/objectidentifier": [
        "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
    ],
    "http://schemas.microsoft.com/identity/claims/displayname": ["Babs Jensen"],
    "http://schemas.microsoft.com/identity/claims/identityprovider": [
        "https://sts.windows.net/72f988bf/"
    ],
    "http://schemas.microsoft.com/claims/authnmethodsreferences": [
        "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password"
    ],
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": ["Barbara"],
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname": ["Jensen"],
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["bjensen@example.com"],
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name": ["bjensen@example.com"],
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": [
        "6f3a0c6e-entra-object-id",
        "b4a1e2f0-0000-4c1d-9e0f-000000000002",
    ],
}

# Okta SAML: plain attribute names set in the app's attribute statements.
SAML_OKTA_NAME_ID = "bjensen@example.com"
SAML_OKTA_ATTRIBUTES = {
    "firstName": ["Barbara"],
    "lastName": ["Jensen"],
    "email": ["bjensen@example.com"],
    "department": ["Tour Operations"],
    "groups": ["Everyone", "Engineering"],
}

# Entra ID v2.0 ID token claims.
OIDC_ENTRA_CLAIMS = {
    "aud": "6cb04018-a3f5-46a7-b995-940c78f5aef3",
    "iss": "https://login.microsoftonline.com/72f988bf/v2.0",
    "iat": 1700000000,
    "exp": 1700003600,
    "name": "Babs Jensen",
    "oid": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "preferred_username": "bjensen@example.com",
    "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
    "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "ver": "2.0",
    "groups": ["6f3a0c6e-entra-object-id"],
    "roles": ["Approver"],
}

# Okta ID token with a groups claim and the standard profile claims.
OIDC_OKTA_CLAIMS = {
    "sub": "00uid4BxXw6I6TV4m0g3",
    "name": "Barbara Jensen",
    "email": "bjensen@example.com",
    "email_verified": True,
    "given_name": "Barbara",
    "family_name": "Jensen",
    "preferred_username": "bjensen@example.com",
    "locale": "en-US",
    "department": "Tour Operations",
    "address": {"locality": "Hollywood", "country": "US"},
    "groups": ["Everyone", "Engineering"],
}


def rules(*rule_docs: dict[str, Any], mode: str = "first-match", **top: Any) -> RuleSet:
    """A validated rule set from rule documents, against LICENSES and ROLES."""
    return validate({"mode": mode, "rules": list(rule_docs), **top}, licenses=LICENSES, roles=ROLES)


def rule(name: str, when: dict[str, Any], **then: Any) -> dict[str, Any]:
    """One rule document; ``priority`` among the keyword arguments goes on the rule."""
    priority = then.pop("priority", None)
    doc: dict[str, Any] = {"name": name, "when": when, "then": then}
    if priority is not None:
        doc["priority"] = priority
    return doc


def person(groups: tuple[str, ...] = (), **attributes: Any) -> ExternalIdentity:
    """An OIDC-like identity with the given common attributes and group names."""
    return ExternalIdentity(
        source="oidc",
        subject="sub-1",
        attributes=attributes,
        groups=tuple(GroupRef(display_name=g) for g in groups),
    )
