"""SCIM Error resources (RFC 7644 §3.12) and the blueprint's error handlers.

The errors themselves are the domain errors of ``scim_server.errors``; here is
how they go on the wire. ``ScimError`` adds the few failures that exist only in
the protocol (a status without a domain meaning: 401, 413, 415, 429) and their
headers.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, json
from werkzeug.exceptions import HTTPException

from scim_server.db import DATABASE_RETRY_AFTER, DATABASE_UNAVAILABLE
from scim_server.errors import DomainError, UniquenessError
from scim_server.scim.filter_ast import FilterError, PathError
from scim_server.scim.schema import ERROR_SCHEMA
from scim_server.urls import scim_root

log = logging.getLogger(__name__)

SCIM_CONTENT_TYPE = "application/scim+json"


class ScimError(DomainError):
    """A protocol failure with an explicit HTTP status and headers (e.g. 413, 415, 429)."""

    def __init__(
        self, detail: str, *, status: int | None = None, scim_type: str | None = None
    ) -> None:
        super().__init__(detail)
        if status is not None:
            self.status = status
        if scim_type is not None:
            self.scim_type = scim_type
        self.headers: dict[str, str] = {}


class UnauthorizedError(ScimError):
    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        # RFC 6750 §3: tell the client which scheme to use.
        self.headers = {"WWW-Authenticate": 'Bearer realm="scim"'}


# Our extension member of a 409 uniqueness Error: the resource that holds the value.
CONFLICT_URN = "urn:scim-server:api:messages:1.0:Conflict"


def error_body(
    status: int, detail: str, scim_type: str | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    if extra:
        body.update(extra)
    return body


def error_response(
    status: int,
    detail: str,
    scim_type: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    resp = Response(
        json.dumps(error_body(status, detail, scim_type, extra)),
        status=status,
        mimetype=SCIM_CONTENT_TYPE,
    )
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def unavailable_response() -> Response:
    """503 with Retry-After, for a database that cannot be reached right now (down, or its
    write lock held past the busy timeout)."""
    return error_response(
        503,
        "The service is temporarily unavailable (database unreachable or busy); retry later.",
        None,
        {"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


def log_unavailable(err: Exception) -> None:
    """One warning line, no traceback: during an outage every request fails the same way."""
    log.warning("database unavailable: %s", (str(err).splitlines() or [type(err).__name__])[0])


def _conflict(err: DomainError) -> dict[str, Any] | None:
    """Name the resource that holds a taken value, so that a client can link it.

    RFC 7644 §3.3: a create whose unique value is taken is 409 with scimType
    "uniqueness"; §3.12 defines the Error's members (schemas, status, scimType,
    detail) and nothing forbids more, so the holder is one extra member keyed by
    our URN (``id``, ``resourceType``, ``location``) and also named in ``detail``
    for a person reading a log. Clients that ignore unknown members lose nothing.

    Why it matters: a create that committed but whose answer was lost (the
    connection died after the commit, the client saw 503) is retried and gets
    this 409. IdP quirk: Microsoft Entra and Okta do not read the 409 body;
    both look a user up by a filter (``userName eq``, or Entra's matching
    attribute) before creating it, and on a later cycle (Entra) or a retried
    task (Okta) that lookup finds the stored user and links it. Custom
    provisioning scripts and other clients can link it at once from ``id``.
    """
    existing_id = getattr(err, "existing_id", None)
    if not isinstance(err, UniquenessError) or not existing_id:
        return None

    kind = err.resource_type or "User"
    location = f"{scim_root()}/{kind}s/{existing_id}"
    return {CONFLICT_URN: {"id": existing_id, "resourceType": kind, "location": location}}


def register_error_handlers(bp: Blueprint) -> None:
    """Every failure under /scim becomes a SCIM Error body, never HTML or a traceback."""

    @bp.errorhandler(ScimError)
    def _scim(err: ScimError) -> Response:
        return error_response(err.status, err.detail, err.scim_type, err.headers)

    @bp.errorhandler(DomainError)
    def _domain(err: DomainError) -> Response:
        return error_response(err.status, err.detail, err.scim_type, extra=_conflict(err))

    @bp.errorhandler(FilterError)
    def _filter(err: FilterError) -> Response:
        return error_response(400, str(err), "invalidFilter")

    @bp.errorhandler(PathError)
    def _path(err: PathError) -> Response:
        return error_response(400, str(err), "invalidPath")

    def _unavailable(err: Exception) -> Response:
        log_unavailable(err)
        return unavailable_response()

    for exc_class in DATABASE_UNAVAILABLE:
        bp.register_error_handler(exc_class, _unavailable)

    @bp.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Response:
        status = err.code or 500
        headers = {}
        detail = err.description or err.name
        if status == 413:
            # Name the limit and its setting: "too large" alone leaves the client guessing.
            limit = current_app.config.get("MAX_CONTENT_LENGTH")
            detail = f"The request body is larger than {limit} bytes (SCIM_MAX_BODY_BYTES)."
        if status == 405 and err.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(err.valid_methods)  # type: ignore[attr-defined]
        return error_response(status, detail, None, headers)

    @bp.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log.exception("unhandled error in SCIM request")
        return error_response(500, "Internal server error; the failure has been logged.")
