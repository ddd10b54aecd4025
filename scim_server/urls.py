"""The server's public address, for every URL it hands out.

SCIM ``meta.location``, SAML ACS and metadata URLs, OIDC callbacks and the
OIDC issuer all start here, so they agree behind a proxy or load balancer.
"""

from __future__ import annotations

from flask import current_app, g, request

SCIM_PATH = "/scim/v2"


def public_url() -> str:
    """``SCIM_BASE_URL`` when set (behind a proxy), else the root the request came in on."""
    cached: str | None = g.get("_public_url")
    if cached is None:
        cached = g._public_url = current_app.config["BASE_URL"] or request.url_root.rstrip("/")
    return cached


def scim_root() -> str:
    """The SCIM service root (RFC 7644 §3.13's base URI) that resource locations start with."""
    return public_url() + SCIM_PATH
