"""The running server's credentials ``Delivery``, for request handlers (SCIM, admin API, sso).

Services never read Flask's config: a handler builds this value (the argon2
cost from ``SCIM_ARGON2_*``, the public URL every mailed link starts with) and
passes it down.
"""

from __future__ import annotations

from flask import current_app

from scim_server.services.credentials import Delivery
from scim_server.services.passwords import Hashing
from scim_server.urls import public_url


def current_delivery() -> Delivery:
    return Delivery(hashing=Hashing.from_config(current_app.config), base_url=public_url())
