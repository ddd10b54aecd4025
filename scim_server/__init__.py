"""SCIM 2.0 provisioning server with SAML / OpenID Connect single sign-on."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from scim_server.config import load_config
from scim_server.db import db as database


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the application; ``test_config`` overrides the environment."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(load_config(app.instance_path))
    if test_config:
        app.config.update(test_config)
    if app.config["DATABASE_URL"].startswith("sqlite:///"):
        from pathlib import Path

        Path(app.config["DATABASE_URL"].removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )

    database.init_app(app)

    from scim_server import health, observability

    observability.init_app(app)
    from scim_server.scim.views import bp as scim_bp

    app.register_blueprint(scim_bp)
    app.register_blueprint(health.bp)
    _register_fallback_errors(app)
    return app


def _register_fallback_errors(app: Flask) -> None:
    """Errors raised before a blueprint is chosen (unknown URL, method, body too large)."""
    from scim_server.scim.errors import error_response

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Response | tuple[Response, int]:
        status = err.code or 500
        if request.path.startswith("/scim/"):
            headers = {}
            if status == 405 and getattr(err, "valid_methods", None):
                headers["Allow"] = ", ".join(err.valid_methods)  # type: ignore[attr-defined]
            return error_response(status, err.description or err.name, None, headers)
        return jsonify(error=err.name, detail=err.description), status
