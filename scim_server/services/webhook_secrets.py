"""Webhook signing secrets at rest: sealed on every write, opened only to sign a message.

A subscription's ``secret`` and ``previous_secret`` (``whsec_...``) would let
anyone holding a dump or a backup sign messages a customer's receiver trusts, so
they are stored sealed by ``scim_server.sealing`` (AES-256-GCM, a key derived from
the server's encryption secret for this purpose alone, the ciphertext bound to the
organization, the subscription and the column): copied to another row or column,
a value does not open. ``secrets_in_use`` opens them for the worker, the one place
that signs.

Rows written before migration 0040 hold clear values: they still sign (with a
warning), are sealed by the next write of the subscription (an update or a
rotation), or all at once by ``encrypt_secrets`` (``scim-server sso
encrypt-secrets``), which also re-seals them after SCIM_SECRET_KEY changed, given
the previous secret.

The server secret is always an argument (``scim_server.sealing.encryption_secret``
of the app, read by the caller): services never read the application.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.models import WebhookSubscription
from scim_server.sealing import SealedSecretError, is_sealed, reseal, seal, unseal

# HKDF "info" (RFC 5869 §3.2): a key of its own, apart from SSO's and the signing keys'.
WEBHOOK_SECRETS = b"scim-server webhook secrets v1"
FIELDS = ("secret", "previous_secret")
log = logging.getLogger(__name__)


def _context(org_id: str, sub_id: str, field: str) -> bytes:
    return f"webhook_subscriptions\x00{org_id}\x00{sub_id}\x00{field}".encode()


def seal_secret(server_secret: bytes, sub: WebhookSubscription, field: str, value: str) -> str:
    """The stored form of ``value`` in ``field`` of this subscription."""
    return seal(
        server_secret, value, purpose=WEBHOOK_SECRETS, context=_context(sub.org_id, sub.id, field)
    )


def set_secret(
    sub: WebhookSubscription, field: str, value: str | None, server_secret: bytes
) -> None:
    """Store ``value`` (clear) sealed in ``field``; None clears it."""
    setattr(sub, field, seal_secret(server_secret, sub, field, value) if value else None)


def open_secret(server_secret: bytes, sub: WebhookSubscription, field: str) -> str | None:
    """The clear value of ``field``, for signing; ``SealedSecretError`` naming the likely cause.

    A clear value from before sealing existed is returned as it is, with a warning
    (never the value) to seal it.
    """
    stored: str | None = getattr(sub, field)
    if not stored:
        return None
    if not is_sealed(stored):
        log.warning(
            "webhook %s (org %s): %s is stored in clear; run `scim-server sso encrypt-secrets`",
            sub.id,
            sub.org_id,
            field,
        )
        return stored
    try:
        return unseal(
            server_secret,
            stored,
            purpose=WEBHOOK_SECRETS,
            context=_context(sub.org_id, sub.id, field),
        )
    except SealedSecretError as err:
        raise SealedSecretError(
            f"the webhook's {field} cannot be decrypted ({err}): SCIM_SECRET_KEY changed since "
            "it was stored, or the value was copied from another subscription? Run "
            "`scim-server sso encrypt-secrets` with SCIM_PREVIOUS_SECRET_KEY set to the old "
            "secret, or rotate the webhook's secret and give the receiver the new one."
        ) from None


def secrets_in_use(sub: WebhookSubscription, now: datetime, server_secret: bytes) -> list[str]:
    """The clear secrets a message is signed with: the current one, and a rotated one in its
    grace period. ``SealedSecretError`` when one of them does not open: the message is not
    sent with fewer signatures than the receiver may expect."""
    out = [open_secret(server_secret, sub, "secret") or ""]
    expires = sub.previous_secret_expires_at
    if sub.previous_secret and expires is not None and now < expires:
        out.append(open_secret(server_secret, sub, "previous_secret") or "")
    return out


def seal_legacy(sub: WebhookSubscription, server_secret: bytes) -> dict[str, Any]:
    """Seal the secrets still in clear (from before 0040); the audit changes it made."""
    changes: dict[str, Any] = {}
    for field in FIELDS:
        stored = getattr(sub, field)
        if stored and not is_sealed(stored):
            set_secret(sub, field, stored, server_secret)
            changes[field] = "(encrypted at rest)"
    return changes


@dataclass(frozen=True)
class SecretState:
    """What ``encrypt_secrets`` found or did for one secret of one subscription."""

    org_id: str
    subscription_id: str
    field: str
    # "sealed" (was clear), "resealed" (was sealed with the previous secret),
    # "current" (already sealed with this secret), "unreadable" (opens with neither)
    status: str
    detail: str | None = None


def encrypt_secrets(
    session: Session, server_secret: bytes, previous: bytes | None = None
) -> list[SecretState]:
    """Seal every clear webhook secret; re-seal those sealed with ``previous``.

    Idempotent: run it after upgrading (clear values written before 0040) and
    after changing SCIM_SECRET_KEY (with the old one as ``previous``). One
    transaction and one ``webhook.secrets`` audit event per subscription changed;
    values that open with neither secret are reported and left as they are.
    """
    with session.begin():
        keys = session.execute(
            select(WebhookSubscription.org_id, WebhookSubscription.id).order_by(
                WebhookSubscription.org_id, WebhookSubscription.id
            )
        ).all()
    states: list[SecretState] = []
    for org_id, sub_id in keys:
        with session.begin():
            stmt = select(WebhookSubscription).where(
                WebhookSubscription.org_id == org_id, WebhookSubscription.id == sub_id
            )
            sub = session.scalar(stmt.with_for_update())
            if sub is None:  # deleted meanwhile
                continue
            changes: dict[str, Any] = {}
            for field in FIELDS:
                state = _reseal(sub, field, server_secret, previous)
                if state is None:
                    continue
                states.append(state)
                if state.status in ("sealed", "resealed"):
                    changes[field] = f"({state.status})"
            if changes:
                record(
                    session,
                    sub.org_id,
                    "webhook.secrets",
                    resource_type="Webhook",
                    resource_id=sub.id,
                    detail=sub.url[:2000],
                    changes=changes,
                )
    return states


def _reseal(
    sub: WebhookSubscription, field: str, server_secret: bytes, previous: bytes | None
) -> SecretState | None:
    stored = getattr(sub, field)
    if not stored:
        return None
    found = reseal(
        stored,
        server_secret,
        previous,
        open_with=lambda secret: open_secret(secret, sub, field) or "",
        seal=lambda value: seal_secret(server_secret, sub, field, value),
    )
    if found.stored is not None:
        setattr(sub, field, found.stored)
    return SecretState(sub.org_id, sub.id, field, found.status, found.detail)
