"""SCIM bearer tokens: shown once, stored as a SHA-256 hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import KeyRead, reuse_plan, utcnow
from scim_server.errors import InvalidValueError, NotFoundError
from scim_server.models import ScimToken
from scim_server.text import has_control

PREFIXES = {"scim": "scim_", "admin": "adm_"}


def hash_token(secret: str) -> str:
    # Tokens carry 256 bits of randomness: a plain SHA-256 is enough and keeps
    # the per-request lookup an indexed equality.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(
    session: Session, org_id: str, name: str | None = None, kind: str = "scim"
) -> tuple[ScimToken, str]:
    """Return the stored token and its secret; the secret is never retrievable again.

    ``kind`` is ``scim`` (an IdP provisioning over /scim/v2) or ``admin`` (the
    organization's admin API, /api/v1).
    """
    if kind not in PREFIXES:
        raise InvalidValueError(f"Unknown token kind {kind!r}.")
    if name is not None and has_control(name):
        # Listed tab-separated, one per line (``token list``), and in the log: a newline or
        # tab would forge lines. Before trimming: a trailing one is refused, not dropped.
        raise InvalidValueError("A token name cannot hold control characters.")
    label = (name or "default").strip()
    if not label or len(label) > 200:
        raise InvalidValueError("A token name must be 1 to 200 characters.")
    secret = PREFIXES[kind] + secrets.token_urlsafe(32)
    with session.begin():
        token = ScimToken(
            org_id=org_id,
            id=str(uuid.uuid4()),
            name=label,
            token_hash=hash_token(secret),
            kind=kind,
        )
        session.add(token)
        # The secret never reaches the log: the id and name identify the token.
        record(
            session,
            org_id,
            "token.create",
            resource_type="Token",
            resource_id=token.id,
            detail=f"{kind} token {label!r}",
        )
    return token, secret


# Built and compiled once: this runs on every request (by a unique key: its plan is reused).
_BY_HASH = KeyRead(
    reuse_plan(
        select(
            ScimToken.org_id,
            ScimToken.id,
            ScimToken.name,
            ScimToken.kind,
            ScimToken.revoked_at,
            ScimToken.last_used_at,  # services.token_usage: write the use only when it is stale
        ).where(ScimToken.token_hash == bindparam("token_hash"))
    ),
)


def authenticate(bind: Session | Connection, secret: str, kind: str = "scim") -> Any:
    """The live token of this kind for this secret, or None (unknown, revoked, other kind).

    ``bind``: a session (read on its connection) or a connection."""
    if not secret.startswith(PREFIXES[kind]) or len(secret) > 200:
        return None
    connection = bind if isinstance(bind, Connection) else bind.connection()
    token = _BY_HASH.execute(connection, {"token_hash": hash_token(secret)}).first()
    if token is None or token.revoked_at is not None or token.kind != kind:
        return None
    return token


def list_tokens(session: Session, org_id: str) -> list[ScimToken]:
    return list(
        session.scalars(
            select(ScimToken).where(ScimToken.org_id == org_id).order_by(ScimToken.created_at)
        )
    )


def revoke_token(session: Session, org_id: str, token_id: str) -> ScimToken:
    with session.begin():
        # Locked: of two revocations at once, the second sees the first's and records none.
        token = session.get(ScimToken, (org_id, token_id), with_for_update=True)
        if token is None:
            raise NotFoundError(f"No token {token_id!r} in this organization.")
        if token.revoked_at is not None:
            return token  # revoked already: the log keeps the one revocation, its time
        token.revoked_at = utcnow()
        record(
            session,
            org_id,
            "token.revoke",
            resource_type="Token",
            resource_id=token.id,
            detail=token.name,
        )
    return token
