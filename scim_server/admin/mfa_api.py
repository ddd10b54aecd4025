"""Admin API for a user's second factors: list them, reset them (``POST .../mfa/reset``).

A reset removes every factor and recovery code; the person enrols again at
their next sign-in when the organization requires MFA, and is told by mail.
"""

from __future__ import annotations

from flask import Response, g, jsonify
from marshmallow import fields

from scim_server.admin.accounts_api import ActionBody, UserDetailOut, user_detail
from scim_server.admin.apidoc import Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import audited, json_object, load
from scim_server.db import db
from scim_server.services import mfa, users
from scim_server.urls import link_root


class FactorOut(Out):
    """One second factor: what it is, never its secret."""

    id = always(fields.String)
    kind = always(fields.String, metadata={"enum": ["totp", "webauthn"]})
    label = always(fields.String)
    created = always(fields.String)
    last_used = nullable(fields.String, data_key="lastUsed")


class MfaOut(Out):
    """The user's second factors and how many recovery codes are left."""

    enrolled = always(fields.Boolean)
    factors = always(fields.List, cls_or_instance=fields.Nested(FactorOut))
    recovery_codes_left = always(fields.Integer, data_key="recoveryCodesLeft")


@bp.get("/users/<user_id>/mfa")
@api_doc(tag="users", response=MfaOut)
def get_mfa(user_id: str) -> Response:
    """The user's factors (kind, name, when added and last used): never a secret."""
    user = users.get_user(db.session, g.org_id, user_id)
    return jsonify(mfa.describe(db.session, user))


@bp.post("/users/<user_id>/mfa/reset")
@audited("user.mfa.reset")
@api_doc(tag="users", body=ActionBody, body_required=False, response=UserDetailOut)
def reset_mfa(user_id: str) -> Response:
    """Remove every factor (``{"reason": ...}`` optional); the ``mfa_reset`` mail is queued."""
    body = load(ActionBody, json_object(optional=True))
    mfa.reset_mfa(db.session, g.org_id, user_id, body["reason"], link_root())
    return jsonify(user_detail(user_id))
