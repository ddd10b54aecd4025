"""``/sso/forgot``, ``/sso/reset/<token>``, ``/sso/activate/<token>``: pages for mailed links.

Forgot password: the POST answers the same whether or not the account exists
(and whatever the throttles decided), so the form tells nobody who has an
account; nor does its duration: an answer that sent no link sleeps up to what
sending one took lately, as the password form pads (``web.even_out``). Each
address may ask ``FORGOT_PER_MINUTE`` times a minute; each account gets at most
three links an hour (``services.recovery``).

A link's GET only shows a form with a button: mail scanners that open links
burn nothing. Its POST consumes the link and sets the chosen password through
the policy; a refused password shows the rule's message and the link still works.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, request

from scim_server.db import db
from scim_server.delivery import current_delivery
from scim_server.errors import DomainError
from scim_server.ratelimit import WINDOW_SECONDS, count_request, sweep
from scim_server.services import recovery
from scim_server.services.passwords import MAX_INPUT_CHARS, PasswordRejected
from scim_server.slots import NoSlotError
from sso.extension import sso_extension
from sso.local import web
from sso.signin import pages

bp = Blueprint("sso_recovery", __name__, url_prefix="/sso")


@bp.errorhandler(web.BadRequestError)
def _bad_request(err: web.BadRequestError) -> Any:
    return pages.message_page("Invalid request", err.message, status=err.status)


# NUL anywhere in the request is refused (400) before a view reads it, as on the sign-in
# pages: a password holding it could be chosen here but never typed there, and a token or
# an identifier holding it looks nothing up.
bp.before_request(web.refuse_nul)
# Its events name the browser (address, user agent) and whoever it is signed in as, if anyone.
bp.before_request(web.audit_actor)
log = logging.getLogger(__name__)

FORGOT_PER_MINUTE = 5
SENT_TITLE = "Check your mail"
SENT_TEXT = (
    "If an account that signs in with a password matches what you entered, we have sent a link "
    "to choose a new password to its e-mail address. The link works once, for 60 minutes."
)
DEAD_LINK = (
    "This link does not work any more: it was already used, it expired, or it was copied "
    "incompletely. Nothing was changed. You can ask for a new one from the sign-in page."
)


def _forgot_page(identifier: str = "", problem: str | None = None, status: int = 200) -> Any:
    return pages.render_page("signin/forgot.html", status, identifier=identifier, problem=problem)


@bp.get("/forgot")
def forgot_form() -> Any:
    return _forgot_page()


@bp.post("/forgot")
def forgot() -> Any:
    """Mail a reset link when the account exists; the same answer either way."""
    if request.mimetype != "application/x-www-form-urlencoded":
        return _forgot_page(problem="Send the form from this page.", status=415)
    identifier = (request.form.get("identifier") or "").strip()
    if not identifier or len(identifier) > recovery.MAX_IDENTIFIER or "\x00" in identifier:
        # (NUL names no account, and PostgreSQL text cannot hold it: no lookup.)
        return _forgot_page(
            identifier[:320].replace("\x00", ""),
            "Enter the e-mail address or username of your account.",
            400,
        )
    count, window = count_request(db.writer(), f"forgot:{request.remote_addr}", time.time())
    if count == 1:
        # The first request of this address in a window clears windows long past
        # (the SCIM limiter does the same when it is on).
        sweep(db.writer(), window - WINDOW_SECONDS)
    if count > FORGOT_PER_MINUTE:
        html, _status, headers = pages.message_page(
            "Too many requests",
            "Too many reset requests came from your network. Please wait a minute and try again.",
            status=429,
            back="/sso/forgot",
        )
        return html, 429, {**headers, "Retry-After": "60"}
    started = time.perf_counter()
    sent = recovery.request_reset(db.writing_session(), current_delivery(), identifier)
    # A link is a token, a status change, a mail and audit events: a few milliseconds
    # that would tell who has an account.
    web.even_out(started, sent > 0, sso_extension().forgot_seconds)
    log.info("forgot password: %s reset link(s) queued", sent)
    return pages.message_page(SENT_TITLE, SENT_TEXT)


def _link_page(token: str, purpose: str, problem: str | None = None, status: int = 200) -> Any:
    session = db.writing_session()
    try:
        info = recovery.open_link(session, token, purpose)
    except recovery.LinkInvalidError:
        return pages.message_page("Link not valid", DEAD_LINK, status=410)
    finally:
        if session.in_transaction():
            session.rollback()
    return pages.render_page(
        "signin/choose_password.html",
        status,
        info=info,
        org_name=info.org_name,
        action=request.path,
        problem=problem,
    )


def _use(token: str, purpose: str) -> Any:
    if request.mimetype != "application/x-www-form-urlencoded":
        return _link_page(token, purpose, "Send the form from this page.", 415)
    password = request.form.get("password") or ""
    confirm = request.form.get("confirm") or ""
    if "\x00" in password or "\x00" in confirm:
        # A form too large for ``refuse_nul`` to read (``request_inputs.MAX_FORM_BYTES``; the
        # sign-in pages refuse such a form) is checked here: never a password they refuse.
        raise web.BadRequestError(400, web.NUL_REFUSED)
    if len(password) > MAX_INPUT_CHARS:
        return _link_page(token, purpose, "The password is too long.", 400)
    if password != confirm:
        return _link_page(token, purpose, "The two passwords are not the same.", 400)
    session = db.writing_session()
    try:
        recovery.use_link(session, current_delivery(bounded=True), token, purpose, password)
    except NoSlotError:
        return web.busy(_link_page(token, purpose, web.BUSY), f"{purpose} link")
    except recovery.LinkInvalidError:
        return pages.message_page("Link not valid", DEAD_LINK, status=410)
    except PasswordRejected as exc:
        return _link_page(token, purpose, exc.detail, 400)
    except DomainError as exc:
        return pages.message_page("Password not changed", exc.detail, status=exc.status)
    return pages.render_page("signin/password_set.html", purpose=purpose)


@bp.get("/reset/<token>")
def reset_form(token: str) -> Any:
    return _link_page(token, "reset")


@bp.post("/reset/<token>")
def reset(token: str) -> Any:
    return _use(token, "reset")


@bp.get("/activate/<token>")
def activate_form(token: str) -> Any:
    return _link_page(token, "activation")


@bp.post("/activate/<token>")
def activate(token: str) -> Any:
    return _use(token, "activation")
