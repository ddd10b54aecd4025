"""TOTP secrets sealed again after SCIM_SECRET_KEY changed (``scim-server sso encrypt-secrets``).

A factor's secret is sealed from its enrolment on (``keys.seal_totp``) with a key derived
from the server secret. After that secret changed, no factor opened: every person with an
authenticator app was locked out. ``reseal_factors`` opens each with the previous secret
and seals it with the current one, as ``sso.connections.secrets.encrypt_secrets`` does for
the connections' secrets. A value that opens with neither is left as it is and listed; a
clear one is never sealed (the server never wrote one: sealing it would make a planted
factor work).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.models import MfaFactor, User
from sso.connections.sealing import reseal
from sso.local import keys


@dataclass(frozen=True)
class FactorState:
    """What ``reseal_factors`` found or did for one TOTP factor."""

    org_id: str
    factor_id: str
    # "resealed" (opened with the previous secret), "current" (opens with this one),
    # "unreadable" (opens with neither: left as it is)
    status: str
    detail: str | None = None


def reseal_factors(session: Session, secret: bytes, previous: bytes | None) -> list[FactorState]:
    """Seal with ``secret`` every TOTP secret sealed with ``previous``.

    Idempotent. One transaction and one ``user.mfa.secrets`` audit event (on the person)
    per factor sealed again; the others are reported and left as they are."""
    with session.begin():
        ids = session.execute(
            select(MfaFactor.org_id, MfaFactor.id)
            .where(MfaFactor.kind == "totp", MfaFactor.secret.is_not(None))
            .order_by(MfaFactor.org_id, MfaFactor.id)
        ).all()
    states: list[FactorState] = []
    for org_id, factor_id in ids:
        with session.begin():
            factor = session.scalar(
                select(MfaFactor)
                .where(MfaFactor.org_id == org_id, MfaFactor.id == factor_id)
                .with_for_update()
            )
            if factor is None:  # removed meanwhile
                continue
            states.append(_reseal(session, factor, secret, previous))
    return states


def _reseal(
    session: Session, factor: MfaFactor, secret: bytes, previous: bytes | None
) -> FactorState:
    org_id, factor_id, stored = factor.org_id, factor.id, factor.secret or ""
    found = reseal(
        stored,
        secret,
        previous,
        open_with=lambda key: keys.open_totp(key, org_id, factor_id, stored),
        seal=lambda value: keys.seal_totp(secret, org_id, factor_id, value),
        seal_clear=False,  # the server never wrote one: sealing it would make a planted factor work
    )
    if found.stored is not None:
        factor.secret = found.stored
        user = session.get(User, (org_id, factor.user_id))
        record(
            session,
            org_id,
            "user.mfa.secrets",
            resource_type="User",
            resource_id=factor.user_id,
            external_id=user.external_id if user is not None else None,
            user_name=user.user_name if user is not None else None,
            detail=f"{factor.kind}: {factor.label} (encrypted again with the current secret)",
            changes={"mfa.totp": "(resealed)"},
        )
    return FactorState(org_id, factor_id, found.status, found.detail)
