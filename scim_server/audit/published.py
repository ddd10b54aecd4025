"""``GET /.well-known/audit-keys``: the public keys that sign checkpoints and export manifests.

No authentication: an auditor fetches them to check evidence on their own
machine (``audit.offline``). Each key has the period it was the server's key;
a rotated-out key stays listed so what it signed still verifies.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from scim_server.audit.signing import published_keys
from scim_server.db import db

bp = Blueprint("audit_keys", __name__)

WELL_KNOWN_PATH = "/.well-known/audit-keys"


@bp.get(WELL_KNOWN_PATH)
def audit_keys() -> Response:
    resp = jsonify(published_keys(db.session, current_app.config["AUDIT_SIGNER"]))
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp
