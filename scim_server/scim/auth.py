"""Bearer authentication for the SCIM API (RFC 7644 §2, RFC 6750), run before every endpoint."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request
from sqlalchemy.exc import DBAPIError

from scim_server.audit import web as audit_web
from scim_server.db import db, utcnow
from scim_server.errors import InvalidValueError
from scim_server.scim import audit_hooks
from scim_server.scim.errors import UnauthorizedError
from scim_server.services import token_usage
from scim_server.services import tokens as token_service

# Discovery (RFC 7644 §4) is readable without a token.
PUBLIC_ENDPOINTS = {
    "scim.service_provider_config",
    "scim.list_resource_types",
    "scim.get_resource_type",
    "scim.list_schemas",
    "scim.get_schema",
}

# Views that read only on ``db.read_connection`` (the request's connection, no Session):
# their token lookup reads there too, so the request makes no Session at all.
CONNECTION_READS = frozenset({"scim.get_user"})


def authenticate() -> None:
    """Resolve the bearer token to its organization; set ``g.org_id`` and ``g.token_id``.

    A read goes on in the transaction the token lookup began; a write's lookup ends
    here, since write services begin their own transaction. Both run on the request's
    one connection (``db.share_connection``).
    """
    # The request itself, not the proxy: each ``request.x`` looks the request up again.
    req = request._get_current_object()  # type: ignore[attr-defined]
    # PostgreSQL text cannot hold NUL: refuse it in the URL before it reaches a query.
    # (``req.args`` parsed only when there is a query string: a GET by id has none.)
    if "\x00" in req.path or (
        req.environ.get("QUERY_STRING") and any("\x00" in v for v in req.args.values())
    ):
        raise InvalidValueError("NUL characters are not allowed in the URL.")
    if req.endpoint in PUBLIC_ENDPOINTS:
        return
    # The environ's key, as ``req.headers.get("Authorization")`` reads it (without its key
    # folding and the headers object made for it).
    header = req.environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise UnauthorizedError("A bearer token is required (Authorization: Bearer <token>).")
    # One pooled connection for the lookup, the token's use and the work; the lookup is
    # its first statement, and stands for its ping (``_lookup``).
    db.share_connection(first_read_retried=True)
    reading = req.method in ("GET", "HEAD")
    if not reading:
        db.before_write()
    on_connection = reading and req.endpoint in CONNECTION_READS
    try:
        token = _lookup(secret.strip(), reading, on_connection)
    except DBAPIError as err:
        if not err.connection_invalidated:
            raise
        # The pooled connection was dead (the database restarted): the pool has
        # invalidated it and every older one; the lookup, a read, runs again on a new one.
        db.drop_shared_connection()
        token = _lookup(secret.strip(), reading, on_connection)
    if token is None:
        raise UnauthorizedError("The bearer token is invalid or has been revoked.")
    app_g = g._get_current_object()
    app_g.org_id = token.org_id
    app_g.token_id = token.id
    audit_web.begin(token.id, token.name)
    if token_usage.is_stale(token.last_used_at, utcnow()):
        # At most once a minute per token, apart from this request's transaction.
        if reading:
            db.end_read()
        token_usage.note_use(db.side_sessions(), token.org_id, token.id, token.last_used_at)


def _lookup(secret: str, reading: bool, on_connection: bool) -> Any:
    if on_connection:
        # The view reads on the same connection, in the same read transaction on SQLite.
        return token_service.authenticate(db.read_connection(), secret)
    if reading:
        db.use_statement_reads()  # the SCIM reads never write
        return token_service.authenticate(db.session, secret)
    # Write services begin their own transactions: the lookup reads without a transaction,
    # on the request's connection (no session of its own), ended before the write begins.
    with db.lookup_connection() as connection:
        return token_service.authenticate(connection, secret)


def init_blueprint(bp: Blueprint) -> None:
    """Authenticate every request of ``bp``; audit the refused ones."""
    bp.before_request(authenticate)
    bp.after_request(audit_hooks.record_refusal)
