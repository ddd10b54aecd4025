"""Operations endpoints: ``/healthz`` (process up) and ``/readyz`` (database reachable)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from scim_server.db import DATABASE_RETRY_AFTER, db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
    """503 while the database is unreachable, so a load balancer routes around this node."""
    try:
        with db.engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        body = jsonify(status="unavailable", detail="database unreachable")
        return body, 503, {"Retry-After": str(DATABASE_RETRY_AFTER)}
    return jsonify(status="ok"), 200


def unavailable_json() -> tuple[Response, int, dict[str, str]]:
    """The JSON 503 of the non-SCIM APIs while the database is unreachable: retry later."""
    body = jsonify(error="Service Unavailable", detail="database unreachable; retry later")
    return body, 503, {"Retry-After": str(DATABASE_RETRY_AFTER)}
