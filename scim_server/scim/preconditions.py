"""Conditional requests (RFC 7232, RFC 7644 §3.14): If-Match and If-None-Match on writes
(412, checked by the service under its row lock), If-None-Match on reads (304)."""

from __future__ import annotations

from flask import Request, Response, request

from scim_server.services.common import opaque_tag


def if_match() -> list[str] | None:
    """The ETags of If-Match, for the service to check under its row lock."""
    raw = request.headers.get("If-Match")
    return [t.strip() for t in raw.split(",")] if raw else None


def if_none_match() -> list[str] | None:
    """The ETags of If-None-Match on a PUT, PATCH or DELETE, for the service to check under
    its row lock: RFC 7232 §3.2, ``*`` or the current version there is a 412, not a 304."""
    raw = request.headers.get("If-None-Match")
    return [t.strip() for t in raw.split(",")] if raw else None


def not_modified(version: str, req: Request | None = None) -> Response | None:
    """304 when If-None-Match names the current version (RFC 7232 §3.2), compared weakly
    as that section requires: ``"1"`` matches the ETag ``W/"1"``.

    ``req``: the request, when the caller has it (each ``request.x`` looks it up again);
    the header read from the WSGI environ, as ``headers.get`` reads it."""
    environ = (req if req is not None else request._get_current_object()).environ  # type: ignore[attr-defined]
    raw = environ.get("HTTP_IF_NONE_MATCH")
    if raw and (
        raw.strip() == "*" or opaque_tag(version) in {opaque_tag(t) for t in raw.split(",")}
    ):
        resp = Response(status=304)
        resp.headers["ETag"] = version
        return resp
    return None
