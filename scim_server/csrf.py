"""CSRF protection for the pages a person uses with a cookie (console, sign-in forms).

Flask-WTF's ``CSRFProtect`` with its app-wide check turned off
(``WTF_CSRF_CHECK_DEFAULT = False``): the SCIM and admin JSON APIs authenticate
with bearer tokens, never cookies, so a forged cross-site request carries
nothing they trust. The console checks every unsafe request itself (a form's
``csrf_token`` field, or htmx's ``X-CSRFToken`` header set on ``<body>``); the local
sign-in pages check their own session token (``sso.local.web.check_csrf``). Both also
ask ``foreign_origin``: a request another site's page made is refused even with the
token. Not for the SAML ACS, which the IdP posts cross-site by design (its own state
and signatures protect it).

No Referer is asked for (``WTF_CSRF_SSL_STRICT = False``): every page is served with
``Referrer-Policy: no-referrer``, so a browser never sends one, and under that policy a
browser's form POST says ``Origin: null`` (Fetch §3.1 "append a request Origin header";
its script requests, htmx's, name the real origin). ``Sec-Fetch-Site`` is computed from
the request's real origin whatever the policy, so it decides when Origin says nothing.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from urllib.parse import urlsplit

from flask import current_app, request
from flask_wtf.csrf import CSRFError, CSRFProtect

log = logging.getLogger(__name__)

csrf = CSRFProtect()

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Sec-Fetch-Site of a request our own page made, or the person (typed, a bookmark).
# Not "same-site": a sibling subdomain's page is another origin, maybe another owner.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})

_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_csrf() -> None:
    """Refuse (``CSRFError``, 400) an unsafe request another site's page made, or one
    without this session's token."""
    if request.method in SAFE_METHODS:
        return
    if from_other_site():
        raise CSRFError("The request came from another site's page.")
    csrf.protect()


def from_other_site() -> bool:
    """Whether this request was made by another site's page (logged with why: the person
    sees only that the form expired)."""
    reason = foreign_origin()
    if reason is None:
        return False
    log.warning("refused %s %s from another site: %s", request.method, request.path, reason)
    return True


def foreign_origin() -> str | None:
    """Why the browser says another origin made this request, or None.

    ``Origin`` (unless ``null``) must be SCIM_BASE_URL's origin (in development without
    it: the request's own root). Without a usable Origin, ``Sec-Fetch-Site`` must be
    same-origin or none. With neither (a script, an older browser) nothing is foreign:
    the session-bound token alone decides.
    """
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        expected = _origin_of(current_app.config["BASE_URL"] or request.host_url)
        if _origin_of(origin) != expected:
            return f"Origin {origin!r} is not {expected!r}"
        return None
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in _OWN_FETCH_SITES:
        return f"Sec-Fetch-Site {site!r} (Origin {origin!r})"
    return None


@lru_cache(maxsize=64)  # the Origin header is the client's to choose: bounded
def _origin_of(url: str) -> str:
    """``scheme://host[:port]`` as a browser serializes an origin (RFC 6454 §6.1): lower
    case, the default port left out, an international name in its A-label form; anything
    that is no http(s) URL stays as written (it matches no origin of ours)."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not host:
            return url
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return url
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
