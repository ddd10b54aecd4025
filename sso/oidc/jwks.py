"""The provider's signing keys (RFC 7517): a per-issuer cache with a refetch rate limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from sso.oidc.config import OidcError
from sso.oidc.http import fetch, json_object

KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@dataclass
class _KeyEntry:
    jwks_uri: str
    keys: list[Key]
    loaded_at: float  # when these keys were fetched: staleness
    tried_at: float  # the last fetch attempt, good or bad: the refetch rate limit


class JwksCache:
    """Signing keys per issuer, shared by logins (thread-safe; keep one per process).

    An unknown ``kid`` forces a refetch (key rotation), but at most once per
    ``refetch_interval`` per issuer: tokens with made-up key ids must not turn
    us into a request amplifier against the IdP. It is a cache, not shared
    state: with N nodes, an issuer sees at most N refetches per interval. The
    lock is held while fetching, so concurrent logins wait for one request.
    """

    def __init__(
        self,
        refetch_interval: float = 60.0,
        max_age: float = 86400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refetch_interval = refetch_interval
        self.max_age = max_age
        self.clock = clock
        self._entries: dict[str, _KeyEntry] = {}
        self._lock = threading.Lock()

    def keys(
        self, issuer: str, jwks_uri: str, http: requests.Session, seed: Mapping | None = None
    ) -> list[Key]:
        """The cached keys; fetched on first use, when stale, or when the jwks_uri changed."""
        with self._lock:
            entry, now = self._entries.get(issuer), self.clock()
            if entry is None and seed is not None:
                entry = _KeyEntry(jwks_uri, import_keys(seed), now, float("-inf"))
                self._entries[issuer] = entry
            if entry and entry.jwks_uri == jwks_uri and now - entry.loaded_at < self.max_age:
                return entry.keys
            return self._load(issuer, jwks_uri, http)

    def refresh(self, issuer: str, jwks_uri: str, http: requests.Session) -> list[Key] | None:
        """Refetch after an unknown kid; None when the last attempt is too recent."""
        with self._lock:
            entry = self._entries.get(issuer)
            if entry and self.clock() - entry.tried_at < self.refetch_interval:
                return None
            return self._load(issuer, jwks_uri, http)

    def _load(self, issuer: str, jwks_uri: str, http: requests.Session) -> list[Key]:
        now = self.clock()
        entry = self._entries.setdefault(issuer, _KeyEntry(jwks_uri, [], float("-inf"), now))
        entry.tried_at = now  # a failing IdP is also asked at most once per interval
        status, _, body = fetch(http, "GET", jwks_uri, "jwks_failed", "JWKS")
        if status != 200:
            raise OidcError("jwks_failed", f"{jwks_uri} answered HTTP {status}")
        keys = import_keys(json_object(body, "jwks_failed", "JWKS"))
        self._entries[issuer] = _KeyEntry(jwks_uri, keys, now, now)
        return keys


def import_keys(jwks: Mapping[str, Any]) -> list[Key]:
    """Public signing keys of a JWKS (RFC 7517 §5); keys we cannot read are skipped, not fatal."""
    keys = []
    raw = jwks.get("keys")
    for item in raw[:100] if isinstance(raw, list) else []:
        if isinstance(item, dict) and item.get("use", "sig") == "sig":
            try:
                keys.append(import_key(item))
            except (JoseError, ValueError, TypeError, KeyError):
                continue
    return keys


def candidates(keys: list[Key], kid: str | None, alg: str) -> list[Key]:
    kty = KEY_TYPES.get(alg[:2])
    return [
        k
        for k in keys
        if k.key_type == kty and (kid is None or k.kid == kid) and k.get("alg") in (None, alg)
    ]
