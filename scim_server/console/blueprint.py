"""The console's parent blueprint (``/admin``): who is signed in, idle timeout, CSRF, errors.

Every console area is a child blueprint of ``bp``, so this ``before_request``
runs first for all of them: no session → the product's sign-in page; idle too
long → signed out; an account that may no longer sign in, or holds no console
role → 403; an unsafe method without its CSRF token → 400; NUL in the address or a
form → 400 (``refuse_nul``). The signed-in person becomes the actor of every audit
event the request writes.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from flask import Blueprint, Response, current_app, g, redirect, request, session
from flask_wtf.csrf import CSRFError

from scim_server.audit import record_failure
from scim_server.audit import web as audit_web
from scim_server.console.access import ConsolePerson
from scim_server.console.render import is_htmx, render
from scim_server.csrf import check_csrf
from scim_server.db import db, release
from scim_server.errors import DomainError, InvalidValueError
from scim_server.models import Organization, User
from scim_server.request_inputs import has_nul
from scim_server.services import console_access
from sso.signin.session import SsoSession, current_session, end_session, speaks_for

bp = Blueprint("console", __name__, url_prefix="/admin")
root = Blueprint("console_root", __name__)

_SEEN = "console_seen"  # when this session last used the console (seconds since the epoch)
SIGN_IN = "/sso/login"


@root.get("/")
def index() -> Response:
    """The site's root is the console (which sends a stranger to sign in)."""
    return redirect("/admin/", code=302)  # type: ignore[return-value]


def _to_sign_in() -> Response:
    target = f"{SIGN_IN}?next={quote(request.full_path.rstrip('?'), safe='/')}"
    if is_htmx():
        # htmx would swap the sign-in page into a table cell: make it navigate instead.
        return Response(status=204, headers={"HX-Redirect": target})
    return redirect(target, code=303)  # type: ignore[return-value]


def _load_person(signed_in: SsoSession) -> ConsolePerson | None:
    """The console user, or None when the account is gone, may not sign in any more, or
    changed its password since this session's sign-in (``speaks_for``)."""
    s = db.session
    org_id, user_id = signed_in.org_id, signed_in.user_id
    user = s.get(User, (org_id, user_id))
    org = s.get(Organization, org_id)
    if user is None or org is None or not speaks_for(s, signed_in, user):
        return None
    roles = console_access.roles_of(s, org_id, user_id)
    return ConsolePerson(
        org_id=org_id,
        org_name=org.name,
        user_id=user_id,
        user_name=user.user_name,
        display_name=user.display_name or user.user_name,
        roles=roles,
        capabilities=console_access.capabilities(roles),
    )


@bp.before_request
def authenticate() -> Response | None:
    signed_in = current_session()
    if signed_in is None:
        return _to_sign_in()
    now = int(time.time())
    seen = session.get(_SEEN)
    if not isinstance(seen, int):
        # Not used in the console yet: idle since the sign-in, or a copy of the cookie the
        # sign-in set would stay good for the whole SSO session.
        seen = signed_in.auth_time
    if now - seen > current_app.config["CONSOLE_IDLE_SECONDS"]:
        end_session(db.writing_session())  # a copy of the cookie is out too
        return _to_sign_in()
    session[_SEEN] = now
    who = _load_person(signed_in)
    if db.session.in_transaction():
        db.session.commit()
    if who is None:
        end_session(None)  # speaks for nobody: nothing to record
        return _to_sign_in()
    g.console_person = who
    g.org_id = who.org_id
    if not who.roles and request.endpoint != "console.sign_out":
        # Signing out stays open to them: a session the console does not serve is theirs all
        # the same (the applications they sign in to, on a shared computer).
        return render("console/error.html", status=403, reason="no_access")
    audit_web.begin(who.user_id, who.user_name, actor_type="console")
    # An upload view may take more than the app's request limit (its mark says how much).
    upload_limit = getattr(
        current_app.view_functions.get(request.endpoint or ""), "max_upload_bytes", None
    )
    if upload_limit:
        request.max_content_length = upload_limit
    check_csrf()
    return None


@bp.before_request
def refuse_nul() -> None:
    """NUL in the address, a search box or a form (``scim_server.request_inputs``): one 400
    page for every area, before any view looks an id or a filter up (registered after
    ``authenticate``, so an upload's own size limit holds when the form is read)."""
    if has_nul(request):
        raise InvalidValueError("The address or the form holds a character that is not allowed.")


@bp.post("/sign-out")
def sign_out() -> Response:
    """The session ends on the server too: a copy of the cookie no longer signs anyone in."""
    end_session(db.session)
    return redirect(SIGN_IN, code=303)  # type: ignore[return-value]


@bp.errorhandler(CSRFError)
def _csrf_refused(err: CSRFError) -> Response:
    g.console_refusal = "the form's CSRF token is missing or wrong"
    return render("console/error.html", status=400, reason="csrf")


@bp.errorhandler(DomainError)
def _refused(err: DomainError) -> Response:
    g.console_refusal = err.detail
    return render("console/error.html", status=err.status, reason="domain", detail=err.detail)


# What a refused change names, by the view's argument: the first one present.
_REFUSED_RESOURCES = {
    "user_id": "User",
    "contact_id": "Contact",
    "license_id": "License",
    "role_id": "Role",
    "rule_set_id": "RuleSet",
    "job_id": "Job",
    "connection_id": "SsoConnection",
    "token_id": "Token",
    "client_id": "OidcClient",
}


@bp.after_request
def _no_sniffing(resp: Response) -> Response:
    """Every console answer as its declared type, downloads included (a CSV of names an
    admin did not write, opened by a browser that guesses, is not a page)."""
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    return resp


@bp.after_request
def _record_refusal(resp: Response) -> Response:
    """A signed-in person's refused change (a POST answered 4xx: not allowed, not found, in
    conflict, a bad form) is in the log as the admin API's refusals are: a failure event
    in a transaction of its own (``record_failure``), named ``console.<view>``, with the
    status, the reason the page gave and the resource the address names. Reads are not
    changes, and a database that is down (503) has nowhere to write."""
    who: ConsolePerson | None = g.get("console_person")
    if (
        who is None
        or request.method in ("GET", "HEAD", "OPTIONS")
        or not 400 <= resp.status_code < 500
    ):
        return resp
    args = request.view_args or {}
    arg = next((a for a in _REFUSED_RESOURCES if a in args), None)
    session = g.get("_scim_session")
    if session is not None and session.in_transaction():
        release(session)  # any lock held goes before the failure event's transaction
    record_failure(
        db.writer(),
        who.org_id,
        f"console.{(request.endpoint or 'unknown').removeprefix('console.')}",
        resource_type=_REFUSED_RESOURCES[arg] if arg else None,
        resource_id=str(args[arg]) if arg else None,
        status=resp.status_code,
        detail=g.get("console_refusal"),
    )
    return resp


# An HTTPException (a 404, a 405 with its Allow) is the app's fallback handler's
# (``scim_server._register_fallback_errors``): the same page for every path under /admin.
