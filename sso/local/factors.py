"""Second factors at sign-in and on the security page: TOTP and recovery codes, the QR code,
the mail that tells the owner their factors changed (``tell_owner``).

The TOTP secret is sealed with a key derived from the server secret
(``keys.seal_totp``, the same AES-GCM sealing as SSO connection secrets);
the clear secret exists only while a code is checked, and, during
enrolment, on the page shown to the person; between the enrolment's requests it
travels sealed in their session (``pending.put_secret``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import segno
from sqlalchemy.orm import Session

from scim_server.models import MfaFactor, User
from scim_server.services import mail, mfa, totp
from scim_server.services.addresses import user_address
from sso.connections.sealing import SealedSecretError
from sso.local import keys

log = logging.getLogger(__name__)


def qr_data_uri(uri: str) -> str:
    """The QR code of ``uri`` as an SVG ``data:`` URI (an <img>, allowed by the CSP)."""
    # A standalone SVG document (with its namespace): an <img> shows nothing without it.
    return str(
        segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#111", light="#fff")
    )


def enrol_totp(
    session: Session,
    secret_key: bytes,
    user: User,
    secret: str,
    code: str,
    now: datetime,
    label: str | None = None,
) -> MfaFactor | None:
    """Keep the authenticator if ``code`` proves it (caller's transaction); None if not."""
    step = totp.matching_step(secret, code, now, after=None)
    if step is None:
        return None
    factor_id = mfa.new_factor_id()
    sealed = keys.seal_totp(secret_key, user.org_id, factor_id, secret)
    return mfa.add_totp(session, user, factor_id, sealed, step, label)


def tell_owner(
    session: Session,
    user: User,
    change: str,
    *,
    base_url: str,
    now: datetime,
    factor: MfaFactor | None = None,
) -> None:
    """Mail the account's own address that its second factors changed (caller's transaction).

    ``change``: ``added`` or ``removed`` (``factor``), ``recovery_codes`` (new ones made).
    Whoever holds a stolen session or password would add a factor of theirs first: the
    owner hears of it where that person cannot answer for them (NIST SP 800-63B §6.1.2.1).
    No address, no mail (as the admin's MFA reset)."""
    address = user_address(session, user)
    if address is None:
        return
    context = {
        "username": user.login_name or user.user_name,
        "login_url": mail.login_url(base_url),
        "change": change,
        "factor": factor.kind if factor is not None else "",
        "label": factor.label if factor is not None else "",
        "when": "on " + now.astimezone(UTC).strftime("%d %B %Y at %H:%M UTC").lstrip("0"),
    }
    mail.queue_mail(session, user.org_id, "mfa_changed", address, context, user_id=user.id)


def _totp_digits(code: str) -> str | None:
    """The code's six digits if it is a TOTP code; None for anything else (a recovery code,
    which can be all digits too)."""
    digits = code.strip().replace(" ", "")
    if len(digits) == totp.DIGITS and digits.isascii() and digits.isdigit():
        return digits
    return None


def guess_of(code: str, now: datetime) -> str:
    """What the lockout keys a wrong ``code`` by (``lockout.attempt_key``).

    The lockout counts distinct wrong attempts, right for a password (typed again, it is
    as wrong as before) and a recovery code. Not for a TOTP code: the right one changes
    with each 30 s step (RFC 6238 §4), so the same six digits in a new step are a new
    guess, with a new chance: the step is part of the guess.
    """
    digits = _totp_digits(code)
    if digits is None:
        return code.strip()
    return f"totp\x00{totp.step_of(now)}\x00{digits}"


def check_code(
    session: Session, secret_key: bytes, user: User, code: str, now: datetime
) -> str | None:
    """What ``code`` proved (``totp`` or ``recovery_code``), or None (caller's transaction)."""
    code = code.strip()
    digits = _totp_digits(code)
    if digits is not None:
        for factor in mfa.factors(session, user, "totp"):
            try:
                secret = keys.open_totp(secret_key, user.org_id, factor.id, factor.secret or "")
            except SealedSecretError as err:
                log.error("TOTP factor %s of user %s cannot be opened: %s", factor.id, user.id, err)
                continue
            step = totp.matching_step(secret, digits, now, after=factor.last_step)
            if step is not None and mfa.accept_totp_step(session, factor, step, now):
                return "totp"
        return None
    if mfa.use_recovery_code(session, user, code, now):
        return "recovery_code"
    return None
