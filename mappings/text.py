"""Text helpers shared by matching and explanations.

``fold`` is the same comparison key as ``scim_server.text.fold`` (copied, not
imported: this package imports nothing of ours), so a rule that says
``equals: Engineering`` agrees with how the SCIM layer compares names.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections.abc import Collection
from typing import Any

SHOWN_CHARS = 60
SHOWN_VALUES = 3
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def fold(value: str) -> str:
    """Case-insensitive comparison key: NFKC, case-folded, NFKC again."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


def quote(value: str) -> str:
    """A short, JSON-quoted rendering for explanations (long values are cut)."""
    if len(value) > SHOWN_CHARS:
        value = value[: SHOWN_CHARS - 1] + "…"
    return json.dumps(value, ensure_ascii=False)


def quote_all(values: tuple[str, ...]) -> str:
    """A few values, quoted; the rest counted, so an audit entry stays small."""
    shown = ", ".join(quote(v) for v in values[:SHOWN_VALUES])
    rest = len(values) - SHOWN_VALUES
    return f"{shown} (+{rest} more)" if rest > 0 else shown


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def path_at(path: str, key: Any) -> str:
    """``path.key``, ``path[3]``, or ``path["odd key"]``; the root alone is ``$``."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path or '$'}[{key}]"
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path or '$'}[{json.dumps(str(key), ensure_ascii=False)}]"


def suggest(word: str, choices: Collection[str]) -> str | None:
    """The one close spelling of ``word`` among ``choices``, if any."""
    folded = {fold(c): c for c in choices}
    close = difflib.get_close_matches(fold(word), list(folded), n=1, cutoff=0.75)
    if not close and len(word) >= 3:  # an abbreviation: "dept" for "department"
        close = sorted((c for c in folded if _abbreviates(fold(word), c)), key=len)[:1]
    return folded[close[0]] if close else None


def _abbreviates(short: str, long: str) -> bool:
    """``short`` starts like ``long`` and the rest of its letters appear in order."""
    rest = iter(long[1:])
    return short[0] == long[0] and all(ch in rest for ch in short[1:])


def listing(names: Collection[str], limit: int = 10) -> str:
    """Names sorted for a message, the list cut after ``limit``."""
    shown = sorted(names, key=fold)[:limit]
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(shown) + more
