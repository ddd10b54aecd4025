"""A half-done sign-in (password checked; a new password or a second factor still to come).

Kept in Flask's signed session cookie under its own key, never the signed-in
key (``sso.signin.session``): until the last step, the person is not signed
in. It names the account, the step, where to go after, when it dies (a few
minutes), and a fingerprint of the password it was proved with, so an admin's
password reset in the meantime ends it.

The secrets of an unfinished enrolment (a TOTP key not yet confirmed, recovery
codes not yet shown) are sealed before they go in the cookie (``put_secret``):
the cookie is signed, not encrypted, and may sit in a browser profile, a proxy
log or a crash report. AES-256-GCM with a key derived from the server secret,
bound to the account and the value's name, with its own deadline
(``SIGNIN_PENDING_SECONDS``): a sealed value that is late, moved or damaged reads
as absent. Nothing of it is in the database until the code proves it: an
unconfirmed key is never a factor.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app, session
from sqlalchemy.orm import Session

from scim_server.db import insert_for
from sso.connections.models import SsoEndedSession
from sso.connections.sealing import SealedSecretError, current_secret
from sso.local import keys

_KEY = "signin_pending"
STAGES = ("change", "mfa", "enrol", "codes")


@dataclass(frozen=True)
class Pending:
    org_id: str
    user_id: str
    stage: str
    next_path: str
    expires: int  # seconds since the epoch
    password: str  # fingerprint of the password hash it was proved with
    factors: tuple[str, ...] = field(default_factory=tuple)  # what was proved: password, totp...
    # The account's ``session_epoch`` when the password was proved: a lock, a deactivation,
    # a second factor reset or a new password since ends this sign-in as it ends sessions.
    epoch: int = -1
    # This sign-in's random id: spent when it completes (``spend``), so a copy of the cookie
    # taken on its last page signs in nobody a second time.
    id: str = ""


def fingerprint(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def begin(
    org_id: str,
    user_id: str,
    stage: str,
    next_path: str,
    password_hash: str,
    now: datetime,
    epoch: int,
) -> Pending:
    """Start the pending sign-in; anything in the session before is dropped."""
    session.clear()
    found = Pending(
        org_id=org_id,
        user_id=user_id,
        stage=stage,
        next_path=next_path,
        expires=int(now.timestamp()) + int(current_app.config["SIGNIN_PENDING_SECONDS"]),
        password=fingerprint(password_hash),
        factors=("password",),
        epoch=epoch,
        id=secrets.token_urlsafe(16),
    )
    _store(found)
    return found


def _store(found: Pending) -> None:
    session[_KEY] = {
        "org_id": found.org_id,
        "user_id": found.user_id,
        "stage": found.stage,
        "next": found.next_path,
        "expires": found.expires,
        "password": found.password,
        "factors": list(found.factors),
        "epoch": found.epoch,
        "id": found.id,
    }


def current(now: datetime) -> Pending | None:
    """The pending sign-in of this browser, or None (none, malformed, expired)."""
    raw: Any = session.get(_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        found = Pending(
            org_id=str(raw["org_id"]),
            user_id=str(raw["user_id"]),
            stage=str(raw["stage"]),
            next_path=str(raw["next"]),
            expires=int(raw["expires"]),
            password=str(raw["password"]),
            factors=tuple(str(f) for f in raw.get("factors") or ()),
            epoch=int(raw["epoch"]),
            id=str(raw["id"]),
        )
    except (KeyError, TypeError, ValueError):
        return None  # an older release's (no epoch, no id) too: sign in again
    if found.stage not in STAGES or found.expires < int(now.timestamp()):
        return None
    return found


def advance(
    found: Pending,
    stage: str,
    *,
    proved: str | None = None,
    password_hash: str | None = None,
    epoch: int | None = None,
) -> Pending:
    """Move to the next step (the deadline stays: each step does not buy more time)."""
    nxt = Pending(
        org_id=found.org_id,
        user_id=found.user_id,
        stage=stage,
        next_path=found.next_path,
        expires=found.expires,
        password=fingerprint(password_hash) if password_hash is not None else found.password,
        factors=found.factors + ((proved,) if proved else ()),
        epoch=found.epoch if epoch is None else epoch,
        id=found.id,
    )
    _store(nxt)
    return nxt


def spent_id(found: Pending) -> str:
    """The id its completion is recorded under (``sso_ended_sessions``, beside the ended
    sessions: one table read by primary key for both)."""
    return f"pending:{found.id}"


def spend(db_session: Session, found: Pending) -> bool:
    """Record the sign-in as completed, in a transaction of its own; False when it was
    already (a copy of the cookie came first). Kept until the pending sign-in would have
    expired anyway."""
    insert = insert_for(db_session.get_bind().dialect.name)
    with db_session.begin():
        done = db_session.execute(
            insert(SsoEndedSession)
            .values(
                org_id=found.org_id,
                id=spent_id(found),
                expires_at=datetime.fromtimestamp(found.expires, UTC),
            )
            .on_conflict_do_nothing()
        )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def put(name: str, value: Any) -> None:
    """A value a step needs later in this pending sign-in (an enrolment secret, a challenge)."""
    session[f"{_KEY}_{name}"] = value


def take(name: str, *, keep: bool = False) -> Any:
    key = f"{_KEY}_{name}"
    return session.get(key) if keep else session.pop(key, None)


def put_secret(name: str, value: Any, org_id: str, user_id: str, now: datetime) -> None:
    """Like ``put``, sealed for this account, readable until ``SIGNIN_PENDING_SECONDS`` from now."""
    deadline = int(now.timestamp()) + int(current_app.config["SIGNIN_PENDING_SECONDS"])
    plain = json.dumps({"value": value, "until": deadline})
    session[f"{_KEY}_{name}"] = keys.seal_pending(current_secret(), org_id, user_id, name, plain)


def take_secret(name: str, org_id: str, user_id: str, now: datetime, *, keep: bool = False) -> Any:
    """What ``put_secret`` kept for this account; None if absent, expired, moved or damaged."""
    stored = take(name, keep=keep)
    if not isinstance(stored, str):
        return None
    try:
        opened = json.loads(keys.open_pending(current_secret(), org_id, user_id, name, stored))
    except (SealedSecretError, ValueError):
        return None
    if not isinstance(opened, dict) or not isinstance(opened.get("until"), int):
        return None
    if opened["until"] < int(now.timestamp()):
        session.pop(f"{_KEY}_{name}", None)
        return None
    return opened.get("value")


def drop() -> None:
    for key in [k for k in session if k.startswith(_KEY)]:
        session.pop(key, None)
