"""Admin API for the organization's identity settings (``/api/v1/settings``).

Default license and roles, username format, seat mode: one document, replaced whole.
"""

from __future__ import annotations

from flask import Response, g, jsonify
from marshmallow import fields

from scim_server.admin.apidoc import Content, Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import audited, json_object
from scim_server.db import db
from scim_server.services import directory, settings


class SettingsOut(Out):
    """The organization's identity settings."""

    username_format = nullable(fields.String)
    match_keys = always(fields.List, cls_or_instance=fields.String())
    strict_seats = always(fields.Boolean)
    default_license = nullable(fields.String)
    default_roles = always(fields.List, cls_or_instance=fields.String())


# Checked by ``services.directory.update_settings`` (every problem named), not by a schema here.
SETTINGS_BODY = Content(("application/json",), {"type": "object"})


@bp.get("/settings")
@api_doc(tag="settings", response=SettingsOut)
def get_settings() -> Response:
    return jsonify(settings.get_settings(db.session, g.org_id).as_dict())


@bp.put("/settings")
@audited("settings.update")
@api_doc(tag="settings", body=SETTINGS_BODY, response=SettingsOut)
def replace_settings() -> Response:
    """The whole settings document; keys left out return to their defaults."""
    return jsonify(directory.update_settings(db.session, g.org_id, json_object()))
