"""SCIM 2.0 provisioning server with SAML / OpenID Connect single sign-on."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from scim_server.config import audit_key, audit_signing_key, load_config, trusted_proxies
from scim_server.db import db as database


class App(Flask):
    """Flask, with what it asks of each hook and view on every request asked once."""

    # Past this many callables, forgotten and asked again (never unbounded).
    SYNC_LIMIT = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept_sync = lru_cache(maxsize=self.SYNC_LIMIT)(super().ensure_sync)

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Flask's, kept per callable: Flask asks ``inspect.iscoroutinefunction`` of every
        hook and the view on every request (2 % of a GET by id)."""
        try:
            return self._kept_sync(func)
        except TypeError:  # unhashable: asked every time, as Flask does
            return super().ensure_sync(func)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the application; ``test_config`` overrides the environment."""
    app = App(__name__, instance_relative_config=True)
    app.config.update(load_config(app.instance_path))
    if test_config:
        app.config.update(test_config)
    _trust_proxies(app, trusted_proxies(app.config["TRUSTED_PROXIES"]))
    if app.config["DATABASE_URL"].startswith("sqlite:///"):
        from pathlib import Path

        Path(app.config["DATABASE_URL"].removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )

    app.config["AUDIT_KEY"] = audit_key(app.config, app.instance_path)
    from scim_server.audit.signing import load_signer

    app.config["AUDIT_SIGNER"] = load_signer(audit_signing_key(app.config), app.instance_path)
    database.init_app(app)
    from scim_server import sessions

    sessions.init_app(app)
    from scim_server.events import writer as event_writer

    # Product events are written at each commit that recorded a change (idempotent).
    event_writer.install()

    from scim_server import admin, health, observability, ratelimit
    from scim_server.audit import web as audit_web

    observability.init_app(app)
    audit_web.init_app(app)
    from scim_server.scim import blueprint as scim_api

    scim_api.init_app(app)
    # After the blueprint: the limit is checked once its authenticate has run.
    ratelimit.init_app(app, scim_api.bp.name)
    admin.init_app(app)
    app.register_blueprint(health.bp)
    from scim_server.audit import published as audit_keys

    app.register_blueprint(audit_keys.bp)
    import sso

    sso.init_app(app)
    from scim_server import console

    console.init_app(app)
    _register_fallback_errors(app)
    _register_hsts(app)
    return app


def _trust_proxies(app: Flask, count: int) -> None:
    """Behind ``count`` proxies (``SCIM_TRUSTED_PROXIES``), the client is the address the
    nearest of them appended to X-Forwarded-For (werkzeug's ProxyFix): every per-address
    throttle (sign-in, forgot password) and every recorded source IP is the client's, not
    the load balancer's. 0, the default, believes no header: a client may send any.

    The scheme too (X-Forwarded-Proto), which only makes ``request.scheme`` say the truth
    behind a balancer that ends TLS: every URL we hand out, the cookies' Secure flag and
    HSTS follow SCIM_BASE_URL, never the request. Not X-Forwarded-Host (nor port, prefix):
    the host a request names must never reach a URL (``urls.link_root``), forwarded or not.
    """
    if count:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=count, x_host=0, x_port=0, x_prefix=0
        )


# RFC 6797 §6.1: a year, the value browsers' preload lists ask for; includeSubDomains so a
# sibling host served over plain http cannot set cookies for ours.
HSTS = "max-age=31536000; includeSubDomains"


def _register_hsts(app: Flask) -> None:
    """Strict-Transport-Security on every response (pages, redirects, JSON, OAuth, errors)
    when SCIM_BASE_URL is https, unless SCIM_HSTS=false: after one visit a browser no
    longer tries plain http, so an sslstrip downgrade cannot expose the sign-in form."""
    config = app.config

    @app.after_request
    def _hsts(resp: Response) -> Response:
        base = config["BASE_URL"]
        if base and config["HSTS"] and base[:8].lower() == "https://":
            resp.headers["Strict-Transport-Security"] = HSTS
        return resp


def _register_fallback_errors(app: Flask) -> None:
    """Errors raised outside a blueprint's handlers (unknown URL, body too large, database down)."""
    from scim_server.db import DATABASE_UNAVAILABLE
    from scim_server.health import unavailable_json
    from scim_server.scim.errors import error_response, log_unavailable, unavailable_response

    def _unavailable(err: Exception) -> Response | tuple[Response, int, dict[str, str]]:
        log_unavailable(err)
        if request.path.startswith("/scim/"):
            return unavailable_response()
        return unavailable_json()

    for exc_class in DATABASE_UNAVAILABLE:
        app.register_error_handler(exc_class, _unavailable)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Response | tuple[Response, int, dict[str, str]]:
        status = err.code or 500
        # RFC 9110 §15.5.6: a 405 names the methods the resource allows.
        allow = {k: v for k, v in err.get_headers() if k == "Allow"}
        if request.path.startswith("/scim/"):
            return error_response(status, err.description or err.name, None, allow)
        if request.path == "/admin" or request.path.startswith("/admin/"):
            from scim_server.console.render import render

            page = render("console/error.html", status=status, reason="http", error=err)
            page.headers.update(allow)
            return page
        return jsonify(error=err.name, detail=err.description), status, allow
