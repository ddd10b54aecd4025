"""SSO connection secrets at rest: sealed on every write, opened only where used.

The OIDC client secret and the SAML SP private key of each connection are
stored sealed by ``sso.connections.sealing`` (AES-GCM, a key derived from the server's
encryption secret, bound to the connection and field). ``reveal_secret`` opens
one for the code that needs it (the SAML settings, the OIDC token request).

Values written before encryption existed are clear text: read as they are
(with a warning), sealed by the next update of the connection, or all at once
by ``encrypt_secrets`` (``scim-server sso encrypt-secrets``), which also
re-seals values after SCIM_SECRET_KEY changed, given the previous secret.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import record
from sso.connections.models import SsoConnection
from sso.connections.sealing import (
    SealedSecretError,
    current_secret,
    is_sealed,
    open_connection_secret,
    reseal,
    seal_connection_secret,
)
from sso.errors import SsoError

# Never in an API view or an audit event; stored sealed.
SECRET_FIELDS = frozenset({"client_secret", "sp_private_key"})
log = logging.getLogger(__name__)


def reveal_secret(conn: SsoConnection, field: str, secret: bytes) -> str | None:
    """The clear value of a secret field, for the one place that uses it.

    Raises ``SealedSecretError`` (with the likely cause) when it does not open.
    A legacy clear value is returned as it is, with a warning to seal it.
    """
    stored = getattr(conn, field)
    if not stored:
        return None
    if not is_sealed(stored):
        log.warning(
            "SSO connection %s: %s is stored in clear; run `scim-server sso encrypt-secrets`",
            conn.id,
            field,
        )
        return str(stored)
    return open_connection_secret(secret, conn.org_id, conn.id, field, stored)


def secret_for_use(conn: SsoConnection, field: str) -> str:
    """``reveal_secret`` for a sign-in: the running app's secret; a refusal if it does not open.

    The person gets the generic refusal page; the log and the sign-in record get
    the cause (``secret_unreadable``), never a 500.
    """
    try:
        return reveal_secret(conn, field, current_secret()) or ""
    except SealedSecretError as err:
        log.error("SSO connection %s (org %s): %s", conn.id, conn.org_id, err)
        raise SsoError("secret_unreadable", str(err)) from None


def set_secret(conn: SsoConnection, field: str, value: str | None, secret: bytes) -> None:
    sealed = seal_connection_secret(secret, conn.org_id, conn.id, field, value) if value else None
    setattr(conn, field, sealed)


def seal_legacy(conn: SsoConnection, secret: bytes) -> dict[str, Any]:
    """Seal the secrets still in clear (written before encryption existed)."""
    changes: dict[str, Any] = {}
    for field in sorted(SECRET_FIELDS):
        stored = getattr(conn, field)
        if stored and not is_sealed(stored):
            set_secret(conn, field, stored, secret)
            changes[field] = "(encrypted at rest)"
    return changes


@dataclass(frozen=True)
class SecretState:
    """What ``encrypt_secrets`` found or did for one secret of one connection."""

    org_id: str
    connection_id: str
    field: str
    # "sealed" (was clear), "resealed" (was sealed with the previous secret),
    # "current" (already sealed with this secret), "unreadable" (opens with neither)
    status: str
    detail: str | None = None


def encrypt_secrets(
    session: Session, secret: bytes, previous: bytes | None = None
) -> list[SecretState]:
    """Seal every clear connection secret; re-seal those sealed with ``previous``.

    Idempotent: run it after upgrading (clear values written before encryption
    existed) and after changing SCIM_SECRET_KEY (with the old one as
    ``previous``). One transaction and one audit event per connection changed;
    values that open with neither secret are reported and left as they are.
    """
    with session.begin():
        keys = session.execute(
            select(SsoConnection.org_id, SsoConnection.id).order_by(
                SsoConnection.org_id, SsoConnection.id
            )
        ).all()
    states: list[SecretState] = []
    for org_id, connection_id in keys:
        with session.begin():
            conn = session.get(SsoConnection, (org_id, connection_id))
            if conn is None:  # deleted meanwhile
                continue
            changes: dict[str, Any] = {}
            for field in sorted(SECRET_FIELDS):
                state = _reseal(conn, field, secret, previous)
                if state is None:
                    continue
                states.append(state)
                if state.status in ("sealed", "resealed"):
                    changes[field] = f"({state.status})"
            if changes:
                record(
                    session,
                    conn.org_id,
                    "sso.connection.secrets",
                    resource_type="SsoConnection",
                    resource_id=conn.id,
                    detail=conn.name,
                    changes=changes,
                )
    return states


def _reseal(
    conn: SsoConnection, field: str, secret: bytes, previous: bytes | None
) -> SecretState | None:
    stored = getattr(conn, field)
    if not stored:
        return None
    found = reseal(
        stored,
        secret,
        previous,
        open_with=lambda key: open_connection_secret(key, conn.org_id, conn.id, field, stored),
        seal=lambda value: seal_connection_secret(secret, conn.org_id, conn.id, field, value),
    )
    if found.stored is not None:
        setattr(conn, field, found.stored)
    return SecretState(conn.org_id, conn.id, field, found.status, found.detail)
