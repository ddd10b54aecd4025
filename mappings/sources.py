"""How each source's payload becomes the common vocabulary (plus prefixed raw attributes).

Rules are written once against unprefixed names (``email``, ``department``)
and hold whether the person arrived by SCIM, SAML or OIDC; the raw payload
stays addressable as ``scim:<path>``, ``saml:<name>`` or ``oidc:<claim>`` for
anything the vocabulary does not cover. Input comes from the outside, so every
function here tolerates wrong types (ignores them) and bounds its work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mappings.text import fold

VOCABULARY = (
    "userName",
    "email",
    "givenName",
    "familyName",
    "displayName",
    "title",
    "department",
    "employeeNumber",
    "organization",
    "division",
    "costCenter",
    "userType",
    "externalId",
    "locale",
    "active",
    "manager",
)
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
# Flattening stops here: SCIM needs two levels (emails.value), claims a few more.
MAX_DEPTH = 6
MAX_VALUES = 10_000
# Never copied into attributes: a rule or an explanation must not see it.
SECRET_SCIM_ATTRIBUTES = frozenset({"password"})

# Entra ID sends these claim URIs by default; Okta and OneLogin send the plain names.
_WS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
_MS = "http://schemas.microsoft.com/identity/claims/"
SAML_ALIASES: dict[str, tuple[str, ...]] = {
    "userName": (_WS + "name", _WS + "upn", "urn:oid:0.9.2342.19200300.100.1.1", "username", "uid"),
    "email": (_WS + "emailaddress", "urn:oid:0.9.2342.19200300.100.1.3", "mail", "emailAddress"),
    "givenName": (_WS + "givenname", "urn:oid:2.5.4.42", "firstName"),
    "familyName": (_WS + "surname", "urn:oid:2.5.4.4", "lastName", "surname", "sn"),
    "displayName": (_MS + "displayname", "urn:oid:2.16.840.1.113730.3.1.241"),
    "title": ("urn:oid:2.5.4.12", "jobTitle"),
    "employeeNumber": ("urn:oid:2.16.840.1.113730.3.1.3", "employeeId"),
    "organization": ("urn:oid:2.5.4.10", "company", "companyName"),
    "locale": ("urn:oid:2.16.840.1.113730.3.1.39", "preferredLanguage"),
}
SAML_GROUP_ATTRIBUTES = (
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",  # Entra: object ids
    "http://schemas.xmlsoap.org/claims/Group",  # AD FS
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",  # isMemberOf
    "groups",  # Okta, OneLogin
    "memberOf",
)
OIDC_ALIASES: dict[str, tuple[str, ...]] = {
    "userName": ("preferred_username", "upn", "username"),  # upn: Entra v1 tokens
    "email": ("mail",),
    "givenName": ("given_name", "first_name", "firstName"),
    "familyName": ("family_name", "last_name", "lastName"),
    "displayName": ("name", "display_name"),
    "title": ("job_title", "jobTitle"),
    "employeeNumber": ("employee_number", "employee_id", "employeeId"),
    "organization": ("company", "companyName"),
    "costCenter": ("cost_center",),
    "userType": ("user_type",),
    "externalId": ("external_id",),
}
OIDC_GROUP_CLAIMS = ("groups",)


class Raw(dict[str, list[str]]):
    """Collected raw values, counted so a huge payload cannot cause unbounded work."""

    count = 0


GroupTuple = tuple[str | None, str | None, str | None]  # display name, external id, id


def scalar(value: Any) -> str | None:
    """A wire value as the string rules compare (JSON true → "true"); None if not a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float):
        return str(value)
    return None


def _add(out: Raw, key: str, value: Any) -> None:
    text = scalar(value)
    if text is not None and out.count < MAX_VALUES:
        out.setdefault(key, []).append(text)
        out.count += 1


def flatten(value: Any, path: str, out: Raw, depth: int = 0) -> None:
    """Complex values become ``path.sub``; lists contribute each element to the same path.

    A complex value with a ``value`` sub-attribute also counts under its own path,
    as in SCIM filters (RFC 7644 §3.4.2.2: ``emails co "x"`` means ``emails.value``).
    """
    if depth > MAX_DEPTH:
        return
    kind = type(value)
    if kind is str:  # most values: no conversion, no ABC check
        if value and out.count < MAX_VALUES:
            out.setdefault(path, []).append(value)
            out.count += 1
    elif kind is bool or value is None:
        _add(out, path, value)
    elif kind is dict or isinstance(value, Mapping):
        if "value" in value:
            _add(out, path, value["value"])
        for key, sub in value.items():
            if isinstance(key, str):
                flatten(sub, f"{path}.{key}", out, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            flatten(item, path, out, depth + 1)
    else:
        _add(out, path, value)


def scim_get(doc: Mapping[str, Any], name: str) -> Any:
    """A SCIM attribute, its name compared case-insensitively (RFC 7643 §2.1)."""
    if name in doc:
        return doc[name]
    wanted = name.casefold()
    return next((v for k, v in doc.items() if isinstance(k, str) and k.casefold() == wanted), None)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _scim_email(emails: Any) -> Any:
    """The primary address, else the work one, else the first (RFC 7643 §4.1.2)."""
    items = [_mapping(e) for e in emails] if isinstance(emails, list) else []
    items = [e for e in items if scalar(scim_get(e, "value"))]
    for test in (
        lambda e: scim_get(e, "primary") is True,
        lambda e: fold(scalar(scim_get(e, "type")) or "") == "work",
        lambda e: True,
    ):
        found = next((e for e in items if test(e)), None)
        if found is not None:
            return scim_get(found, "value")
    return None


def _manager(value: Any) -> Any:
    # Entra sends the manager as a bare id in PATCH; the RFC shape is {"value": id}.
    return scim_get(value, "value") if isinstance(value, Mapping) else value


def scim_common(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The vocabulary from a SCIM User (core schema and enterprise extension)."""
    name = _mapping(scim_get(doc, "name"))
    ent = _mapping(scim_get(doc, ENTERPRISE))
    return {
        "userName": scim_get(doc, "userName"),
        "email": _scim_email(scim_get(doc, "emails")),
        "givenName": scim_get(name, "givenName"),
        "familyName": scim_get(name, "familyName"),
        "displayName": scalar(scim_get(doc, "displayName")) or scim_get(name, "formatted"),
        "title": scim_get(doc, "title"),
        "department": scim_get(ent, "department"),
        "employeeNumber": scim_get(ent, "employeeNumber"),
        "organization": scim_get(ent, "organization"),
        "division": scim_get(ent, "division"),
        "costCenter": scim_get(ent, "costCenter"),
        "userType": scim_get(doc, "userType"),
        "externalId": scim_get(doc, "externalId"),
        "locale": scalar(scim_get(doc, "locale")) or scim_get(doc, "preferredLanguage"),
        "active": scim_get(doc, "active"),
        "manager": _manager(scim_get(ent, "manager")),
    }


def scim_raw(doc: Mapping[str, Any]) -> Raw:
    """Every attribute as ``scim:<path>``; extension attributes as ``scim:<urn>:<name>``."""
    out = Raw()
    for key, value in doc.items():
        if not isinstance(key, str) or key.casefold() in SECRET_SCIM_ATTRIBUTES:
            continue
        if key.startswith("urn:") and isinstance(value, Mapping):
            for sub, sub_value in value.items():
                if isinstance(sub, str):
                    flatten(sub_value, f"scim:{key}:{sub}", out, 1)
        else:
            flatten(value, f"scim:{key}", out)
    return out


def scim_groups(groups: Iterable[Any]) -> list[GroupTuple]:
    """Group dicts ``{"id", "displayName", "externalId"}``; ``value``/``display`` also read."""
    out = []
    for group in groups:
        g = _mapping(group)
        display = scalar(scim_get(g, "displayName")) or scalar(scim_get(g, "display"))
        ident = scalar(scim_get(g, "id")) or scalar(scim_get(g, "value"))
        out.append((display, scalar(scim_get(g, "externalId")), ident))
    return out


def lookup_raw(raw: Raw) -> dict[str, list[str]]:
    """Raw attributes keyed by folded name, same-named ones (up to case) merged."""
    folded: dict[str, list[str]] = {}
    for key, values in raw.items():
        folded.setdefault(fold(key), []).extend(values)
    return folded


def common_from_aliases(
    raw: Raw, prefix: str, aliases: Mapping[str, tuple[str, ...]]
) -> dict[str, list[str]]:
    """The vocabulary from the first alias (in table order) of each name that has values.

    Each vocabulary name is its own last alias, so an IdP that already sends
    ``department`` or ``costCenter`` needs no table entry.
    """
    folded = lookup_raw(raw)
    common: dict[str, list[str]] = {}
    for name in VOCABULARY:
        for alias in (*aliases.get(name, ()), name):
            values = folded.get(fold(prefix + alias))
            if values:
                common[name] = values
                break
    return common


def claim_groups(raw: Raw, prefix: str, names: Iterable[str]) -> list[GroupTuple]:
    """Group claim values. Entra sends object ids, Okta names: each is compared as both."""
    folded = lookup_raw(raw)
    out: list[GroupTuple] = []
    for name in names:
        for value in folded.get(fold(prefix + name), ()):
            out.append((value, value, None))
    return out


def saml_raw(attributes: Mapping[str, Any]) -> Raw:
    out = Raw()
    for name, values in attributes.items():
        if isinstance(name, str) and name:
            flatten(values, f"saml:{name}", out)
    return out


def oidc_raw(claims: Mapping[str, Any]) -> Raw:
    out = Raw()
    for name, value in claims.items():
        if isinstance(name, str) and name:
            flatten(value, f"oidc:{name}", out)
    return out


def oidc_common(raw: Raw, claims: Mapping[str, Any]) -> dict[str, list[str]]:
    common = common_from_aliases(raw, "oidc:", OIDC_ALIASES)
    # An address the IdP says it has not verified must not grant a license by domain.
    if claims.get("email_verified") is False or claims.get("email_verified") == "false":
        common.pop("email", None)
    return common
