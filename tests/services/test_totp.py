"""RFC 6238 TOTP: the RFC's own test vectors, the ±1 step window, no reuse, the otpauth URI."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from scim_server.services import totp

# RFC 6238 Appendix B: the SHA-1 seed is the ASCII "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(
    ("unix_time", "code"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc6238_appendix_b_sha1(unix_time: int, code: str) -> None:
    """The RFC's 8-digit vectors; our 6-digit codes are their last six digits (RFC 4226 §5.3)."""
    now = datetime.fromtimestamp(unix_time, UTC)
    assert totp.code_at(RFC_SECRET, totp.step_of(now), digits=8) == code
    assert totp.code_at(RFC_SECRET, totp.step_of(now)) == code[-6:]


def test_window_is_one_step_and_used_steps_are_refused() -> None:
    """Codes of now-1, now and now+1 match; now±2 do not; nothing at or before ``after``."""
    now = datetime.fromtimestamp(1234567890, UTC)
    step = totp.step_of(now)
    for offset in (-1, 0, 1):
        code = totp.code_at(RFC_SECRET, step + offset)
        assert totp.matching_step(RFC_SECRET, code, now, after=None) == step + offset
        assert totp.matching_step(RFC_SECRET, code, now, after=step + offset) is None
    for offset in (-2, 2):
        assert (
            totp.matching_step(RFC_SECRET, totp.code_at(RFC_SECRET, step + offset), now, after=None)
            is None
        )
    assert totp.matching_step(RFC_SECRET, "12345", now, after=None) is None
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in "123456")
    assert totp.matching_step(RFC_SECRET, fullwidth, now, after=None) is None


def test_new_secret_and_uri() -> None:
    """160 random bits in base32; the URI names issuer, account and the RFC's parameters."""
    secret = totp.new_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    assert secret != totp.new_secret()
    uri = totp.provisioning_uri(secret, "alice@example.com", "Acme Corp")
    assert uri.startswith("otpauth://totp/Acme%20Corp:alice@example.com?secret=" + secret)
    assert "algorithm=SHA1&digits=6&period=30" in uri and "issuer=Acme+Corp" in uri
