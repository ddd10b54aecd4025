"""Time-based one-time passwords (RFC 6238 over RFC 4226): SHA-1, 6 digits, 30-second steps.

Pure functions, no storage: ``sso`` seals the secret, ``services.mfa`` keeps
the last accepted step so a code is never accepted twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime
from urllib.parse import quote, urlencode

STEP_SECONDS = 30  # RFC 6238 §4.1: X, the default time step
DIGITS = 6
# RFC 6238 §5.2: at most one step of clock drift either way.
WINDOW = 1
SECRET_BYTES = 20  # RFC 4226 §4 R6: 160 bits, the length of SHA-1's output


def new_secret() -> str:
    """A random secret, base32 without padding (what authenticator apps read)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    text = secret.strip().replace(" ", "").upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def step_of(now: datetime) -> int:
    """RFC 6238 §4.2: T = floor((Unix time - T0) / X), T0 = 0."""
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int, digits: int = DIGITS) -> str:
    """RFC 4226 §5.3: HOTP(K, C) with dynamic truncation, C the time step."""
    mac = hmac.new(_key(secret), step.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    binary = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def matching_step(secret: str, code: str, now: datetime, *, after: int | None) -> int | None:
    """The step (now ±1) whose code this is, if later than ``after`` (the last one used)."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    current = step_of(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if after is not None and step <= after:
            continue  # RFC 6238 §5.2: a code is accepted once; so is any earlier one
        if hmac.compare_digest(code_at(secret, step), code):
            return step
    return None


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans (Google Authenticator's key format)."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_SECONDS,
        }
    )
    return f"otpauth://totp/{label}?{query}"
