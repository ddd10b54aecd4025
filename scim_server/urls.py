"""The server's public address, for every URL it hands out.

SCIM ``meta.location``, SAML ACS and metadata URLs, OIDC callbacks and the
OIDC issuer all start here, so they agree behind a proxy or load balancer.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from flask.globals import _cv_app, _cv_request, app_ctx, request_ctx
from werkzeug.sansio.utils import get_current_url

SCIM_PATH = "/scim/v2"


def public_url() -> str:
    """``SCIM_BASE_URL`` when set (behind a proxy), else the root the request came in on."""
    # The app context once, not through ``g`` / ``current_app``'s proxies at each use;
    # outside one, the proxy raises Flask's own error.
    ctx = _cv_app.get(None) or app_ctx._get_current_object()  # type: ignore[attr-defined]
    app_g = ctx.g
    cached: str | None = app_g.get("_public_url")
    if cached is None:
        cached = app_g._public_url = ctx.app.config["BASE_URL"] or _request_root()
    return cached


# Names a development server is reached by on this machine (``link_root``).
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def link_root() -> str:
    """The root of every link we mail (activation, reset, sign-in): ``SCIM_BASE_URL``.

    Never the Host a request names, which is the client's to choose: a stranger's forgot
    request sent with ``Host: attacker.example`` would mail the person a reset link to the
    attacker's site. ``SCIM_BASE_URL`` is required outside development (``config``); in
    development without it, the request's root when it came to a loopback name, else the
    same scheme and port on localhost.
    """
    ctx = _cv_app.get(None) or app_ctx._get_current_object()  # type: ignore[attr-defined]
    configured: str | None = ctx.app.config["BASE_URL"]
    if configured:
        return configured
    req = (_cv_request.get(None) or request_ctx._get_current_object()).request  # type: ignore[attr-defined]
    named = urlsplit("//" + req.host)
    try:
        port = named.port
    except ValueError:  # not a port: the name is no loopback one either
        port = None
    if named.hostname in _LOOPBACK:
        return _root_of(req.scheme, req.host, req.root_path)
    return _root_of(req.scheme, "localhost" + (f":{port}" if port else ""), req.root_path)


def _request_root() -> str:
    ctx = _cv_request.get(None) or request_ctx._get_current_object()  # type: ignore[attr-defined]
    req = ctx.request
    return _root_of(req.scheme, req.host, req.root_path)


# werkzeug builds ``request.url_root`` anew for every request (quoting, IDNA decoding: 2-3 %
# of a GET by id); kept per (scheme, host, script root). The host is the client's to
# choose, so the cache is bounded.
@lru_cache(maxsize=64)
def _root_of(scheme: str, host: str, root_path: str) -> str:
    return get_current_url(scheme, host, root_path).rstrip("/")


def scim_root() -> str:
    """The SCIM service root (RFC 7644 §3.13's base URI) that resource locations start with."""
    return public_url() + SCIM_PATH
