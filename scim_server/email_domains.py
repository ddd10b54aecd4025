"""E-mail domains as the server compares them: one normalisation for the SSO domain claims
(``sso.signin.domains``) and the services that look them up without importing ``sso``
(``services.recovery``: a reset link follows the sign-in's domain owner)."""

from __future__ import annotations

import re
from typing import Any

from scim_server.errors import InvalidValueError
from scim_server.text import ascii_host

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_domain(value: Any) -> str:
    """Lower-case IDNA form of a domain; refuse anything that is not a plain host name.

    ``text.ascii_host`` (IDNA 2008, UTS 46): with IDNA 2003 ``straße.de`` would be
    ``strasse.de``, another domain, whose holder would then have routed and allow-listed
    the addresses of one it never proved it owns (and refused its real owner)."""
    if not isinstance(value, str):
        raise InvalidValueError("domain must be a string.")
    text = value.strip().rstrip(".").lower()
    if len(text) > 1000:
        raise InvalidValueError("domain is too long.")
    try:
        text = ascii_host(text)
    except UnicodeError:
        raise InvalidValueError(f"{value!r} is not a valid domain.") from None
    labels = text.split(".")
    if len(text) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise InvalidValueError(f"{value!r} is not a valid domain (e.g. example.com).")
    return text


def email_domain(email: str | None) -> str | None:
    """The normalised domain of an address, or None if it is not an address."""
    if not email or email.count("@") != 1:
        return None
    local, _, domain = email.rpartition("@")
    if not local:
        return None
    try:
        return normalize_domain(domain)
    except InvalidValueError:
        return None
