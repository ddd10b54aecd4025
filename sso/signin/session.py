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


def start_session(
    org_id: str,
    user_id: str,
    method: str,
    connection_id: str | None,
    amr: Sequence[str] = (),
) -> None:
    """Record a successful sign-in; anything from before is dropped (no session fixation)."""
    session.clear()
    session[_KEY] = {
        "org_id": org_id,
        "user_id": user_id,
        "method": method,
        "connection_id": connection_id,
        "auth_time": int(sso_extension().clock().timestamp()),
        "amr": list(amr),
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
        )
    except (KeyError, TypeError, ValueError):
        return None
    max_age = current_app.config["SSO_SESSION_SECONDS"]  # SCIM_SSO_SESSION_SECONDS
    if sso_extension().clock().timestamp() - found.auth_time > max_age:
        return None
    return found


def end_session() -> None:
    """Sign out: forget everything the cookie held."""
    session.clear()
