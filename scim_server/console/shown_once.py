"""A secret the next page shows once (a new API token, a new OIDC client's secret).

A create redirects (a reload must not create a second one), so the secret rides to the
next page in the session cookie, which is signed, not encrypted: a proxy log, a crash
report or a saved copy of the cookie would hold it. It is sealed (AES-256-GCM, the key
derived from the server secret, bound to the console user and the value's name, as
``sso.local.pending`` seals an unfinished enrolment) and popped as it is shown.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import session

from scim_server.console.access import person
from sso.connections import sealing
from sso.connections.sealing import SealedSecretError, current_secret

# The redirect is followed at once; a value not shown by then is dropped unread.
LIFETIME_S = 300
PURPOSE = b"scim-server console shown once v1"


def _context(name: str) -> bytes:
    who = person()
    return f"shown-once\x00{who.org_id}\x00{who.user_id}\x00{name}".encode()


def keep(name: str, value: dict[str, Any]) -> None:
    """Seal ``value`` for the console user's next page."""
    plain = json.dumps({"value": value, "until": int(time.time()) + LIFETIME_S})
    session[name] = sealing.seal(current_secret(), plain, purpose=PURPOSE, context=_context(name))


def take(name: str) -> dict[str, Any] | None:
    """What ``keep`` sealed under ``name``, once; None when absent, late, moved or damaged."""
    stored = session.pop(name, None)
    if not isinstance(stored, str):
        return None
    try:
        opened = json.loads(
            sealing.unseal(current_secret(), stored, purpose=PURPOSE, context=_context(name))
        )
    except (SealedSecretError, ValueError):
        return None
    if not isinstance(opened, dict) or not isinstance(opened.get("until"), int):
        return None
    value = opened.get("value")
    if opened["until"] < int(time.time()) or not isinstance(value, dict):
        return None
    return value
