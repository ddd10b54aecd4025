"""Admin API for the mail outbox: what was queued, sent, failed or abandoned; retry abandoned mail.

A mail's body is never shown here: it may hold a temporary password meant for
its recipient alone.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request
from marshmallow import fields, validate

from scim_server.admin.apidoc import Out, PageOut, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import PageArgs, audited, iso, load, page
from scim_server.db import db
from scim_server.models import MailOutbox
from scim_server.services import mail


class MailArgs(PageArgs):
    state = fields.String(load_default=None, validate=validate.OneOf(mail.STATES))


class MailOut(Out):
    """Where a mail stands (never its body)."""

    id = always(fields.String)
    kind = always(fields.String)
    recipient = always(fields.String)
    subject = always(fields.String)
    state = always(fields.String)
    attempts = always(fields.Integer)
    last_error = nullable(fields.String)
    next_attempt_at = nullable(fields.String)
    send_at = nullable(fields.String)
    sent_at = nullable(fields.String)
    created_at = nullable(fields.String)
    user_id = nullable(fields.String)
    message_id = nullable(fields.String)


class MailPageOut(PageOut):
    """A page of the outbox."""

    mail = always(fields.List, cls_or_instance=fields.Nested(MailOut))


def mail_to_dict(row: MailOutbox) -> dict[str, Any]:
    """Where a mail stands: kind, recipient, state, attempts and times; never the body."""
    return {
        "id": row.id,
        "kind": row.kind,
        "recipient": row.recipient,
        "subject": row.subject,
        "state": row.state,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "next_attempt_at": iso(row.next_attempt_at) if row.state in ("queued", "failed") else None,
        "send_at": iso(row.send_at),
        "sent_at": iso(row.sent_at),
        "created_at": iso(row.created_at),
        "user_id": row.user_id,
        "message_id": row.message_id,
    }


@bp.get("/mail")
@api_doc(tag="mail", query=MailArgs, response=MailPageOut)
def list_mail() -> Response:
    """The organization's outbox, newest first; ``state`` narrows it."""
    args = load(MailArgs, request.args)
    total, rows = mail.list_mail(
        db.session, g.org_id, state=args["state"], offset=args["offset"], limit=args["limit"]
    )
    return page(total, args["offset"], args["limit"], "mail", [mail_to_dict(r) for r in rows])


@bp.post("/mail/<mail_id>/retry")
@audited("mail.retry")
@api_doc(tag="mail", response=MailOut)
def retry_mail(mail_id: str) -> Response:
    """Queue an abandoned mail again (a fresh day of attempts); any other state is 409."""
    return jsonify(mail_to_dict(mail.retry_mail(db.session, g.org_id, mail_id)))
