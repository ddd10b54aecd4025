"""Admin API for tokens (``GET /api/v1/tokens``): the organization's SCIM and admin tokens, when
each was last used, which are revoked. Never a secret: only its hash is stored."""

from __future__ import annotations

from datetime import datetime

from flask import Response, g, jsonify
from marshmallow import fields

from scim_server.admin.apidoc import Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.db import db
from scim_server.services import tokens


class TokenOut(Out):
    """A token without its secret: kind, when it was created, last used (to the minute), revoked."""

    id = always(fields.String)
    name = always(fields.String)
    kind = always(fields.String, metadata={"description": "scim or admin"})
    created_at = always(fields.String)
    last_used_at = nullable(fields.String)
    revoked_at = nullable(fields.String)


class TokenListOut(Out):
    """Every token of the organization, oldest first."""

    tokens = fields.List(fields.Nested(TokenOut), required=True)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


@bp.get("/tokens")
@api_doc(tag="tokens", response=TokenListOut)
def list_tokens() -> Response:
    """The organization's tokens, each with when it was last used (null: never)."""
    listed = tokens.list_tokens(db.session, g.org_id)
    return jsonify(
        tokens=[
            {
                "id": t.id,
                "name": t.name,
                "kind": t.kind,
                "created_at": _iso(t.created_at),
                "last_used_at": _iso(t.last_used_at),
                "revoked_at": _iso(t.revoked_at),
            }
            for t in listed
        ]
    )
