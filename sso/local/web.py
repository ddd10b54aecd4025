"""What every local sign-in page shares: the form check, CSRF, throttling, the clock, pages.

Forms: only a form content type and a small body are read (anything else is a
clear 415/413 page, before any parsing or hashing). CSRF: a random token in
the signed session, sent back with each form (and as ``X-CSRF-Token`` by
the passkey script). Per-address throttling: ``scim_server.ratelimit``'s
counters in the database, so all web processes and nodes share one count
per client address per minute. Audit: each request names who acts (``audit_actor``).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import statistics
import time
from collections import deque
from datetime import datetime
from typing import Any

from flask import current_app, request, session
from werkzeug.datastructures import MultiDict

from scim_server import csrf, request_inputs
from scim_server.audit import web as audit_web
from scim_server.db import SAFE_METHODS, db
from scim_server.delivery import current_hashing
from scim_server.models import User
from scim_server.ratelimit import Limiter, RateLimited
from scim_server.urls import link_root
from sso.connections.sealing import current_secret
from sso.errors import SsoError
from sso.extension import sso_extension
from sso.local import keys, pending
from sso.local.password import Attempt
from sso.signin import pages
from sso.signin.session import current_session

log = logging.getLogger(__name__)

# Shown with 503 when every argon2 slot of the node is busy (``scim_server.slots``):
# nothing was checked or counted, the same form is offered again.
BUSY = "Many people are signing in right now; try again in a moment."
BUSY_RETRY_SECONDS = 1

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FORM_BYTES = 16 * 1024
MAX_JSON_BYTES = 64 * 1024
_CSRF = "csrf"


class BadRequestError(Exception):
    """A request the page cannot read; shown as a plain page with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


NUL_REFUSED = "The request holds a character that is not allowed."


def refuse_nul() -> None:
    """A ``before_request`` of the sign-in pages' blueprints (``scim_server.request_inputs``)."""
    if request_inputs.has_nul(request):
        raise BadRequestError(400, NUL_REFUSED)


# The actor of the sign-in pages' events when no person is known: a browser, not "system".
ANONYMOUS = "anonymous"
# Pages whose events are about an account this browser has not proved yet: a sign-in or
# pending sign-in the browser holds may be another account's, never their actor.
UNPROVED = frozenset({"local.sign_in_with_password"})


def audit_actor() -> None:
    """A ``before_request`` of the sign-in pages' blueprints (``local``, ``sso_recovery``): who
    the events they write name (``audit.web.begin``), with the browser's address and user
    agent, as the console and the APIs name theirs.

    The person (``user``, their id) when this browser holds their sign-in session or a
    pending sign-in; else ``anonymous`` (a forgot request, a mailed link, the password form:
    ``UNPROVED``). A request that may write reads their login name for the events (one read
    by key); a GET, which writes none here, names them by id only.
    """
    who = None if request.endpoint in UNPROVED else current_session() or pending.current(now())
    name: str | None = None
    if who is not None and request.method not in SAFE_METHODS:
        with db.lookup() as s:
            user = s.get(User, (who.org_id, who.user_id))
            name = (user.login_name or user.user_name) if user is not None else None
        if name is None:  # the account is gone: nobody to name
            who = None
    if who is None:
        audit_web.begin(None, None, actor_type=ANONYMOUS)
    else:
        audit_web.begin(who.user_id, name, actor_type="user")


def now() -> datetime:
    return sso_extension().clock()


def form() -> MultiDict[str, str]:
    """The posted form, after its type and size were checked."""
    if request.mimetype not in FORM_TYPES:
        raise BadRequestError(415, "This page accepts only its own form (a form content type).")
    if request.content_length is None:
        raise BadRequestError(411, "The form must be sent with its length.")
    if request.content_length > MAX_FORM_BYTES:
        raise BadRequestError(413, "What was sent is far too large for this form.")
    return request.form


def json_body() -> Any:
    if request.mimetype != "application/json":
        raise BadRequestError(415, "This endpoint accepts only application/json.")
    if request.content_length is None or request.content_length > MAX_JSON_BYTES:
        raise BadRequestError(413, "What was sent is too large.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequestError(400, "The body must be a JSON object.")
    check_csrf(request.headers.get("X-CSRF-Token"))
    return body


def csrf_token() -> str:
    token = session.get(_CSRF)
    if not isinstance(token, str):
        token = session[_CSRF] = secrets.token_urlsafe(24)
    return token


def check_csrf(sent: Any) -> None:
    wanted = session.get(_CSRF)
    if not isinstance(wanted, str) or not isinstance(sent, str):
        raise BadRequestError(400, "This form is no longer valid. Please go back and try again.")
    if not hmac.compare_digest(wanted, sent):
        raise BadRequestError(400, "This form is no longer valid. Please go back and try again.")
    if csrf.from_other_site():  # the console's origin check: another site's page posted it
        raise BadRequestError(400, "This form is no longer valid. Please go back and try again.")


def throttle() -> None:
    """Count this attempt against the client's address; ``SsoError('throttled')`` over the limit."""
    limit = int(current_app.config["SIGNIN_ATTEMPTS_PER_MINUTE"])
    if limit <= 0:
        return
    limiter: Limiter = current_app.extensions["scim_ratelimit"]
    address = (request.remote_addr or "unknown")[:64]
    try:
        limiter.check(db.writer(), f"signin:{address}", limit)
    except RateLimited:
        raise SsoError("throttled", f"{address} exceeded {limit} attempts a minute") from None


def attempt() -> Attempt:
    return Attempt(
        hashing=current_hashing(bounded=True),
        attempt_key=keys.attempt_key(current_secret()),
        now=now(),
        base_url=link_root(),
        source_ip=request.remote_addr,
        user_agent=request.user_agent.string or None,
    )


MAX_PAD_SECONDS = 1.0


def even_out(started: float, account_found: bool, recent: deque[float] | None = None) -> None:
    """Make an unknown account's refusal last as long as a known one's.

    Both verify an argon2 hash (``passwords.burn_time``), but only a known
    account writes (lockout counter, sign-in record, audit event): about 20 ms
    on SQLite, enough to tell who has an account. Known refusals' durations are
    kept per process (the last 31); unknown ones sleep up to their median
    (``started`` is ``time.perf_counter()`` at the request's start). ``recent``:
    another form's durations (default: the password form's refusals).
    """
    if recent is None:
        recent = sso_extension().refusal_seconds
    elapsed = time.perf_counter() - started
    if account_found:
        recent.append(elapsed)
        return
    if recent:
        pad = min(statistics.median(recent) - elapsed, MAX_PAD_SECONDS)
        if pad > 0:
            time.sleep(pad)


def page(template: str, status: int = 200, **context: Any) -> pages.Page:
    return pages.render_page(template, status, csrf=csrf_token(), **context)


def refusal(err: SsoError) -> Any:
    html, status, headers = pages.refusal_page(err)
    if err.reason_code == "throttled":
        headers = {**headers, "Retry-After": "60"}
    return html, status, headers


def busy(shown: pages.Page, what: str) -> pages.Page:
    """The form again with ``BUSY``: 503 and ``Retry-After``; a log line says what was shed."""
    log.warning("%s refused before any hashing: every argon2 slot of this node is busy", what)
    html, _status, headers = shown
    return html, 503, {**headers, "Retry-After": str(BUSY_RETRY_SECONDS)}
