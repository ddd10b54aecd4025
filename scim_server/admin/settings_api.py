"""Admin API for the organization's identity settings (``/api/v1/settings``).

Default license and roles, username format, seat mode, sign-in methods, password
policy, lockout and MFA: one document, replaced whole.
"""

from __future__ import annotations

from flask import Response, g, jsonify

from scim_server.admin.blueprint import bp
from scim_server.admin.common import audited, json_object
from scim_server.db import db
from scim_server.services import directory, settings


@bp.get("/settings")
def get_settings() -> Response:
    """The document, and (read-only) the sign-in methods that apply today."""
    current = settings.get_settings(db.session, g.org_id)
    effective = settings.sign_in_methods(db.session, g.org_id, current)
    return jsonify({**current.as_dict(), settings.EFFECTIVE_METHODS: effective})


@bp.put("/settings")
@audited("settings.update")
def replace_settings() -> Response:
    """The whole settings document; keys left out return to their defaults."""
    return jsonify(directory.update_settings(db.session, g.org_id, json_object()))
