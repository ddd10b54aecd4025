"""Text normalisation shared by storage keys and filters.

Uniqueness and the `eq` filter must agree (an IdP that finds no match by
filter and then gets 409 on create stops provisioning), so both go through
``fold``. Binding a sign-in to an account is stricter: ``same_identity``.
"""

from __future__ import annotations

import re
import unicodedata

import idna

# What no column can hold: NUL (PostgreSQL text and jsonb refuse it) and a lone surrogate
# (not UTF-8: the driver cannot encode it). JSON carries both ("\u0000", "\ud800").
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def fold(value: str) -> str:
    """Case-insensitive comparison key: NFKC, case-folded, NFKC again.

    Composed and decomposed forms (``é`` vs ``e`` + combining acute) and
    case variants map to one key.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


def exact(value: str) -> str:
    """Case-exact comparison key: canonical composition only (NFC)."""
    return unicodedata.normalize("NFC", value)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def binding_key(value: str) -> str:
    """Sign-in binding key: A-Z lower-cased, then canonical composition (NFC); nothing else.

    Uniqueness may fold (``fold``): refusing a second account whose name
    differs from an existing one only by width or case only errs on the safe
    side. Binding a sign-in to an account may not: under NFKC and full case
    folding, text another IdP user can own (fullwidth a U+FF41, the ligature
    U+FB00 "ff", capital dotted I U+0130 against i + combining dot above, the
    Kelvin sign U+212A) equals an existing name, and one account would be
    entered by two people. Decomposed and precomposed forms are the same
    text (NFC), and ASCII case is not identity. ASCII is lowered *before*
    composition, so a character that composes into an ASCII capital (the
    Kelvin sign into K) stays distinct from k.
    """
    return unicodedata.normalize("NFC", value.translate(_ASCII_LOWER))


def same_identity(a: str, b: str) -> bool:
    """May a sign-in asserting ``a`` bind to an account holding ``b``? (see ``binding_key``)."""
    return binding_key(a) == binding_key(b)


def has_control(value: str) -> bool:
    """Does ``value`` hold a control character (Unicode category Cc: C0, DEL, C1)?

    Names an admin gives (licenses, roles) are shown in pages, logs and exports, and
    joined with one (``org_config``'s fingerprint): none may hold one."""
    return any(unicodedata.category(ch) == "Cc" for ch in value)


MAX_INT = 2**31 - 1  # the largest value an Integer column takes on every backend (int4)


def small_int(value: str, max_digits: int = 18) -> int | None:
    """``value`` as a number when it is 1 to ``max_digits`` ASCII digits, else None.

    ``str.isdigit`` also says yes to digits ``int`` refuses (``"²"``), and ``int`` refuses
    more than 4,300 digits: a request's value checked with the one and read with the other
    was a 500."""
    if 0 < len(value) <= max_digits and value.isascii() and value.isdigit():
        return int(value)
    return None


def ascii_host(name: str) -> str:
    """A host name as DNS, browsers and mail write it: IDNA 2008 with UTS 46's
    non-transitional mapping (``straße.de`` is ``xn--strae-oqa.de``; Python's own
    ``"idna"`` codec, IDNA 2003, would write ``strasse.de``, another domain). Raises
    ``idna.IDNAError`` (a ``UnicodeError``) for a name that has no such form."""
    return idna.encode(name, uts46=True, transitional=False).decode("ascii")
