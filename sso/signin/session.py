"""The SSO session: who signed in, how, and when, in Flask's signed session cookie.

The cookie is signed with SCIM_SECRET_KEY, so every node behind the load
balancer can read it without shared server-side state. It only says that a
sign-in happened; whether the user may still sign in is checked again by the
OIDC provider (``sso.provider``) each time the product asks for a code.

A session lasts SCIM_SSO_SESSION_SECONDS, or less when the IdP bounded it (SAML's
SessionNotOnOrAfter: ``ends_at``). A signed cookie cannot be taken back, so each session
has a random id: signing out records it in ``sso_ended_sessions`` (``end_session``), and
each use reads that table by primary key (``speaks_for``, ``ended``): a copy of the cookie
is signed out too, and so are the OIDC provider's codes and tokens issued in the session
(``ended_id``). A session made through a connection ends with it too: disabled or
deleted (a partner's IdP found compromised), it vouches for nobody (``connection_open``),
nor, enabled again, for anyone signed in before its disabling; so do the provider's codes
and tokens issued in such a session (they keep the connection and the sign-in time).
A session without a connection (a password or passkey sign-in here) ends when an admin
sets the organization SSO-only (``local_allowed``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app, session
from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import insert_for
from scim_server.models import User
from scim_server.services import lifecycle
from scim_server.services import settings as org_settings
from sso.connections.models import SsoConnection, SsoEndedSession
from sso.extension import sso_extension
from sso.state import purge_expired

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
    session_id: str = ""  # random, made at sign-in; recorded as ended at sign-out
    # Seconds since the epoch from which the session is over, when the IdP bounded it
    # earlier than SCIM_SSO_SESSION_SECONDS does (SAML Core §2.7.2 SessionNotOnOrAfter);
    # None: that setting alone.
    ends_at: int | None = None


def start_session(
    org_id: str,
    user_id: str,
    method: str,
    connection_id: str | None,
    amr: Sequence[str] = (),
    epoch: int = 0,
    not_after: datetime | None = None,
) -> None:
    """Record a successful sign-in; anything from before is dropped (no session fixation).
    ``epoch``: the account's ``session_epoch`` now (a password change moves it on).
    ``not_after``: the IdP's bound on the session (SAML's SessionNotOnOrAfter), kept when
    it ends the session before SCIM_SSO_SESSION_SECONDS would: the IdP's session policy
    (re-authenticate after an hour) holds here too."""
    now = int(sso_extension().clock().timestamp())
    # Whole seconds, rounded down: the session ends at the bound or just before it.
    bound = int(not_after.timestamp()) if not_after is not None else None
    own = now + current_app.config["SSO_SESSION_SECONDS"]
    data: dict[str, Any] = {
        "org_id": org_id,
        "user_id": user_id,
        "method": method,
        "connection_id": connection_id,
        "auth_time": now,
        "amr": list(amr),
        "epoch": epoch,
        "sid": secrets.token_urlsafe(24),
    }
    if bound is not None and bound <= own:
        data["ends_at"] = bound
    session.clear()
    session[_KEY] = data
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
            # A session from before sessions had ids could not be ended: refused.
            session_id=str(raw["sid"]),
            ends_at=int(raw["ends_at"]) if raw.get("ends_at") is not None else None,
        )
    except (KeyError, TypeError, ValueError):
        return None
    max_age = current_app.config["SSO_SESSION_SECONDS"]  # SCIM_SSO_SESSION_SECONDS
    now = sso_extension().clock().timestamp()
    if now - found.auth_time > max_age:
        return None
    # SAML Core §2.7.2: the session is over at SessionNotOnOrAfter ("not on or after").
    if found.ends_at is not None and now >= found.ends_at:
        return None
    return found


def speaks_for(db_session: Session, found: SsoSession, user: User | None) -> bool:
    """Whether the session still says who is signed in: the account is there, its status
    may sign in, its password did not change since (``passwords.end_sessions``: an
    intruder signed in with a leaked password is out once the owner resets it), the
    session was not signed out (``ended``) and its connection still vouches for it
    (``connection_open``). Checked on each use (the console,
    /sso/security, /sso/welcome, the OIDC provider): the cookie itself cannot be taken
    back. Reads in ``db_session``'s transaction."""
    return (
        user is not None
        and user.status in lifecycle.SIGN_IN_ALLOWED
        and still_open(db_session, found, user)
    )


def still_open(db_session: Session, found: SsoSession, user: User | None) -> bool:
    """``speaks_for`` but the status, for a caller with its own answer to each status (the
    OIDC provider's ``claims.refusal_reason``): the account is there, no password change,
    deactivation or lock ended the session since, it was not signed out, and the
    connection it came through is still there and enabled (``connection_open``)."""
    return (
        user is not None
        and user.session_epoch == found.epoch
        and not ended(db_session, found)
        and connection_open(db_session, found.org_id, found.connection_id, found.auth_time)
        and local_allowed(db_session, found.org_id, found.connection_id)
    )


def local_allowed(db_session: Session, org_id: str, connection_id: str | None) -> bool:
    """Whether a session (or what was issued in it) may go on by how it was made: one
    without a connection (a password or passkey sign-in here) not while an admin has set
    the organization SSO-only: its IdP's policy (MFA, conditional access, leavers) is then
    the only way in, for the sessions already open too, the switching admin's included.
    The automatic default (SSO-only while a connection is enabled) ends none: an admin
    setting up the first connection is not signed out by it before it works. A
    connection's session: nothing to read."""
    if connection_id is None:
        return org_settings.get_settings(db_session, org_id).sign_in_methods != "sso_only"
    return True


def connection_open(
    db_session: Session, org_id: str, connection_id: str | None, auth_time: int | None
) -> bool:
    """Whether the SSO connection a session (or what was issued in it) came through still
    vouches for it: there, enabled, and not disabled since the person signed in
    (``auth_time``, seconds since the epoch). An admin disables or deletes a connection to
    stop trusting its IdP (a partner's, found compromised): the sessions it made end with
    it, not 12 hours later, and enabling it again once it is safe brings none of them back
    (``disabled_at``, kept): a session of the compromise must not outlive it. Whole seconds:
    a sign-in in the very second of the disabling counts as before it (fail closed). One
    read by primary key; None (a password sign-in, no connection): nothing to check; an
    unknown sign-in time is before any disabling."""
    if connection_id is None:
        return True
    found = db_session.execute(
        select(SsoConnection.enabled, SsoConnection.disabled_at).where(
            SsoConnection.org_id == org_id, SsoConnection.id == connection_id
        )
    ).one_or_none()
    if found is None or not found.enabled:
        return False
    disabled_at = found.disabled_at
    return disabled_at is None or (
        auth_time is not None and auth_time > int(disabled_at.timestamp())
    )


def ended(db_session: Session, found: SsoSession) -> bool:
    """Whether the session was signed out (``end_session``): one read by primary key."""
    return ended_id(db_session, found.org_id, found.session_id)


def ended_id(db_session: Session, org_id: str, session_id: str) -> bool:
    """``ended`` by the session's id, for what was issued in it (the OIDC provider's codes
    and tokens keep the id): one read by primary key."""
    return db_session.get(SsoEndedSession, (org_id, session_id)) is not None


def end_session(db_session: Session | None) -> None:
    """Sign out: forget everything the cookie held and, with ``db_session``, record the
    session's id as ended (in a transaction of its own) so that a copy of the cookie
    taken before stops working too, and so do the OIDC provider's codes and tokens issued
    in the session. ``None``: only this cookie is cleared, for a session that speaks for
    nobody any more anyway (the account gone, its password changed)."""
    found = current_session()
    session.clear()
    if db_session is None or found is None:
        return
    now = sso_extension().clock()
    config = current_app.config
    # Kept while anything of the session could still be honoured: the cookie (past that,
    # current_session refuses it) and an access token from a code issued at its last
    # moment (the OIDC provider's tokens carry the id, ``sso.provider.server``).
    expires = datetime.fromtimestamp(
        found.auth_time
        + config["SSO_SESSION_SECONDS"]
        + config["OAUTH_CODE_SECONDS"]
        + config["OAUTH_ACCESS_TOKEN_SECONDS"],
        UTC,
    )
    insert = insert_for(db_session.get_bind().dialect.name)
    with db_session.begin():
        purge_expired(db_session, SsoEndedSession, now)
        ended_now = db_session.execute(
            insert(SsoEndedSession)
            .values(org_id=found.org_id, id=found.session_id, expires_at=expires)
            .on_conflict_do_nothing()  # the same session signed out twice (two tabs, a copy)
            .returning(SsoEndedSession.id)  # a row: this sign-out ended it (no rowcount on PG)
        ).first()
        if ended_now is not None:  # its first sign-out: in the log
            user = db_session.get(User, (found.org_id, found.user_id))
            record(
                db_session,
                found.org_id,
                "signin.sign_out",
                resource_type="User",
                resource_id=found.user_id,
                external_id=user.external_id if user is not None else None,
                user_name=user.user_name if user is not None else None,
                detail=f"signed out of a {found.method} sign-in",
                explanation={"connection_id": found.connection_id, "method": found.method},
            )
