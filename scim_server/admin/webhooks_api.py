"""Admin API for webhooks (``/api/v1/webhooks``): subscriptions, their delivery log, resending.

The secret (``whsec_...``) is in the answer to the POST that creates a
subscription and to a rotation, never anywhere else.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g, jsonify, request
from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from scim_server.admin.apidoc import Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import MAX_INT, JsonBoolean, audited, json_object, load, text
from scim_server.db import db
from scim_server.sealing import encryption_secret
from scim_server.services import webhooks
from scim_server.webhook_http import OutboundPolicy


def _policy() -> OutboundPolicy:
    return OutboundPolicy.from_config(current_app.config)


class WebhookFields(Schema):
    class Meta:
        unknown = RAISE

    url = text(2000, min_length=1)
    events = fields.List(text(40, min_length=1), validate=validate.Length(min=1, max=50))
    enabled = JsonBoolean()
    description = text(webhooks.MAX_DESCRIPTION, allow_none=True)
    alert_email = text(320, allow_none=True)


class NewWebhook(WebhookFields):
    url = text(2000, min_length=1, required=True)


class RedeliverBody(Schema):
    class Meta:
        unknown = RAISE

    event_id = text(40, min_length=1, required=True)


class ReplayBody(Schema):
    class Meta:
        unknown = RAISE

    after = text(40, min_length=1, load_default=None, allow_none=True)


class LogArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    # A delivery id: an Integer column (int4 on PostgreSQL), so past MAX_INT is a 400, not
    # an overflow in the database.
    before = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT))


class WebhookOut(Out):
    """A subscription (never its secret)."""

    id = always(fields.String)
    url = always(fields.String)
    events = always(fields.List, cls_or_instance=fields.String())
    enabled = always(fields.Boolean)
    description = nullable(fields.String)
    alert_email = nullable(fields.String)
    failing_since = nullable(fields.String)
    disabled_reason = nullable(fields.String)
    created_at = always(fields.String)


class NewWebhookOut(WebhookOut):
    secret = always(fields.String, metadata={"description": "whsec_...: shown this once"})


class WebhookListOut(Out):
    webhooks = always(fields.List, cls_or_instance=fields.Nested(WebhookOut))


class SecretOut(Out):
    secret = always(fields.String, metadata={"description": "whsec_...: shown this once"})


class QueuedOut(Out):
    delivery_id = always(fields.Integer)
    event_id = nullable(fields.String)


class ReplayOut(Out):
    queued = always(fields.Integer)


class DeliveryLogOut(Out):
    deliveries = always(fields.List, cls_or_instance=fields.Dict())


@bp.get("/webhooks")
@api_doc(tag="webhooks", response=WebhookListOut)
def list_webhooks() -> Response:
    subs = webhooks.list_subscriptions(db.session, g.org_id)
    return jsonify(webhooks=[webhooks.to_dict(s) for s in subs])


@bp.post("/webhooks")
@audited("webhook.create")
@api_doc(tag="webhooks", body=NewWebhook, response=NewWebhookOut, status=201)
def create_webhook() -> tuple[Response, int]:
    """The new subscription, with its ``secret``: shown this once."""
    body = load(NewWebhook, json_object())
    sub, secret = webhooks.create_subscription(
        db.session, g.org_id, body, _policy(), server_secret=encryption_secret(current_app)
    )
    return jsonify({**webhooks.to_dict(sub), "secret": secret}), 201


@bp.get("/webhooks/<webhook_id>")
@api_doc(tag="webhooks", response=WebhookOut)
def get_webhook(webhook_id: str) -> Response:
    return jsonify(webhooks.to_dict(webhooks.get_subscription(db.session, g.org_id, webhook_id)))


@bp.patch("/webhooks/<webhook_id>")
@audited("webhook.update")
@api_doc(tag="webhooks", body=WebhookFields, response=WebhookOut)
def patch_webhook(webhook_id: str) -> Response:
    body = load(WebhookFields, json_object())
    sub = webhooks.update_subscription(
        db.session,
        g.org_id,
        webhook_id,
        body,
        _policy(),
        server_secret=encryption_secret(current_app),
    )
    return jsonify(webhooks.to_dict(sub))


@bp.delete("/webhooks/<webhook_id>")
@audited("webhook.delete")
@api_doc(tag="webhooks", status=204)
def delete_webhook(webhook_id: str) -> Response:
    webhooks.delete_subscription(db.session, g.org_id, webhook_id)
    return Response(status=204)


@bp.post("/webhooks/<webhook_id>/rotate-secret")
@audited("webhook.rotate_secret")
@api_doc(tag="webhooks", response=SecretOut)
def rotate_webhook_secret(webhook_id: str) -> Response:
    """A new secret (shown once); the old one keeps verifying for 24 hours."""
    json_object(optional=True)
    secret = webhooks.rotate_secret(
        db.session, g.org_id, webhook_id, server_secret=encryption_secret(current_app)
    )
    return jsonify(secret=secret)


@bp.post("/webhooks/<webhook_id>/test")
@audited("webhook.test")
@api_doc(tag="webhooks", response=QueuedOut, status=202)
def test_webhook(webhook_id: str) -> tuple[Response, int]:
    """Queue a signed ``webhook.test`` message; the worker sends it."""
    json_object(optional=True)
    delivery = webhooks.send_test(db.session, g.org_id, webhook_id)
    return jsonify(delivery_id=delivery.id, event_id=(delivery.payload or {}).get("id")), 202


@bp.post("/webhooks/<webhook_id>/redeliver")
@audited("webhook.redeliver")
@api_doc(tag="webhooks", body=RedeliverBody, response=QueuedOut, status=202)
def redeliver_event(webhook_id: str) -> tuple[Response, int]:
    body = load(RedeliverBody, json_object())
    delivery = webhooks.redeliver(db.session, g.org_id, webhook_id, body["event_id"])
    return jsonify(delivery_id=delivery.id, event_id=delivery.event_id), 202


@bp.post("/webhooks/<webhook_id>/replay")
@audited("webhook.replay")
@api_doc(tag="webhooks", body=ReplayBody, body_required=False, response=ReplayOut, status=202)
def replay_events(webhook_id: str) -> tuple[Response, int]:
    """Every event after ``after`` (a cursor; none: the oldest retained) is delivered again."""
    body: dict[str, Any] = load(ReplayBody, json_object(optional=True))
    count = webhooks.replay(db.session, g.org_id, webhook_id, body["after"])
    return jsonify(queued=count), 202


@bp.get("/webhooks/<webhook_id>/deliveries")
@api_doc(tag="webhooks", query=LogArgs, response=DeliveryLogOut)
def list_deliveries(webhook_id: str) -> Response:
    """The delivery log, newest first; ``before`` (a delivery id) pages back."""
    args = load(LogArgs, request.args)
    log = webhooks.delivery_log(
        db.session, g.org_id, webhook_id, limit=args["limit"], before=args["before"]
    )
    return jsonify(deliveries=log)
