"""What single sign-on keeps on the application (``app.extensions["sso"]``): caches, no settings.

One entry per app, made by ``sso.init_app``: two apps in one process (tests,
a CLI beside a server) never share a cache. Settings live in ``app.config``
(``scim_server.config``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from flask import Flask, current_app
from joserfc.jwk import RSAKey

from scim_server.db import utcnow
from sso.oidc.jwks import JwksCache

EXTENSION = "sso"


@dataclass
class SsoExtension:
    """Per-process caches of the SSO side; each node keeps its own (caches, not shared state)."""

    # Relying party: the signing keys of each OIDC provider we sign people in with, per issuer.
    jwks: JwksCache = field(default_factory=JwksCache)
    # OIDC provider: our own signing keys, decrypted (``sso.provider.keys.private_key``).
    signing_keys: dict[tuple[str, ...], RSAKey] = field(default_factory=dict)
    # The time the password sign-in, lockout and TOTP read (tests move it by hand).
    clock: Callable[[], datetime] = utcnow
    # How long refusing a known account's password took here lately (seconds): an unknown
    # account's refusal is padded to their median (``sso.local.web.even_out``).
    refusal_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=31))
    # The same for /sso/forgot: how long answering with a reset link took lately; an
    # answer that sent none is padded to their median (``sso.recovery.views.forgot``).
    forgot_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=31))


def install(app: Flask) -> SsoExtension:
    """Give ``app`` its own SSO state."""
    state = app.extensions[EXTENSION] = SsoExtension()
    return state


def sso_extension(app: Flask | None = None) -> SsoExtension:
    """The SSO state of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    found: SsoExtension = target.extensions[EXTENSION]
    return found
