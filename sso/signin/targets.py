"""Where a sign-in goes afterwards (``next``): a local path only, never an open redirect."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

DEFAULT_NEXT = "/sso/welcome"
# The longest ``next`` a sign-in carries (in its forms, and its pending state's cookie).
MAX_NEXT = 2000


def safe_next(value: Any) -> str:
    """A relative path on our host, or the default: never an open redirect."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > MAX_NEXT:
        return DEFAULT_NEXT
    if value.startswith(("//", "/\\")) or any(c in value for c in "\\\r\n\t\0"):
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return value
