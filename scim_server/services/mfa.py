"""Second factors of a person: TOTP authenticators, passkeys, recovery codes; admin reset.

Each function works in the caller's transaction unless it says otherwise and
writes its audit event there (``user.mfa.*``), naming the factor's kind and
label, never a secret. The TOTP secret arrives already sealed (``sso`` holds
the server secret); the row id it was sealed for is given with it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import InvalidValueError, NotFoundError
from scim_server.models import MfaFactor, MfaRecoveryCode, User
from scim_server.services import mail, passwords, users
from scim_server.services.addresses import user_address
from scim_server.services.settings import get_settings

KINDS = ("totp", "webauthn")
RECOVERY_CODES = 10
# Recovery codes: 10 characters of a 31-letter alphabet without look-alikes (49 bits).
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
MAX_LABEL = 60


def _about(user: User) -> dict[str, Any]:
    return {
        "resource_type": "User",
        "resource_id": user.id,
        "external_id": user.external_id,
        "user_name": user.user_name,
    }


def new_factor_id() -> str:
    return str(uuid.uuid4())


def factors(session: Session, user: User, kind: str | None = None) -> list[MfaFactor]:
    stmt = select(MfaFactor).where(MfaFactor.org_id == user.org_id, MfaFactor.user_id == user.id)
    if kind is not None:
        stmt = stmt.where(MfaFactor.kind == kind)
    return list(session.scalars(stmt.order_by(MfaFactor.created_at, MfaFactor.id)))


def enrolled(session: Session, user: User) -> bool:
    return bool(
        session.scalar(
            select(func.count())
            .select_from(MfaFactor)
            .where(MfaFactor.org_id == user.org_id, MfaFactor.user_id == user.id)
        )
    )


def enrolment_required(session: Session, user: User) -> bool:
    """The organization requires MFA and the person has no factor yet (enrol at sign-in)."""
    return get_settings(session, user.org_id).require_mfa and not enrolled(session, user)


def codes_left(session: Session, user: User) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(MfaRecoveryCode)
            .where(
                MfaRecoveryCode.org_id == user.org_id,
                MfaRecoveryCode.user_id == user.id,
                MfaRecoveryCode.used_at.is_(None),
            )
        )
        or 0
    )


def describe(session: Session, user: User) -> dict[str, Any]:
    """What the admin API and the security page show: factors, no secret."""
    found = factors(session, user)
    return {
        "enrolled": bool(found),
        "factors": [
            {
                "id": f.id,
                "kind": f.kind,
                "label": f.label,
                "created": f.created_at.isoformat(),
                "lastUsed": f.last_used_at.isoformat() if f.last_used_at else None,
            }
            for f in found
        ],
        "recoveryCodesLeft": codes_left(session, user),
    }


def _label(value: Any, default: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > MAX_LABEL:
        raise InvalidValueError(f"A factor's name is at most {MAX_LABEL} characters.")
    return text or default


def _enrolled_event(session: Session, user: User, factor: MfaFactor) -> None:
    record(
        session,
        user.org_id,
        "user.mfa.enrolled",
        **_about(user),
        detail=f"{factor.kind}: {factor.label}",
        changes={"mfa": {"after": factor.kind}},
    )


def add_totp(
    session: Session,
    user: User,
    factor_id: str,
    sealed_secret: str,
    first_step: int,
    label: Any = None,
) -> MfaFactor:
    """An authenticator app the person proved with a code at ``first_step`` (not reusable)."""
    factor = MfaFactor(
        org_id=user.org_id,
        id=factor_id,
        user_id=user.id,
        kind="totp",
        label=_label(label, "Authenticator app"),
        created_at=utcnow(),
        secret=sealed_secret,
        last_step=first_step,
        last_used_at=utcnow(),
        sign_count=0,
    )
    session.add(factor)
    _enrolled_event(session, user, factor)
    return factor


def add_passkey(
    session: Session,
    user: User,
    credential_id: str,
    public_key: str,
    sign_count: int,
    label: Any = None,
) -> MfaFactor:
    """A passkey whose registration was verified (credential id and key base64url)."""
    for other in factors(session, user, "webauthn"):
        if other.credential_id == credential_id:
            raise InvalidValueError("This passkey is registered already.")
    factor = MfaFactor(
        org_id=user.org_id,
        id=new_factor_id(),
        user_id=user.id,
        kind="webauthn",
        label=_label(label, "Passkey"),
        created_at=utcnow(),
        credential_id=credential_id,
        public_key=public_key,
        sign_count=sign_count,
    )
    session.add(factor)
    _enrolled_event(session, user, factor)
    return factor


def accept_totp_step(session: Session, factor: MfaFactor, step: int, now: datetime) -> bool:
    """Mark ``step`` used (row locked); False if it, or a later one, was used already."""
    row = session.get(MfaFactor, (factor.org_id, factor.id), with_for_update=True)
    if row is None or (row.last_step is not None and step <= row.last_step):
        return False
    row.last_step = step
    row.last_used_at = now
    return True


def passkey_used(session: Session, factor: MfaFactor, sign_count: int, now: datetime) -> None:
    factor.sign_count = sign_count
    factor.last_used_at = now


def remove_factor(session: Session, user: User, factor_id: str, *, by: str) -> MfaFactor:
    """Remove one of the user's factors; the recovery codes go with the last one."""
    factor = session.get(MfaFactor, (user.org_id, factor_id))
    if factor is None or factor.user_id != user.id:
        raise NotFoundError("No such factor.")
    session.delete(factor)
    session.flush()
    if not enrolled(session, user):
        _delete_codes(session, user)
    record(
        session,
        user.org_id,
        "user.mfa.removed",
        **_about(user),
        detail=f"{factor.kind}: {factor.label} ({by})",
        changes={"mfa": {"before": factor.kind}},
    )
    return factor


# -- recovery codes ---------------------------------------------------------------------


def recovery_code_hash(user: User, code: str) -> str:
    normal = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(f"{user.org_id}\x00{user.id}\x00{normal}".encode()).hexdigest()


def _delete_codes(session: Session, user: User) -> None:
    session.execute(
        delete(MfaRecoveryCode).where(
            MfaRecoveryCode.org_id == user.org_id, MfaRecoveryCode.user_id == user.id
        )
    )


def new_recovery_codes(session: Session, user: User) -> list[str]:
    """Ten new single-use codes (the old ones die); returned once, stored as hashes."""
    _delete_codes(session, user)
    codes = []
    now = utcnow()
    for position in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(10))
        code = f"{raw[:5]}-{raw[5:]}"
        codes.append(code)
        session.add(
            MfaRecoveryCode(
                org_id=user.org_id,
                id=str(uuid.uuid4()),
                user_id=user.id,
                code_hash=recovery_code_hash(user, code),
                created_at=now,
                position=position,
            )
        )
    record(
        session,
        user.org_id,
        "user.mfa.recovery_codes",
        **_about(user),
        detail=f"{RECOVERY_CODES} new recovery codes (the previous ones no longer work)",
    )
    return codes


def use_recovery_code(session: Session, user: User, code: Any, now: datetime) -> bool:
    """Spend one recovery code; False if it is not one of the user's unused codes."""
    if not isinstance(code, str) or not 8 <= len(code) <= 40:
        return False
    wanted = recovery_code_hash(user, code)
    rows = session.scalars(
        select(MfaRecoveryCode)
        .where(
            MfaRecoveryCode.org_id == user.org_id,
            MfaRecoveryCode.user_id == user.id,
            MfaRecoveryCode.used_at.is_(None),
        )
        .with_for_update()
    ).all()
    for row in rows:
        if hmac.compare_digest(row.code_hash, wanted):
            row.used_at = now
            record(
                session,
                user.org_id,
                "user.mfa.recovery_code_used",
                **_about(user),
                detail=f"{len(rows) - 1} recovery codes left",
            )
            return True
    return False


# -- admin ------------------------------------------------------------------------------


def reset_mfa(
    session: Session, org_id: str, user_id: str, reason: str | None, base_url: str
) -> User:
    """Admin: remove every factor and recovery code; enrolment comes again at next sign-in.

    Its own transaction: the factors go, the event and the ``mfa_reset`` mail are
    written together (no mail when the person has no address).
    """
    with session.begin():
        user = users.get_user(session, org_id, user_id, for_update=True)
        found = factors(session, user)
        session.execute(
            delete(MfaFactor).where(MfaFactor.org_id == org_id, MfaFactor.user_id == user.id)
        )
        _delete_codes(session, user)
        # Signed in with a factor that is now gone (a phone lost, or a factor an intruder
        # enrolled): every session ends, the person signs in again and enrols anew.
        passwords.end_sessions(user)
        record(
            session,
            org_id,
            "user.mfa.reset",
            **_about(user),
            detail=reason or "second factors reset by an admin",
            changes={"mfa": {"before": sorted({f.kind for f in found}), "after": []}},
        )
        address = user_address(session, user)
        if address is not None:
            mail.queue_mail(
                session,
                org_id,
                "mfa_reset",
                address,
                {
                    "username": user.login_name or user.user_name,
                    "login_url": mail.login_url(base_url),
                },
                user_id=user.id,
            )
    return user
