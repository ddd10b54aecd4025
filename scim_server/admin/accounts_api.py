"""Admin API for user accounts: list, inspect, status actions, manual license and roles, delete.

Manual assignments are the admin's decisions: the mapping rules never
overwrite them, and releasing the manual license hands it back to the rules.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request
from marshmallow import RAISE, Schema, fields, validate

from scim_server.admin.apidoc import Out, PageOut, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import PageArgs, audited, json_object, load, page, text
from scim_server.db import db
from scim_server.models import User
from scim_server.services import account_views, accounts, credential_schedules, mfa, settings, users
from scim_server.services.lifecycle import STATUSES


class UserArgs(PageArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))
    license = text(200, min_length=1, load_default=None)


class ActionBody(Schema):
    class Meta:
        unknown = RAISE

    reason = text(500, load_default=None, allow_none=True)


class LicenseBody(Schema):
    class Meta:
        unknown = RAISE

    license = text(200, min_length=1, required=True, allow_none=True)


class RoleBody(Schema):
    class Meta:
        unknown = RAISE

    role = text(200, min_length=1, required=True)


class UserRoleOut(Out):
    id = always(fields.String)
    value = always(fields.String)
    kind = always(fields.String)
    sources = always(fields.List, cls_or_instance=fields.String())


class UserOut(Out):
    """An account: status, license, roles (with ids) and the contact it belongs to."""

    id = always(fields.String)
    user_name = always(fields.String, data_key="userName")
    username = nullable(fields.String)
    status = always(fields.String)
    license = nullable(fields.Dict, metadata={"description": "value, source, rule"})
    license_shortage = nullable(fields.Dict, data_key="licenseShortage")
    contact_id = nullable(fields.String, data_key="contactId")
    last_login = nullable(fields.String, data_key="lastLogin")
    roles = always(fields.List, cls_or_instance=fields.Nested(UserRoleOut))


class UserDetailOut(UserOut):
    """An account with its SCIM identity, groups and version."""

    external_id = nullable(fields.String, data_key="externalId")
    display_name = nullable(fields.String, data_key="displayName")
    active = always(fields.Boolean)
    groups = always(fields.List, cls_or_instance=fields.Dict())
    created = nullable(fields.String)
    modified = nullable(fields.String)
    version = always(fields.Integer)


class UserPageOut(PageOut):
    """A page of accounts."""

    users = always(fields.List, cls_or_instance=fields.Nested(UserOut))


def users_to_dicts(session: Any, org_id: str, rows: list[User]) -> list[dict[str, Any]]:
    """The account view: the product extension's fields, every key present, roles with ids."""
    summaries = account_views.account_summaries(session, org_id, rows)
    # A credentials send waiting for the worker (an admin's date, a SCIM welcome): the
    # API's, not part of an event's state (events are about the identity, not its mail).
    waiting = credential_schedules.schedules_of(session, org_id, [u.id for u in rows])
    return [{**view, "credentialsSchedule": waiting.get(view["id"])} for view in summaries]


def user_detail(user_id: str) -> dict[str, Any]:
    session = db.session
    user = users.get_user(session, g.org_id, user_id)
    view = account_views.account_details(session, g.org_id, [user])[user.id]
    return {
        **view,
        "credentialsSchedule": credential_schedules.schedules_of(session, g.org_id, [user.id]).get(
            user.id
        ),
        # Which way this person signs in (the organization's effective sign_in_methods).
        "signInMethods": settings.sign_in_methods(
            session, g.org_id, settings.get_settings(session, g.org_id)
        ),
        # The second factors the person enrolled (kinds and names, never a secret).
        "mfa": mfa.describe(session, user),
    }


@bp.get("/users")
@api_doc(tag="users", query=UserArgs, response=UserPageOut)
def list_users() -> Response:
    """Accounts by userName; ``status`` and ``license`` (a name) narrow the list."""
    args = load(UserArgs, request.args)
    session = db.session
    total, rows = accounts.list_users(
        session,
        g.org_id,
        status=args["status"],
        license_name=args["license"],
        offset=args["offset"],
        limit=args["limit"],
    )
    return page(
        total, args["offset"], args["limit"], "users", users_to_dicts(session, g.org_id, rows)
    )


@bp.get("/users/<user_id>")
@api_doc(tag="users", response=UserDetailOut)
def get_user(user_id: str) -> Response:
    return jsonify(user_detail(user_id))


def _action_name(args: dict[str, Any]) -> str:
    op = args.get("op", "")
    return f"user.{op}" if op in accounts.ADMIN_OPS else "user.action"


@bp.post("/users/<user_id>/actions/<op>")
@audited(_action_name)
@api_doc(tag="users", body=ActionBody, body_required=False, response=UserDetailOut)
def user_action(user_id: str, op: str) -> Response:
    """A named status transition (``{"reason": ...}`` optional); invalid ones are 409."""
    body = load(ActionBody, json_object(optional=True))
    accounts.act(db.session, g.org_id, user_id, op, body["reason"])
    return jsonify(user_detail(user_id))


@bp.put("/users/<user_id>/license")
@audited("user.license")
@api_doc(tag="users", body=LicenseBody, response=UserDetailOut)
def set_license(user_id: str) -> Response:
    """A manual license (or ``null``: none), kept over the rules; a full license is 409."""
    body = load(LicenseBody, json_object())
    accounts.set_manual_license(db.session, g.org_id, user_id, body["license"])
    return jsonify(user_detail(user_id))


@bp.delete("/users/<user_id>/license/manual")
@audited("user.license")
@api_doc(tag="users", response=UserDetailOut)
def release_license(user_id: str) -> Response:
    """Hand the license back to the mapping rules (re-evaluated at once)."""
    accounts.release_manual_license(db.session, g.org_id, user_id)
    return jsonify(user_detail(user_id))


@bp.post("/users/<user_id>/roles")
@audited("user.roles")
@api_doc(tag="users", body=RoleBody, response=UserDetailOut)
def add_role(user_id: str) -> Response:
    """Grant a role by name, as a manual assignment."""
    body = load(RoleBody, json_object())
    accounts.add_manual_role(db.session, g.org_id, user_id, body["role"])
    return jsonify(user_detail(user_id))


@bp.delete("/users/<user_id>/roles/<role_id>")
@audited("user.roles")
@api_doc(tag="users", response=UserDetailOut)
def remove_role(user_id: str, role_id: str) -> Response:
    """Withdraw a manual role; the same role held from the rules stays."""
    accounts.remove_manual_role(db.session, g.org_id, user_id, role_id)
    return jsonify(user_detail(user_id))


@bp.delete("/users/<user_id>")
@audited("user.delete")
@api_doc(tag="users", status=204)
def delete_user(user_id: str) -> Response:
    """Remove the account (access); the person contact and the history stay."""
    users.delete_user(db.session, g.org_id, user_id)
    return Response(status=204)
