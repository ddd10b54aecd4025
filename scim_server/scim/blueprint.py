"""The SCIM API's blueprint: every endpoint module and hook is listed here, once."""

from __future__ import annotations

from flask import Blueprint, Flask

from scim_server.scim import admission, auth, bulk, discovery_views, groups, listing, search, users
from scim_server.scim.errors import register_error_handlers

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")
register_error_handlers(bp)
admission.init_blueprint(bp)  # first: the turn covers authentication too
auth.init_blueprint(bp)
users.register(bp)
groups.register(bp)
search.register(bp)
bulk.register(bp)
discovery_views.register(bp)


def init_app(app: Flask) -> None:
    """Register the SCIM API (/scim/v2) and the per-app state it keeps."""
    admission.init_app(app)
    listing.init_app(app)
    app.register_blueprint(bp)
