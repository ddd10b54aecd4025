"""The OpenID Connect provider facade: the one interface the product integrates with.

Whatever IdP an organization uses (SAML or OIDC, see ``sso.views``), the
product sees a single OpenID Connect provider: the authorization code flow
with PKCE (S256), an id_token signed RS256, userinfo, and a JWKS with key
rotation. A code is only issued to a person who may still sign in: an
allowed status and a license (DESIGN.md §2). Once the client and its
redirect_uri are known good, every refusal goes back to the client there
(``error``, ``error_description``, ``state``), so a product signing in
silently in a hidden frame learns why; only a bad client or redirect_uri is
shown to the person as a page. Every refusal is logged.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidRequestError
from authlib.oidc.core.errors import LoginRequiredError
from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from markupsafe import escape

from scim_server import request_inputs
from scim_server.db import db
from scim_server.models import User
from scim_server.text import small_int
from sso.extension import sso_extension
from sso.local import web as local_web
from sso.provider.claims import (
    CLAIMS_SUPPORTED,
    INACTIVE,
    LOCKED,
    NO_LICENSE,
    WRONG_ORGANIZATION,
    refusal_reason,
)
from sso.provider.context import issuer, record_event
from sso.provider.cors import add_headers
from sso.provider.keys import (
    JWKS_MAX_AGE,
    active_key,
    create_key,
    encryption_secret,
    published_keys,
)
from sso.provider.models import OAuthClient
from sso.provider.server import SCOPES, SignedIn, build_server
from sso.signin.session import current_session, end_session, still_open
from sso.signin.targets import MAX_NEXT

bp = Blueprint("oauth", __name__)
log = logging.getLogger(__name__)

LOGIN_PATH = "/sso/login"


def init_app(app: Flask) -> None:
    """The authorization server and the blueprint; settings come from ``scim_server.config``."""
    app.extensions["oauth_server"] = build_server(app)
    app.register_blueprint(bp)


def _server() -> AuthorizationServer:
    return current_app.extensions["oauth_server"]


def _page(status: int, title: str, message: str) -> tuple[str, int, dict[str, str]]:
    """A plain page for the person in the browser: the reason, never a stack trace."""
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title></head><body>"
        f"<h1>{escape(title)}</h1><p>{escape(message)}</p></body></html>"
    )
    return body, status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


# CORS for a public client's page (``sso.provider.cors``).
bp.after_request(add_headers)


@bp.before_request
def _refuse_nul() -> Any:
    """NUL in a client id, a code or a path (``scim_server.request_inputs``): RFC 6749 §5.2's
    ``invalid_request``, before any lookup (the authorize request's own redirect cannot be
    trusted yet: a plain answer)."""
    if not request_inputs.has_nul(request):
        return None
    return (
        {"error": "invalid_request", "error_description": "A parameter holds NUL."},
        400,
        {"Cache-Control": "no-store"},
    )


# error_description for the client (RFC 6749 §4.1.2.1: printable ASCII, no quote or backslash).
REFUSALS = {
    INACTIVE: "The account is not active.",
    LOCKED: "The account is locked.",
    NO_LICENSE: "The account holds no license for this product.",
    WRONG_ORGANIZATION: "This application is not available to this organization.",
}
# OIDC Core §3.1.2.6: what a prompt=none request would have needed the person for.
INTERACTION_NEEDED = {
    "login_required": "No one is signed in; prompt=none forbids showing the login.",
    "consent_required": "Consent is needed; prompt=none forbids asking for it.",
    "account_selection_required": "An account must be chosen; prompt=none forbids asking.",
    "interaction_required": "The sign-in needs the person; prompt=none forbids it.",
}


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    """OIDC Discovery §3: everything a client library needs to configure itself."""
    base = issuer()
    return jsonify(
        issuer=base,
        authorization_endpoint=f"{base}/oauth/authorize",
        token_endpoint=f"{base}/oauth/token",
        userinfo_endpoint=f"{base}/oauth/userinfo",
        jwks_uri=f"{base}/oauth/jwks",
        end_session_endpoint=f"{base}/oauth/logout",
        scopes_supported=SCOPES,
        response_types_supported=["code"],
        response_modes_supported=["query"],
        grant_types_supported=["authorization_code"],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=["RS256"],
        token_endpoint_auth_methods_supported=[
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        code_challenge_methods_supported=["S256"],
        claims_supported=list(CLAIMS_SUPPORTED),
        # consent and select_account get consent_required / account_selection_required
        # (``checks.HonouredOnly``), as does any response_mode but query invalid_request.
        prompt_values_supported=["none", "login"],
        # OIDC Core §6: refused with request_not_supported / request_uri_not_supported
        # (``checks.NoRequestObjects``); request_uri_parameter_supported defaults to true.
        request_parameter_supported=False,
        request_uri_parameter_supported=False,
    )


@bp.get("/oauth/jwks")
def jwks() -> Response:
    """RFC 7517 §5: the current key, the next one (``keys.STAGING``) and recently retired
    ones; made on first use."""
    grace = _grace()
    keys = published_keys(db.session, grace)
    if not keys:
        writer = db.writing_session()
        if active_key(writer) is None:
            create_key(writer, encryption_secret(current_app))
        writer.commit()
        keys = published_keys(writer, grace)
    resp = jsonify(keys=keys)
    resp.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return resp


def _grace() -> timedelta:
    return timedelta(seconds=current_app.config["OAUTH_KEY_GRACE_SECONDS"])


def _signed_in() -> SignedIn | None:
    sso = current_session()
    if sso is None:
        return None
    user = db.session.get(User, (sso.org_id, sso.user_id))
    if user is None or not still_open(db.session, sso, user):
        # The status has its own answers (``claims.refusal_reason``).
        return None
    return SignedIn(user, sso.auth_time, sso.amr, sso.session_id, sso.connection_id)


# What the sign-in this provider sends the person to satisfies (OIDC Core §3.1.2.1): a
# fresh sign-in is prompt=login, and max_age=0 "is equivalent to prompt=login". Dropped
# from the way back, or the request would send the person to the login again forever;
# the id_token's auth_time still tells the client when that sign-in was.
SATISFIED_BY_SIGN_IN = ("prompt", "max_age")


def _params() -> Any:
    """The request's parameters: the query of a GET, the form of a POST (OIDC Core §3.1.2.1;
    a POST with a query string too is refused in ``authorize``). authlib reads the same
    (``request.values``)."""
    return request.values


def _same_request(drop: tuple[str, ...] = ()) -> str:
    """This authorization request as a GET path (relative: never another host)."""
    args = [(k, v) for k, v in _params().items(multi=True) if k not in drop]
    return request.path + ("?" + urlencode(args) if args else "")


def _login_redirect(redirect_uri: str) -> Any:
    """To the SSO login, then back here, without what that sign-in satisfies. A request too
    long to come back (``MAX_NEXT``: a sign-in carries it in its forms and its cookie) is
    refused to the client now (``redirect_uri``: validated), not lost after the sign-in."""
    back = _same_request(drop=SATISFIED_BY_SIGN_IN)
    if len(back) > MAX_NEXT:
        return _to_client(
            InvalidRequestError(
                description=(
                    f"The authorization request is too long to carry through the sign-in "
                    f"(at most {MAX_NEXT} characters): send a shorter state or nonce."
                ),
                redirect_uri=redirect_uri,
            )
        )
    return redirect(f"{LOGIN_PATH}?{urlencode({'next': back})}")


NOT_OURS = "id_token_hint is not an ID token this provider issued."


def _hint_claims() -> dict[str, Any] | None:
    """The claims of the request's ``id_token_hint``: an ID token this provider issued, its
    signature checked against the published keys, its issuer ours, with a subject (an
    expired one is accepted, as OIDC Core §3.1.2.1 and RP-Initiated Logout §2 allow).
    None without one; ``ValueError`` for one that is not ours."""
    hint = _params().get("id_token_hint")
    if not hint:
        return None
    try:
        keys = KeySet.import_key_set({"keys": published_keys(db.session, _grace())})
        claims = dict(jwt.decode(hint, keys, algorithms=["RS256"]).claims)
    except (JoseError, ValueError, TypeError):
        raise ValueError(NOT_OURS) from None
    subject = claims.get("sub")
    if claims.get("iss") != issuer() or not isinstance(subject, str) or not subject:
        raise ValueError(NOT_OURS)
    return claims


def _hinted_subject(redirect_uri: str) -> str | None:
    """The ``sub`` of the request's ``id_token_hint``, or None without one; a hint that is
    not ours: ``invalid_request``, to the validated ``redirect_uri``."""
    try:
        claims = _hint_claims()
    except ValueError:
        raise InvalidRequestError(description=NOT_OURS, redirect_uri=redirect_uri) from None
    return str(claims["sub"]) if claims is not None else None


@bp.route("/oauth/logout", methods=["GET", "POST"])
def logout() -> Any:
    """OpenID Connect RP-Initiated Logout 1.0 (``end_session_endpoint``): an application signs
    its person out of this provider. With an ``id_token_hint`` naming the person signed in
    (the application holds their ID token) the session ends at once, on the server; without
    one, or naming someone else, the person is asked (a link another site planted must not
    sign anyone out). Then back to ``post_logout_redirect_uri`` with ``state``, when it is
    one of the client's registered redirect URIs (the client named by ``client_id`` or the
    hint's audience), else to the signed-out page."""
    try:
        claims = _hint_claims()
    except ValueError:
        return _page(400, "Sign-out request refused", NOT_OURS)
    back = _params().get("post_logout_redirect_uri") or None
    if back is not None:
        audience = claims.get("aud") if claims is not None else None
        client_id = _params().get("client_id") or (
            audience[0] if isinstance(audience, list) and audience else audience
        )
        client = db.session.get(OAuthClient, client_id) if isinstance(client_id, str) else None
        if client is None or client.revoked_at is not None or back not in client.redirect_uris:
            return _page(
                400,
                "Sign-out request refused",
                "post_logout_redirect_uri is not a redirect URI registered for the client.",
            )
        state = _params().get("state")
        if state:
            back += ("&" if "?" in back else "?") + urlencode({"state": state})
    found = current_session()
    if found is not None and (claims is None or claims["sub"] != found.user_id):
        user = db.session.get(User, (found.org_id, found.user_id))
        name = (user.login_name or user.user_name) if user is not None else None
        return local_web.page("signin/sign_out_confirm.html", user_name=name)
    end_session(db.writing_session() if found is not None else None)
    return redirect(back or "/sso/signed-out", 303)


def _too_old(signed_in: SignedIn) -> bool:
    """OIDC Core §3.1.2.1 max_age: the sign-in is older than the client accepts. auth_time
    was written from the SSO clock (``sso.signin.session``): the same clock here."""
    max_age = small_int(_params().get("max_age", ""))
    now = sso_extension().clock().timestamp()
    return max_age is not None and now - signed_in.auth_time > max_age


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    """RFC 6749 §4.1.1: validate, sign in through SSO if needed, check the person, issue a code.

    OIDC Core §3.1.2.1: GET, or POST with the parameters as a form. A POST does nothing a
    GET would not: the same checks, and the same request as a GET for the login.
    """
    if request.method == "POST" and request.args:
        return _page(
            400,
            "Sign-in request refused",
            "A POST carries the request's parameters in its body, not in the URL.",
        )
    signed_in = _signed_in()
    if request.method == "POST" and signed_in is None:
        # The session cookie is SameSite=Lax: a form POST from the client's site arrives
        # without it. The same request as a GET (a navigation, which carries it) decides.
        return redirect(_same_request(), 303)
    server = _server()
    writer = db.writing_session()
    try:
        grant = server.get_consent_grant(end_user=signed_in)
        hinted = _hinted_subject(grant.redirect_uri)
        if signed_in is not None and hinted is not None and hinted != signed_in.user.id:
            # OIDC Core §3.1.2.1 id_token_hint: the client expects that person, and another
            # is signed in here: never a silent switch of accounts under the client.
            if "none" in _params().get("prompt", "").split():
                raise LoginRequiredError(
                    description="Another person is signed in than the id_token_hint names.",
                    redirect_uri=grant.redirect_uri,
                )
            grant.prompt = "login"
        if signed_in is not None and _too_old(signed_in) and grant.prompt != "login":
            if "none" in _params().get("prompt", "").split():
                raise LoginRequiredError(
                    description="The sign-in is older than max_age; prompt=none forbids a new one.",
                    redirect_uri=grant.redirect_uri,
                )
            grant.prompt = "login"
    except OAuth2Error as err:
        if err.redirect_uri:
            # RFC 6749 §4.1.2.1: the redirect URI is known good, the client gets the error.
            return _to_client(err)
        # RFC 6749 §4.1.2.1: never redirect to an unverified URI; tell the person.
        return _page(400, "Sign-in request refused", err.description or err.error or "")
    except ValueError:
        # authlib's OAuth2Error raises ValueError for a description outside RFC 6749
        # §4.1.2.1's characters: a check of its that put the request's own words in one
        # refuses the request, as a page (where it would go is not known good), not a 500.
        log.warning("authorization request refused by an error authlib could not build")
        return _page(400, "Sign-in request refused", "The sign-in request is not valid.")
    if signed_in is None or grant.prompt == "login":
        return _login_redirect(grant.redirect_uri)
    client: OAuthClient = grant.client
    user = signed_in.user
    # Another organization's client first: its answer says nothing of this organization's
    # account (locked, no license, ...), nor does this organization's log name the client.
    other_org = client.org_id is not None and client.org_id != user.org_id
    reason = WRONG_ORGANIZATION if other_org else refusal_reason(user)
    if reason is not None:
        refused_for = "a client of another organization" if other_org else client.name
        record_event(
            user.org_id,
            "oauth.authorize",
            "user",
            user.id,
            user.login_name or user.user_name,
            outcome="failure",
            resource_type="User",
            resource_id=user.id,
            user_name=user.user_name,
            detail=f"refused for {refused_for}: {reason}",
        )
        writer.commit()
        # OIDC Core §3.1.2.6 / RFC 6749 §4.1.2.1: the person may not sign in to this client.
        return _to_client(
            AccessDeniedError(description=REFUSALS[reason], redirect_uri=grant.redirect_uri)
        )
    resp = server.create_authorization_response(grant=grant, grant_user=signed_in)
    writer.commit()
    return resp


def _to_client(err: OAuth2Error) -> Any:
    """The error, its description and the request's state, to the validated redirect_uri."""
    err.state = _params().get("state")
    code = err.error or ""
    if not err.description:
        err.description = INTERACTION_NEEDED.get(code, code.replace("_", " "))
    # authlib only hands the request to get_error_uri, which ignores it; its stubs want one.
    return _server().handle_error_response(None, err)  # type: ignore[arg-type]


@bp.post("/oauth/token")
def issue_token() -> Response:
    """RFC 6749 §4.1.3: a code (with its PKCE verifier) for an access token and an id_token."""
    # The Flask server turns authlib's (status, body, headers) into a Response; the stubs
    # only know the generic server's tuple.
    resp = cast(Response, _server().create_token_response())
    if resp.status_code == 200:
        db.session.commit()
    else:
        db.session.rollback()
    return resp


@bp.route("/oauth/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """OIDC Core §5.3: the claims, for a valid bearer access token."""
    return _server().create_endpoint_response("userinfo")
