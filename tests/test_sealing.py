"""scim_server.sealing: AES-256-GCM with a key per purpose (HKDF), bound to its row by the
associated data, version-prefixed."""

from __future__ import annotations

import base64

import pytest

from scim_server.sealing import SealedSecretError, is_sealed, seal, unseal

SECRET = b"first server secret"
PURPOSE = b"scim-server test secrets v1"


def test_a_sealed_value_opens_with_its_purpose_and_context_only() -> None:
    """Round trip; a fresh nonce each time; another purpose, context or secret does not open."""
    sealed = seal(SECRET, "s3cret", purpose=PURPOSE, context=b"row-1")
    assert sealed.startswith("enc:v1:") and is_sealed(sealed) and "s3cret" not in sealed
    assert sealed != seal(SECRET, "s3cret", purpose=PURPOSE, context=b"row-1")
    assert unseal(SECRET, sealed, purpose=PURPOSE, context=b"row-1") == "s3cret"
    refusals = [
        (SECRET, sealed, b"scim-server other secrets v1", b"row-1"),
        (SECRET, sealed, PURPOSE, b"row-2"),
        (b"second server secret", sealed, PURPOSE, b"row-1"),
    ]
    for secret, stored, purpose, context in refusals:
        with pytest.raises(SealedSecretError, match="authentication failed"):
            unseal(secret, stored, purpose=purpose, context=context)


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ("enc:v2:AAAA", "unknown encryption scheme"),
        ("enc:v1:abcde", "not valid base64"),
        ("enc:v1:" + base64.urlsafe_b64encode(b"x" * 12).decode(), "truncated"),
    ],
)
def test_malformed_values_are_refused_with_their_reason(stored: str, reason: str) -> None:
    """An unknown version, junk or a bare nonce: SealedSecretError naming what is wrong."""
    with pytest.raises(SealedSecretError, match=reason):
        unseal(SECRET, stored, purpose=PURPOSE, context=b"row-1")


def test_tampering_is_detected() -> None:
    """One flipped bit of the ciphertext: refused."""
    sealed = seal(SECRET, "s3cret", purpose=PURPOSE, context=b"row-1")
    raw = bytearray(base64.urlsafe_b64decode(sealed.removeprefix("enc:v1:")))
    raw[-1] ^= 1
    tampered = "enc:v1:" + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(SealedSecretError):
        unseal(SECRET, tampered, purpose=PURPOSE, context=b"row-1")


def test_clear_values_are_not_sealed() -> None:
    """Legacy clear values (and nothing) are told apart by the prefix alone."""
    assert not is_sealed("whsec_abc") and not is_sealed("") and not is_sealed(None)
