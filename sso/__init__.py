"""Single sign-on: people sign in through their organization's IdP; the product through us.

Subpackages: ``saml`` (the SAML service provider), ``oidc`` (the OpenID Connect
relying party), ``signin`` (what a verified login leads to: the decision,
linking, JIT, the session, pages, test mode), ``connections`` (the IdP
connections: models, service, admin API, CLI, secrets), ``provider`` (the
OpenID Connect provider the product signs in with), ``recovery`` (forgot
password, the pages of mailed activation and reset links). ``views`` holds the
browser endpoints under ``/sso``.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Everything SSO adds to the app: its state, the OIDC provider, the blueprints."""
    # Imported here: the protocol modules stay importable without the web layer.
    from sso import extension, views
    from sso.connections import admin
    from sso.local import enrolment, security  # noqa: F401  (their pages join the local blueprint)
    from sso.local import views as local_views
    from sso.provider import endpoints
    from sso.recovery import views as recovery_views

    extension.install(app)
    endpoints.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(local_views.bp)
    app.register_blueprint(recovery_views.bp)
