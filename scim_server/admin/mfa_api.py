"""Admin API for a user's second factors: list them, reset them (``POST .../mfa/reset``).

A reset removes every factor and recovery code; the person enrols again at
their next sign-in when the organization requires MFA, and is told by mail.
"""

from __future__ import annotations

from flask import Response, g, jsonify

from scim_server.admin.accounts_api import ActionBody, user_detail
from scim_server.admin.blueprint import bp
from scim_server.admin.common import audited, json_object, load
from scim_server.db import db
from scim_server.services import mfa, users
from scim_server.urls import public_url


@bp.get("/users/<user_id>/mfa")
def get_mfa(user_id: str) -> Response:
    """The user's factors (kind, name, when added and last used): never a secret."""
    user = users.get_user(db.session, g.org_id, user_id)
    return jsonify(mfa.describe(db.session, user))


@bp.post("/users/<user_id>/mfa/reset")
@audited("user.mfa.reset")
def reset_mfa(user_id: str) -> Response:
    """Remove every factor (``{"reason": ...}`` optional); the ``mfa_reset`` mail is queued."""
    body = load(ActionBody, json_object(optional=True))
    mfa.reset_mfa(db.session, g.org_id, user_id, body["reason"], public_url())
    return jsonify(user_detail(user_id))
