"""The admin API blueprint (``/api/v1``): admin-token authentication and JSON error bodies.

Errors are ``{"error": ..., "detail": ...}`` with the HTTP status. The view
modules (``*_api.py``) add their routes to ``bp``; ``scim_server.admin.init_app``
imports them all and registers it.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from scim_server import request_inputs
from scim_server.audit import web as audit_web
from scim_server.db import db, utcnow
from scim_server.errors import DomainError, InvalidValueError
from scim_server.services import token_usage
from scim_server.services import tokens as token_service

bp = Blueprint("admin", __name__, url_prefix="/api/v1")


class AdminAuthError(Exception):
    pass


@bp.errorhandler(AdminAuthError)
def _auth_error(err: AdminAuthError) -> tuple[Response, int, dict[str, str]]:
    return (
        jsonify(error="unauthorized", detail=str(err)),
        401,
        {"WWW-Authenticate": 'Bearer realm="admin"'},
    )


@bp.errorhandler(DomainError)
def _domain_error(err: DomainError) -> tuple[Response, int]:
    return jsonify(error=type(err).__name__, detail=err.detail), err.status


@bp.errorhandler(ValidationError)
def _validation_error(err: ValidationError) -> tuple[Response, int]:
    return jsonify(error="invalid_request", detail=err.normalized_messages()), 400


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException) -> tuple[Response, int]:
    return jsonify(error=err.name, detail=err.description), err.code or 500


@bp.before_request
def authenticate() -> None:
    # PostgreSQL text cannot hold NUL: refuse it in the URL (an id, a filter) before any
    # lookup, as the SCIM API does; before the token too, so no refusal is logged with it.
    if request_inputs.has_nul(request):
        raise InvalidValueError("NUL characters are not allowed in the URL.")
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AdminAuthError("An admin bearer token is required.")
    session = db.session
    token = token_service.authenticate(session, secret.strip(), kind="admin")
    if token is None:
        raise AdminAuthError("The admin token is invalid or has been revoked.")
    g.org_id = token.org_id
    audit_web.begin(token.id, token.name, actor_type="admin")
    if session.in_transaction():
        session.commit()
    if token_usage.is_stale(token.last_used_at, utcnow()):
        # At most once a minute per token, apart from this request's transaction.
        token_usage.note_use(db.side_sessions(), token.org_id, token.id, token.last_used_at)
