"""How a person signed in, as RFC 8176 Authentication Method Reference values (``amr``).

Our OIDC provider puts them in the id_token (OIDC Core §2), so the product can
ask for more than a password before something sensitive. Local sign-ins map
what was proved:

- ``pwd`` (RFC 8176 §2): the password.
- ``otp``: a TOTP code (RFC 6238, named by RFC 8176 as an ``otp`` method), or a
  recovery code: a pre-issued code that works once, a one-time password too.
- ``pop`` + ``user``: a passkey. WebAuthn proves possession of a private key,
  but without attestation we cannot tell a hardware-bound key (``hwk``) from a
  synced one kept in software (``swk``); ``pop`` is RFC 8176's value for a key
  whose storage is not known. ``user``: the authenticator tested the person's
  presence (the WebAuthn UP flag, which verification requires). No ``pin`` or
  ``fpt``: user verification is only preferred, and says neither which.
- ``mfa``: a second factor was proved beside the password.

A federated sign-in passes on the ``amr`` of an OIDC identity provider's
id_token (its own values, e.g. Entra's ``rsa`` or ``ngcmfa``), checked for
shape only; SAML gives none (its AuthnContext is not an amr), and then the
claim is omitted rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_LOCAL = {
    "password": ("pwd",),
    "totp": ("otp",),
    "recovery_code": ("otp",),
    "webauthn": ("pop", "user"),
}
_SECOND = {"totp", "recovery_code", "webauthn"}
# An upstream value: a short token (RFC 8176 values are 2 to 6 letters; IdPs add their own).
_VALUE = re.compile(r"[A-Za-z0-9_.:-]{1,40}")
MAX_VALUES = 10


def local_amr(proved: Iterable[str]) -> tuple[str, ...]:
    """The amr of a local sign-in that proved ``proved`` (``password``, ``totp``...)."""
    done = list(dict.fromkeys(proved))
    values = [v for method in done for v in _LOCAL.get(method, ())]
    if "password" in done and _SECOND.intersection(done):
        values.append("mfa")
    return tuple(dict.fromkeys(values))


def upstream_amr(claims: dict[str, Any]) -> tuple[str, ...]:
    """The ``amr`` an OIDC identity provider put in its id_token; () if absent or malformed."""
    raw = claims.get("amr")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_VALUES:
        return ()
    if not all(isinstance(v, str) and _VALUE.fullmatch(v) for v in raw):
        return ()
    return tuple(dict.fromkeys(raw))
