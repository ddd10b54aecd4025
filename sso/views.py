"""SSO endpoints for people in a browser: home-realm discovery, SAML and OIDC logins.

Thin handlers: parse, call the flow and the sign-in decision, render. Every
refusal shows a generic page and leaves the precise reason in the log, the
sign-in records and the audit log. A login is bound to the browser that
started it (a cookie whose hash is kept with the request's state), so a
response captured or started by someone else cannot sign a victim in.
Logins write (state, replay marks, sign-in records) even on GET, so every
handler works in the request's writer, ``db.writing_session()``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, redirect, request

from scim_server.db import DATABASE_RETRY_AFTER, DATABASE_UNAVAILABLE, db
from scim_server.models import User
from scim_server.urls import public_url
from sso import state
from sso.connections import service as connections
from sso.connections.models import SsoConnection
from sso.errors import SsoError
from sso.extension import sso_extension
from sso.local import routing
from sso.local import views as local_views
from sso.local import web as local_web
from sso.oidc import flow as oidc_flow
from sso.saml import flow as saml_flow
from sso.saml import sp
from sso.signin import decision as signin
from sso.signin import identity, pages, testmode
from sso.signin.amr import upstream_amr
from sso.signin.request import SignInRequest
from sso.signin.session import current_session, speaks_for, start_session
from sso.signin.targets import DEFAULT_NEXT, safe_next

bp = Blueprint("sso", __name__, url_prefix="/sso")
log = logging.getLogger(__name__)


def _unavailable(err: Exception) -> Any:
    """The database is down: the person gets the plain page and a moment to wait, not a 500."""
    log.warning("sso: database unavailable: %s", (str(err).splitlines() or [type(err).__name__])[0])
    html, status, headers = pages.unavailable_page()
    return html, status, {**headers, "Retry-After": str(DATABASE_RETRY_AFTER)}


for _exc_class in DATABASE_UNAVAILABLE:
    bp.register_error_handler(_exc_class, _unavailable)


@bp.errorhandler(local_web.BadRequestError)
def _bad_request(err: local_web.BadRequestError) -> Any:
    return pages.message_page("Invalid request", err.message, status=err.status)


bp.before_request(local_web.refuse_nul)


BIND_SECONDS = state.STATE_SECONDS


def _client() -> tuple[str | None, str | None]:
    return request.remote_addr, request.user_agent.string or None


def _refuse(err: SsoError, conn: SsoConnection | None = None) -> Any:
    """Record a refusal not yet tied to a person, then show the generic page."""
    if conn is not None:
        s = db.writing_session()
        # A failed transaction expired the connection: read it before dropping any reload.
        about = (conn.org_id, conn.id, conn.name, conn.protocol)
        if s.in_transaction():
            s.rollback()
        ip, agent = _client()
        signin.record_refusal(s, *about, err, ip, agent)
    else:
        log.info("sso request refused (%s): %s", err.reason_code, err.detail)
    return pages.refusal_page(err)


# -- browser binding -----------------------------------------------------------------


def _bind_cookie(state_id: str) -> str:
    return "sso_" + hashlib.sha256(state_id.encode()).hexdigest()[:16]


def _bind(resp: Any, state_id: str, token: str) -> Any:
    secure = public_url().startswith("https://")
    resp.set_cookie(
        _bind_cookie(state_id),
        token,
        max_age=BIND_SECONDS,
        path="/sso",
        httponly=True,
        secure=secure,
        # The SAML response is a cross-site POST from the IdP: only SameSite=None travels with it.
        samesite="None" if secure else "Lax",
    )
    return resp


def _check_binding(state_id: str, data: dict[str, Any]) -> None:
    token = request.cookies.get(_bind_cookie(state_id), "")
    wanted = data.get("bind")
    if not wanted or hashlib.sha256(token.encode()).hexdigest() != wanted:
        raise SsoError("state_mismatch", "the login was not started in this browser")


def _new_binding() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


# -- home-realm discovery -------------------------------------------------------------


@bp.get("/login")
def login_form() -> Any:
    return pages.login_page(safe_next(request.args.get("next")))


@bp.post("/login")
def discover() -> Any:
    """The first step: the organization's IdP by the address's domain, or the password form.

    ``sso.local.routing`` decides from the organization's ``sign_in_methods``;
    the answer never depends on whether an account exists.
    """
    data = local_web.form()
    email = (data.get("email") or "").strip()[:320]
    next_path = safe_next(data.get("next"))
    if not email:
        return pages.login_page(next_path, "", "Enter your e-mail address or username.", 400)
    s = db.writing_session()
    with s.begin():
        way = routing.route(s, email)
    if way.idp is not None:
        return redirect(_start_url(way.idp, email, next_path), 303)
    if not way.password:
        err = SsoError("unknown_domain", f"no enabled connection for {email!r}")
        log.info("home-realm discovery failed: %s", err.detail)
        return pages.login_page(next_path, email, err.message, status=400)
    option = way.sso_option
    return local_views.password_page(
        email, next_path, sso_url=_start_url(option, email, next_path) if option else None
    )


def _start_url(conn: SsoConnection, email: str, next_path: str) -> str:
    query = {"next": next_path}
    if conn.protocol == "oidc":
        query["login_hint"] = email
    return f"/sso/{conn.protocol}/{conn.id}/start?{urlencode(query)}"


def _connection(connection_id: str, protocol: str) -> SsoConnection:
    s = db.writing_session()
    with s.begin():
        conn = connections.find_connection(s, connection_id)
    if conn is None or conn.protocol != protocol:
        raise SsoError("unknown_connection", f"no {protocol} connection {connection_id[:40]!r}")
    return conn


def _start(conn: SsoConnection, data: dict[str, Any], login_hint: str | None = None) -> Any:
    """Redirect to the IdP, binding the login to this browser."""
    if not conn.enabled:
        return _refuse(SsoError("connection_disabled", "the connection is disabled"), conn)
    token, data["bind"] = _new_binding()
    s = db.writing_session()
    try:
        with s.begin():
            if conn.protocol == "saml":
                url, state_id = saml_flow.start(s, conn, public_url(), data)
            else:
                callback = f"{public_url()}/sso/oidc/{conn.id}/callback"
                url, state_id = oidc_flow.start(s, conn, callback, data, login_hint)
    except SsoError as err:
        return _refuse(err, conn)
    return _bind(redirect(url, 302), state_id, token)


# -- SAML -----------------------------------------------------------------------------


@bp.get("/saml/<connection_id>/start")
def saml_start(connection_id: str) -> Any:
    try:
        conn = _connection(connection_id, "saml")
    except SsoError as err:
        return _refuse(err)
    return _start(conn, {"next": safe_next(request.args.get("next"))})


@bp.get("/saml/<connection_id>/metadata")
def saml_metadata(connection_id: str) -> Any:
    """Our SP metadata, for the IdP admin to upload (public: it holds no secret)."""
    try:
        conn = _connection(connection_id, "saml")
        xml = sp.sp_metadata(saml_flow.config(conn, public_url()))
    except SsoError as err:
        return _refuse(err)
    return Response(xml, mimetype="application/samlmetadata+xml")


@bp.post("/saml/<path:_rest>")
def saml_acs(_rest: str) -> Any:
    """The assertion consumer service: each connection's ACS path routes here."""
    s = db.writing_session()
    with s.begin():
        conn = connections.connection_by_acs_path(s, request.path)
    if conn is None or conn.protocol != "saml":
        return _refuse(SsoError("unknown_connection", f"no ACS at {request.path[:200]!r}"))
    if not conn.enabled:
        return _refuse(SsoError("connection_disabled", "the connection is disabled"), conn)
    encoded = request.form.get("SAMLResponse")
    if not encoded:
        return _refuse(SsoError("invalid_response", "no SAMLResponse in the POST"), conn)
    try:
        assertion, data = saml_flow.finish(s, conn, public_url(), encoded)
        if data is not None:
            _check_binding(assertion.in_response_to or "", data)
    except SsoError as err:
        return _refuse(err, conn)
    ip, agent = _client()
    req = identity.saml_sign_in(conn, assertion, ip, agent)
    if data is not None and data.get("test"):
        result = testmode.run(
            s, conn, req, lambda: identity.saml_identity(assertion), assertion.attributes
        )
        return _clear_binding(pages.test_result_page(result), assertion.in_response_to or "")
    # IdP-initiated: RelayState is the only hint where to go, and only a local path is taken.
    target = data.get("next") if data is not None else request.form.get("RelayState")
    return _complete(
        conn,
        req,
        safe_next(target),
        assertion.in_response_to or "",
        not_after=assertion.session_not_on_or_after,
    )


def _complete(
    conn: SsoConnection,
    req: SignInRequest,
    target: str,
    state_id: str,
    amr: tuple[str, ...] = (),
    not_after: datetime | None = None,
) -> Any:
    """Sign in; ``amr``: the identity provider's (OIDC), passed on to our id_tokens;
    ``not_after``: the IdP's bound on the session (SAML's SessionNotOnOrAfter)."""
    try:
        user = signin.sign_in(db.writing_session(), req)
    except SsoError as err:
        return _clear_binding(pages.refusal_page(err), state_id)
    start_session(conn.org_id, user.id, conn.protocol, conn.id, amr, user.session_epoch, not_after)
    return _clear_binding(redirect(target, 303), state_id)


def _clear_binding(resp: Any, state_id: str) -> Any:
    if not state_id:
        return resp
    out = current_app.make_response(resp)
    out.delete_cookie(_bind_cookie(state_id), path="/sso")
    return out


# -- OpenID Connect -------------------------------------------------------------------


@bp.get("/oidc/<connection_id>/start")
def oidc_start(connection_id: str) -> Any:
    try:
        conn = _connection(connection_id, "oidc")
    except SsoError as err:
        return _refuse(err)
    hint = (request.args.get("login_hint") or "")[:320] or None
    return _start(conn, {"next": safe_next(request.args.get("next"))}, hint)


@bp.get("/oidc/<connection_id>/callback")
def oidc_callback(connection_id: str) -> Any:
    try:
        conn = _connection(connection_id, "oidc")
    except SsoError as err:
        return _refuse(err)
    if not conn.enabled:
        return _refuse(SsoError("connection_disabled", "the connection is disabled"), conn)
    state_id = request.args.get("state") or ""
    s = db.writing_session()
    try:
        with s.begin():
            login, data = oidc_flow.finish(s, conn, request.args, sso_extension().jwks)
        _check_binding(state_id, data)
    except SsoError as err:
        return _clear_binding(_refuse(err, conn), state_id)
    ip, agent = _client()
    req = identity.oidc_sign_in(conn, login.subject, login.claims, ip, agent)
    if data.get("test"):
        result = testmode.run(s, conn, req, lambda: login.identity, login.claims)
        return _clear_binding(pages.test_result_page(result), state_id)
    amr = upstream_amr(login.id_token_claims)
    return _complete(conn, req, safe_next(data.get("next")), state_id, amr)


# -- test mode and landing --------------------------------------------------------------


@bp.get("/test/<token>")
def test_start(token: str) -> Any:
    """Start the test login an admin asked for (single use, ten minutes)."""
    s = db.writing_session()
    with s.begin():
        consumed = state.consume_state(s, token, testmode.KIND)
        conn = (
            connections.find_connection(s, consumed.connection_id)
            if consumed is not None and not consumed.expired
            else None
        )
    if conn is None or conn.org_id != (consumed.org_id if consumed else None):
        return _refuse(SsoError("invalid_request", "unknown, used or expired test link"))
    return _start(conn, {"test": True, "next": DEFAULT_NEXT})


@bp.get("/welcome")
def welcome() -> Any:
    """Where a sign-in without a destination lands."""
    found = current_session()
    if found is None:
        return redirect("/sso/login", 303)
    s = db.writing_session()
    with s.begin():
        user = s.get(User, (found.org_id, found.user_id))
        vouched = speaks_for(s, found, user)
        org_name = local_views.org_name_of(s, found.org_id)
    if user is None or not vouched:
        # Deactivated, locked, deleted, its password changed or signed out since: the
        # session no longer says who is signed in.
        return redirect("/sso/login", 303)
    return local_web.page(
        "signin/signed_in.html", user_name=user.login_name or user.user_name, org_name=org_name
    )
