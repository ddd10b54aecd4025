"""Text normalisation shared by storage keys and filters.

Uniqueness and the `eq` filter must agree (an IdP that finds no match by
filter and then gets 409 on create stops provisioning), so both go through
``fold``.
"""

from __future__ import annotations

import unicodedata


def fold(value: str) -> str:
    """Case-insensitive comparison key: NFKC, case-folded, NFKC again.

    Composed and decomposed forms (``é`` vs ``e`` + combining acute) and
    case variants map to one key.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


def exact(value: str) -> str:
    """Case-exact comparison key: canonical composition only (NFC)."""
    return unicodedata.normalize("NFC", value)
