"""The SSO session: who signed in, how, and when, in Flask's signed session cookie.

The cookie is signed with SCIM_SECRET_KEY, so every node behind the load
balancer can read it without shared server-side state. It only says that a
sign-in happened; whether the user may still sign in is checked again by the
OIDC provider (``sso.provider``) each time the product asks for a code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app, session

from scim_server.models import User
from scim_server.services import lifecycle
from sso.extension import sso_extension

_KEY = "sso"


@dataclass(frozen=True)
class SsoSession:
    """A signed-in person: internal organization and user ids, the method used, and when."""

    org_id: str
    user_id: str
    method: str  # "saml" | "oidc" | "test" ...
    connection_id: str | None
    auth_time: int  # seconds since the epoch (OIDC Core §2 auth_time)
    amr: tuple[str, ...] = ()  # RFC 8176 methods (``sso.signin.amr``); () when not known
    epoch: int = 0  # the account's ``session_epoch`` at the sign-in (``speaks_for``)


def start_session(
    org_id: str,
    user_id: str,
    method: str,
    connection_id: str | None,
    amr: Sequence[str] = (),
    epoch: int = 0,
) -> None:
    """Record a successful sign-in; anything from before is dropped (no session fixation).
    ``epoch``: the account's ``session_epoch`` now (a password change moves it on)."""
    session.clear()
    session[_KEY] = {
        "org_id": org_id,
        "user_id": user_id,
        "method": method,
        "connection_id": connection_id,
        "auth_time": int(sso_extension().clock().timestamp()),
        "amr": list(amr),
        "epoch": epoch,
    }
    session.permanent = False


def current_session() -> SsoSession | None:
    """The signed-in person of this request, or None (no cookie, a malformed or too old one)."""
    raw: Any = session.get(_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        found = SsoSession(
            org_id=str(raw["org_id"]),
            user_id=str(raw["user_id"]),
            method=str(raw["method"]),
            connection_id=raw.get("connection_id"),
            auth_time=int(raw["auth_time"]),
            amr=tuple(str(v) for v in raw.get("amr") or ()),
            epoch=int(raw.get("epoch") or 0),
        )
    except (KeyError, TypeError, ValueError):
        return None
    max_age = current_app.config["SSO_SESSION_SECONDS"]  # SCIM_SSO_SESSION_SECONDS
    if sso_extension().clock().timestamp() - found.auth_time > max_age:
        return None
    return found


def speaks_for(found: SsoSession, user: User | None) -> bool:
    """Whether the session still says who is signed in: the account is there, its status
    may sign in, and its password did not change since (``passwords.end_sessions``: an
    intruder signed in with a leaked password is out once the owner resets it). Checked on
    each use (the console, /sso/security, /sso/welcome, the OIDC provider): the cookie
    itself cannot be taken back."""
    return (
        user is not None
        and user.status in lifecycle.SIGN_IN_ALLOWED
        and user.session_epoch == found.epoch
    )


def end_session() -> None:
    """Sign out: forget everything the cookie held."""
    session.clear()
