"""The server's public address, for every URL it hands out.

SCIM ``meta.location``, SAML ACS and metadata URLs, OIDC callbacks and the
OIDC issuer all start here, so they agree behind a proxy or load balancer.
"""

from __future__ import annotations

from flask import current_app, g, request

SCIM_PATH = "/scim/v2"


# The root URL of each (scheme, host, script root) requests came in on: werkzeug builds
# ``request.url_root`` anew for every request (quoting, IDNA decoding: 2-3 % of a GET by
# id). The host is the client's to choose, so the map is bounded.
_ROOTS: dict[tuple[str, str, str], str] = {}
_ROOTS_LIMIT = 64


def public_url() -> str:
    """``SCIM_BASE_URL`` when set (behind a proxy), else the root the request came in on."""
    cached: str | None = g.get("_public_url")
    if cached is None:
        cached = g._public_url = current_app.config["BASE_URL"] or _request_root()
    return cached


def _request_root() -> str:
    key = (request.scheme, request.host, request.root_path)
    root = _ROOTS.get(key)
    if root is None:
        if len(_ROOTS) >= _ROOTS_LIMIT:
            _ROOTS.clear()
        root = _ROOTS[key] = request.url_root.rstrip("/")
    return root


def scim_root() -> str:
    """The SCIM service root (RFC 7644 §3.13's base URI) that resource locations start with."""
    return public_url() + SCIM_PATH
