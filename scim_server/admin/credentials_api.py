"""Admin API for credentials: send now (to the user or to myself), resend, reset, schedule.

Only where the organization allows local passwords (``sign_in_methods``): an
SSO-only organization gets a 409 that says why. A response never holds a
password or a link: those go only to the mail's recipient.

- ``POST /users/<id>/credentials/send``, ``.../credentials/resend``, ``.../password/reset``:
  body ``{"to": "user" | "me", "me": address}`` (optional; ``me`` defaults to the
  admin token's name when that is an address). 202 with what was queued; 429
  with ``Retry-After`` past three sends an hour to one user.
- ``PUT /users/<id>/credentials/schedule`` ``{"send_at": ISO 8601 with a zone, "to", "me"}``
  schedules or reschedules; ``DELETE`` cancels.
- ``POST /credentials/schedule`` ``{"user_ids": [...], "send_at": ...}``: a result per user.
- ``GET /credentials/schedule``: every waiting send, soonest first.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from scim_server.admin.apidoc import Out, PageOut, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import PageArgs, audited, instant, json_object, load, page, text
from scim_server.audit.context import current_context
from scim_server.db import db
from scim_server.delivery import current_delivery
from scim_server.errors import ConflictError, InvalidValueError, NotFoundError
from scim_server.services import credential_schedules, credentials, users
from scim_server.services.credentials import Sent, TooManyRequestsError
from scim_server.services.mail import check_recipient
from scim_server.urls import link_root


class RecipientBody(Schema):
    class Meta:
        unknown = RAISE

    to = fields.String(load_default="user", validate=validate.OneOf(("user", "me")))
    me = text(320, min_length=3, load_default=None, allow_none=True)

    @validates_schema
    def _me_only_for_me(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("me") and data.get("to") != "me":
            raise ValidationError('"me" is the address for "to": "me".', "me")


class ScheduleBody(RecipientBody):
    send_at = instant(required=True)


class BulkScheduleBody(ScheduleBody):
    user_ids = fields.List(
        text(36, min_length=1),
        required=True,
        validate=validate.Length(min=1, max=credential_schedules.MAX_USERS),
    )


class QueuedMailOut(Out):
    id = always(fields.String)
    kind = always(fields.String)
    recipient = always(fields.String)
    method = always(fields.String)


class SentOut(Out):
    """What was queued (never the password or the link: those go only to the recipient)."""

    user_id = always(fields.String)
    status = always(fields.String)
    mail = always(fields.Nested, nested=QueuedMailOut)


class ScheduleOut(Out):
    """A waiting credentials send."""

    send_at = nullable(fields.String, data_key="sendAt")
    state = always(fields.String)
    to = always(fields.String, metadata={"enum": ["user", "me"]})
    recipient = nullable(fields.String)


class UserScheduleOut(Out):
    user_id = always(fields.String)
    schedule = fields.Nested(ScheduleOut, allow_none=True)


class ScheduleResultOut(Out):
    user_id = always(fields.String)
    status = always(fields.Integer)
    send_at = fields.String(metadata={"description": "when scheduled (status 200)"})
    error = fields.String(metadata={"description": "why not (status 404 or 409)"})


class BulkScheduleOut(Out):
    scheduled = always(fields.Integer)
    refused = always(fields.Integer)
    results = always(fields.List, cls_or_instance=fields.Nested(ScheduleResultOut))


class WaitingOut(ScheduleOut):
    user_id = always(fields.String)


class SchedulePageOut(PageOut):
    schedules = always(fields.List, cls_or_instance=fields.Nested(WaitingOut))


@bp.errorhandler(TooManyRequestsError)
def _too_many(err: TooManyRequestsError) -> tuple[Response, int, dict[str, str]]:
    body = jsonify(error="too_many_requests", detail=err.detail, retry_after=err.retry_after)
    return body, 429, {"Retry-After": str(err.retry_after)}


def _recipient(body: dict[str, Any]) -> str | None:
    """None: the user. "me": the given address, else the admin token's name if it is one."""
    if body["to"] != "me":
        return None
    if body.get("me"):
        try:
            return check_recipient(body["me"])
        except InvalidValueError as err:
            raise InvalidValueError(f'"me": {err.detail}') from None
    address = current_context().actor_name or ""
    try:
        return check_recipient(address)
    except InvalidValueError:
        raise InvalidValueError(
            'To send the credentials to yourself, give your address as "me" '
            "(this admin token's name is not an e-mail address)."
        ) from None


def _sent(user_id: str, sent: Sent) -> Response:
    status = users.get_user(db.session, g.org_id, user_id).status
    resp = jsonify(
        user_id=user_id,
        status=status,
        mail={
            "id": sent.mail_id,
            "kind": sent.kind,
            "recipient": sent.recipient,
            "method": sent.method,
        },
    )
    resp.status_code = 202
    return resp


@bp.post("/users/<user_id>/credentials/send")
@audited("user.credentials.send")
@api_doc(tag="credentials", body=RecipientBody, body_required=False, response=SentOut, status=202)
def send_credentials(user_id: str) -> Response:
    """New credentials now (temporary password or activation link, per the setting)."""
    body = load(RecipientBody, json_object(optional=True))
    sent = credentials.send_credentials(
        db.session, current_delivery(), g.org_id, user_id, recipient=_recipient(body)
    )
    return _sent(user_id, sent)


@bp.post("/users/<user_id>/credentials/resend")
@audited("user.credentials.resend")
@api_doc(tag="credentials", body=RecipientBody, body_required=False, response=SentOut, status=202)
def resend_credentials(user_id: str) -> Response:
    """Resend the new-user e-mail: the earlier temporary password or link stops working."""
    body = load(RecipientBody, json_object(optional=True))
    sent = credentials.send_credentials(
        db.session, current_delivery(), g.org_id, user_id, recipient=_recipient(body), resend=True
    )
    return _sent(user_id, sent)


@bp.post("/users/<user_id>/password/reset")
@audited("user.credentials.reset")
@api_doc(tag="credentials", body=RecipientBody, body_required=False, response=SentOut, status=202)
def reset_password(user_id: str) -> Response:
    """Remove the current password; mail a reset link or a new temporary password."""
    body = load(RecipientBody, json_object(optional=True))
    sent = credentials.reset_password(
        db.session, current_delivery(), g.org_id, user_id, recipient=_recipient(body)
    )
    return _sent(user_id, sent)


def _schedule(user_ids: list[str], body: dict[str, Any]) -> list[dict[str, Any]]:
    return credential_schedules.schedule(
        db.session,
        g.org_id,
        user_ids,
        body["send_at"],
        base_url=link_root(),
        recipient=_recipient(body),
        scheduled_by=current_context().actor_name,
    )


@bp.put("/users/<user_id>/credentials/schedule")
@audited("user.credentials.schedule")
@api_doc(tag="credentials", body=ScheduleBody, response=UserScheduleOut)
def schedule_credentials(user_id: str) -> Response:
    """Schedule (or move) this user's credentials send; the date shows on the user."""
    body = load(ScheduleBody, json_object())
    (result,) = _schedule([user_id], body)
    if result["status"] == 404:
        raise NotFoundError(result["error"])
    if result["status"] != 200:
        raise ConflictError(result["error"])
    views = credential_schedules.schedules_of(db.session, g.org_id, [user_id])
    return jsonify(user_id=user_id, schedule=views.get(user_id))


@bp.delete("/users/<user_id>/credentials/schedule")
@audited("user.credentials.schedule.cancel")
@api_doc(tag="credentials", status=204)
def cancel_schedule(user_id: str) -> Response:
    """Cancel the waiting send (404 when there is none)."""
    credential_schedules.cancel(db.session, g.org_id, user_id)
    return Response(status=204)


@bp.post("/credentials/schedule")
@audited("user.credentials.schedule")
@api_doc(tag="credentials", body=BulkScheduleBody, response=BulkScheduleOut)
def schedule_many() -> Response:
    """Schedule several users at once; each gets its own result (200, 404 or 409)."""
    body = load(BulkScheduleBody, json_object())
    # The documented ``user_id`` (ScheduleResultOut), as the single user's answer names it.
    results = [
        {"user_id": r["id"], **{k: v for k, v in r.items() if k != "id"}}
        for r in _schedule(body["user_ids"], body)
    ]
    scheduled = sum(1 for r in results if r["status"] == 200)
    return jsonify(scheduled=scheduled, refused=len(results) - scheduled, results=results)


@bp.get("/credentials/schedule")
@api_doc(tag="credentials", query=PageArgs, response=SchedulePageOut)
def list_schedules() -> Response:
    """Every waiting credentials send of the organization, soonest first."""
    args = load(PageArgs, request.args)
    total, rows = credential_schedules.list_schedules(
        db.session, g.org_id, offset=args["offset"], limit=args["limit"]
    )
    items = [{"user_id": r.user_id, **credential_schedules.schedule_view(r)} for r in rows]
    return page(total, args["offset"], args["limit"], "schedules", items)
