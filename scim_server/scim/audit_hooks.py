"""Ties SCIM requests to the provisioning log.

Successful changes are recorded by the services in the change's own
transaction. Refused or failed writes are recorded here, after the response is
known, in a transaction of their own (the change rolled back; its refusal
must not). Reads are not provisioning operations and are not recorded.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import record_failure
from scim_server.db import db, release
from scim_server.models import Group, User
from scim_server.scim.body import parse_json

log = logging.getLogger(__name__)

WRITE_ACTIONS = {
    "scim.create_user": ("user.create", "User"),
    "scim.replace_user": ("user.replace", "User"),
    "scim.patch_user": ("user.patch", "User"),
    "scim.delete_user": ("user.delete", "User"),
    "scim.create_group": ("group.create", "Group"),
    "scim.replace_group": ("group.replace", "Group"),
    "scim.patch_group": ("group.patch", "Group"),
    "scim.delete_group": ("group.delete", "Group"),
    "scim.bulk": ("bulk", None),
}


def _body_identity() -> dict[str, Any]:
    """userName / externalId from the request body, when it has them (for the failure event;
    what it does not give is read from the resource the URL names, ``_stored_identity``)."""
    if not request.content_length:
        return {}
    try:
        body = parse_json(request.get_data(cache=True))
    except Exception:
        return {}
    if not isinstance(body, dict):
        return {}
    out = {}
    for key, field in (("userName", "user_name"), ("externalId", "external_id")):
        if isinstance(body.get(key), str):
            out[field] = body[key]
    return out


def record_refusal(resp: Response) -> Response:
    """After a refused write (4xx/5xx), append a failure event in its own transaction."""
    if resp.status_code < 400 or request.endpoint not in WRITE_ACTIONS or not g.get("org_id"):
        return resp
    if resp.status_code in (429, 503):
        # Shed load, do not add to it: a rate-limited or database-down request
        # never reached the service (the access log and metrics still count it).
        return resp
    action, resource_type = WRITE_ACTIONS[request.endpoint]
    view_args = request.view_args or {}
    record_refused(
        action,
        resource_type,
        view_args.get("user_id") or view_args.get("group_id"),
        resp.status_code,
        resp.get_json(silent=True) or {},
        **_body_identity(),
    )
    return resp


def record_refused(
    action: str,
    resource_type: str | None,
    resource_id: str | None,
    status: int,
    error: dict[str, Any],
    **identity: str,
) -> None:
    """Append a refused write's failure event (``error``: its SCIM Error body) in a
    transaction of its own; also for a Bulk operation refused before it ran. ``identity``:
    what the request gave; the rest is the named resource's as stored."""
    session = g.get("_scim_session")
    if session is not None and session.in_transaction():
        # Release any lock before the failure event's own transaction; a dead
        # connection is discarded here, not raised over the client's answer.
        release(session)
    if resource_id is not None and resource_type in _STORED_IDENTITY:
        # Entra's deprovisioning PATCH, a DELETE: no userName in the body. The event is
        # found by whom it was about (README: ?user_name=...&outcome=failure) from the
        # account as it is, in the token's organization only (an id of another
        # organization's names nobody); what the request gave goes first.
        try:
            with db.reader()() as read:
                stored = _stored_identity(read, g.org_id, resource_type, resource_id)
        except Exception:  # never raised over the client's real error (as record_failure)
            log.exception("could not read %s %s for its failure event", resource_type, resource_id)
            stored = {}
        identity = {**stored, **identity}
    record_failure(
        db.writer(),
        g.org_id,
        action,
        resource_type=resource_type,
        resource_id=resource_id,
        status=status,
        scim_type=error.get("scimType"),
        detail=error.get("detail"),
        **identity,
    )


# What the log keeps of who an event is about, per resource type (a group's displayName has
# no column of its own in the log).
_STORED_IDENTITY: dict[str, dict[str, Any]] = {
    "User": {"user_name": User.user_name, "external_id": User.external_id},
    "Group": {"external_id": Group.external_id},
}
_MODELS: dict[str, Any] = {"User": User, "Group": Group}


def _stored_identity(
    session: Session, org_id: str, resource_type: str, resource_id: str
) -> dict[str, Any]:
    """userName / externalId of the organization's resource as stored now ({} if none)."""
    model = _MODELS[resource_type]
    columns = _STORED_IDENTITY[resource_type]
    row = session.execute(
        select(*columns.values()).where(model.org_id == org_id, model.id == resource_id)
    ).first()
    if row is None:
        return {}
    return {name: value for name, value in zip(columns, row, strict=True) if value is not None}
