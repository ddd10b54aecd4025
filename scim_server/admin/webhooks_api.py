"""Admin API for webhooks (``/api/v1/webhooks``): subscriptions, their delivery log, resending.

The secret (``whsec_...``) is in the answer to the POST that creates a
subscription and to a rotation, never anywhere else.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g, jsonify, request
from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from scim_server.admin.blueprint import bp
from scim_server.admin.common import audited, json_object, load, text
from scim_server.db import db
from scim_server.services import webhooks
from scim_server.webhook_http import OutboundPolicy


def _policy() -> OutboundPolicy:
    return OutboundPolicy.from_config(current_app.config)


class WebhookFields(Schema):
    class Meta:
        unknown = RAISE

    url = text(2000, min_length=1)
    events = fields.List(text(40, min_length=1), validate=validate.Length(min=1, max=50))
    enabled = fields.Boolean(truthy={True}, falsy={False})
    description = text(500, allow_none=True)
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
    before = fields.Integer(load_default=None, validate=validate.Range(min=1))


@bp.get("/webhooks")
def list_webhooks() -> Response:
    subs = webhooks.list_subscriptions(db.session, g.org_id)
    return jsonify(webhooks=[webhooks.to_dict(s) for s in subs])


@bp.post("/webhooks")
@audited("webhook.create")
def create_webhook() -> tuple[Response, int]:
    """The new subscription, with its ``secret``: shown this once."""
    body = load(NewWebhook, json_object())
    sub, secret = webhooks.create_subscription(db.session, g.org_id, body, _policy())
    return jsonify({**webhooks.to_dict(sub), "secret": secret}), 201


@bp.get("/webhooks/<webhook_id>")
def get_webhook(webhook_id: str) -> Response:
    return jsonify(webhooks.to_dict(webhooks.get_subscription(db.session, g.org_id, webhook_id)))


@bp.patch("/webhooks/<webhook_id>")
@audited("webhook.update")
def patch_webhook(webhook_id: str) -> Response:
    body = load(WebhookFields, json_object())
    sub = webhooks.update_subscription(db.session, g.org_id, webhook_id, body, _policy())
    return jsonify(webhooks.to_dict(sub))


@bp.delete("/webhooks/<webhook_id>")
@audited("webhook.delete")
def delete_webhook(webhook_id: str) -> Response:
    webhooks.delete_subscription(db.session, g.org_id, webhook_id)
    return Response(status=204)


@bp.post("/webhooks/<webhook_id>/rotate-secret")
@audited("webhook.rotate_secret")
def rotate_webhook_secret(webhook_id: str) -> Response:
    """A new secret (shown once); the old one keeps verifying for 24 hours."""
    json_object(optional=True)
    secret = webhooks.rotate_secret(db.session, g.org_id, webhook_id)
    return jsonify(secret=secret)


@bp.post("/webhooks/<webhook_id>/test")
@audited("webhook.test")
def test_webhook(webhook_id: str) -> tuple[Response, int]:
    """Queue a signed ``webhook.test`` message; the worker sends it."""
    json_object(optional=True)
    delivery = webhooks.send_test(db.session, g.org_id, webhook_id)
    return jsonify(delivery_id=delivery.id, event_id=(delivery.payload or {}).get("id")), 202


@bp.post("/webhooks/<webhook_id>/redeliver")
@audited("webhook.redeliver")
def redeliver_event(webhook_id: str) -> tuple[Response, int]:
    body = load(RedeliverBody, json_object())
    delivery = webhooks.redeliver(db.session, g.org_id, webhook_id, body["event_id"])
    return jsonify(delivery_id=delivery.id, event_id=delivery.event_id), 202


@bp.post("/webhooks/<webhook_id>/replay")
@audited("webhook.replay")
def replay_events(webhook_id: str) -> tuple[Response, int]:
    """Every event after ``after`` (a cursor; none: the oldest retained) is delivered again."""
    body: dict[str, Any] = load(ReplayBody, json_object(optional=True))
    count = webhooks.replay(db.session, g.org_id, webhook_id, body["after"])
    return jsonify(queued=count), 202


@bp.get("/webhooks/<webhook_id>/deliveries")
def list_deliveries(webhook_id: str) -> Response:
    """The delivery log, newest first; ``before`` (a delivery id) pages back."""
    args = load(LogArgs, request.args)
    log = webhooks.delivery_log(
        db.session, g.org_id, webhook_id, limit=args["limit"], before=args["before"]
    )
    return jsonify(deliveries=log)
