"""Conditional requests (RFC 7232, RFC 7644 §3.14): If-Match and If-None-Match on writes
(412, checked by the service under its row lock), on reads If-None-Match (304) and
If-Match (412)."""

from __future__ import annotations

from flask import Request, Response, request

from scim_server.errors import PreconditionFailedError
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
    as that section requires: ``"1"`` matches the ETag ``W/"1"``; 412 when If-Match names
    another (as the writes compare it).

    ``req``: the request, when the caller has it (each ``request.x`` looks it up again);
    the header read from the WSGI environ, as ``headers.get`` reads it."""
    environ = (req if req is not None else request._get_current_object()).environ  # type: ignore[attr-defined]
    wanted = environ.get("HTTP_IF_MATCH")
    if (
        wanted
        and wanted.strip() != "*"
        and opaque_tag(version) not in {opaque_tag(t) for t in wanted.split(",")}
    ):
        # RFC 7232 §3.1: a false If-Match is not performed, a GET included (it was served).
        raise PreconditionFailedError(
            f"The resource's version is {version}, the request was for {wanted.strip()}."
        )
    raw = environ.get("HTTP_IF_NONE_MATCH")
    if raw and (
        raw.strip() == "*" or opaque_tag(version) in {opaque_tag(t) for t in raw.split(",")}
    ):
        resp = Response(status=304)
        resp.headers["ETag"] = version
        return resp
    return None
