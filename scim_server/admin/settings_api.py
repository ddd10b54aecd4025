"""Admin API for the organization's identity settings (``/api/v1/settings``).

Default license, roles and groups, username format, seat mode, sign-in methods, password
policy, lockout and MFA: one document, replaced whole.
"""

from __future__ import annotations

from flask import Response, g, jsonify
from marshmallow import fields

from scim_server.admin.apidoc import Content, Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import audited, json_object
from scim_server.db import db
from scim_server.services import directory, settings


class GroupNameOut(Out):
    id = always(fields.String)
    display_name = always(fields.String, data_key="displayName")


class SettingsOut(Out):
    """The organization's identity settings."""

    username_format = nullable(fields.String)
    match_keys = always(fields.List, cls_or_instance=fields.String())
    strict_seats = always(fields.Boolean)
    default_license = nullable(fields.String)
    default_roles = always(fields.List, cls_or_instance=fields.String())
    default_groups = always(
        fields.List,
        cls_or_instance=fields.String(),
        metadata={
            "description": "Group ids. Joined by accounts made by Enable access, an import "
            "or a first sign-in (JIT); never by a SCIM create (the IdP's groups)."
        },
    )
    default_groups_display = fields.List(
        fields.Nested(GroupNameOut),
        metadata={"description": "Read-only: each default group's id and displayName."},
    )
    sign_in_methods = nullable(
        fields.String,
        metadata={"enum": [*settings.SIGN_IN_METHODS, None], "description": "null: automatic"},
    )
    effective_sign_in_methods = fields.String(
        metadata={"description": "Read-only (GET): the methods that apply today."}
    )
    credentials_delivery = always(
        fields.String, metadata={"enum": list(settings.CREDENTIALS_DELIVERY)}
    )
    must_change_on_first_login = always(fields.Boolean)
    refuse_common_passwords = always(fields.Boolean)
    require_mfa = always(fields.Boolean)
    temporary_password_days = always(fields.Integer)
    activation_link_days = always(fields.Integer)
    password_min_length = always(fields.Integer)
    password_max_length = always(fields.Integer)
    password_history = always(fields.Integer)
    lockout_threshold = always(fields.Integer)
    lockout_window_minutes = always(fields.Integer)
    lockout_minutes = always(fields.Integer)
    lockout_max_minutes = always(fields.Integer)


# Checked by ``services.directory.update_settings`` (every problem named), not by a schema here.
SETTINGS_BODY = Content(("application/json",), {"type": "object"})


@bp.get("/settings")
@api_doc(tag="settings", response=SettingsOut)
def get_settings() -> Response:
    """The document, and (read-only) the sign-in methods that apply today and the
    default groups' names."""
    return jsonify(directory.settings_view(db.session, g.org_id))


@bp.put("/settings")
@audited("settings.update")
@api_doc(tag="settings", body=SETTINGS_BODY, response=SettingsOut)
def replace_settings() -> Response:
    """The whole settings document; keys left out return to their defaults.

    ``default_groups``: ids of the organization's groups (an unknown one is a 400).
    """
    directory.update_settings(db.session, g.org_id, json_object())
    return jsonify(directory.settings_view(db.session, g.org_id))
