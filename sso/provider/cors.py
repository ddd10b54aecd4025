"""CORS at the provider's endpoints: what a SPA (a public client) may read from a browser.

The token endpoint and userinfo answer a page whose origin is that of a registered
redirect URI of an active public client (``clients.is_public_origin``): that exact origin
echoed, never an arbitrary one, and never with credentials (no cookie is involved: the
code, the verifier and the bearer token are the request). A confidential client's origin
gets nothing: its secret never belongs in a browser. Discovery and the JWKS are public
documents any page may read.
"""

from __future__ import annotations

from flask import Response, request

from scim_server.db import db
from sso.provider.clients import is_public_origin

# The endpoints a public client's page calls, and the methods each takes.
FOR_PUBLIC_CLIENTS = {"oauth.issue_token": "POST", "oauth.userinfo": "GET, POST"}
# Documents without credentials, for any page (a SPA configures itself from discovery).
FOR_ANYONE = {"oauth.discovery", "oauth.jwks"}
# A preflight is remembered this long (seconds); browsers cap it lower themselves.
PREFLIGHT_MAX_AGE = "600"


def add_headers(resp: Response) -> Response:
    """The CORS headers this request's endpoint and origin call for (Fetch standard §3.2)."""
    endpoint = request.endpoint
    if endpoint in FOR_ANYONE:
        resp.headers["Access-Control-Allow-Origin"] = "*"
        return resp
    methods = FOR_PUBLIC_CLIENTS.get(endpoint or "")
    if methods is None:
        return resp
    # The answer depends on the Origin: a cache must not hand one origin's to another.
    resp.vary.add("Origin")
    origin = request.headers.get("Origin")
    if not origin or not is_public_origin(db.session, origin):
        return resp
    resp.headers["Access-Control-Allow-Origin"] = origin
    if request.method == "OPTIONS":
        resp.headers["Access-Control-Allow-Methods"] = methods
        # userinfo's bearer token; the token endpoint's form body.
        resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        resp.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    else:
        # RFC 6750 §3: why a token was refused is in WWW-Authenticate (not safelisted).
        resp.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"
    return resp
