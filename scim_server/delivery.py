"""The running server's credentials ``Delivery``, for request handlers (SCIM, admin API, sso).

Services never read Flask's config: a handler builds this value (the argon2
cost from ``SCIM_ARGON2_*``, the public URL every mailed link starts with) and
passes it down.
"""

from __future__ import annotations

from dataclasses import replace

from flask import current_app

from scim_server.services.credentials import Delivery
from scim_server.services.passwords import Hashing
from scim_server.slots import SlotBound
from scim_server.urls import link_root


def current_hashing(*, bounded: bool = False) -> Hashing:
    """The configured argon2 cost; ``bounded``: each computation holds one of the node's
    argon2 slots (``SlotBound.argon2``), for the pages a person signs in on, which answer
    ``NoSlotError`` with 503 and ``Retry-After``."""
    hashing = Hashing.from_config(current_app.config)
    if bounded:
        hashing = replace(hashing, gate=SlotBound.argon2(current_app.config).hold)
    return hashing


def current_delivery(*, bounded: bool = False) -> Delivery:
    return Delivery(hashing=current_hashing(bounded=bounded), base_url=link_root())
