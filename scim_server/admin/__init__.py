"""The organization admin API (``/api/v1``), authenticated with admin tokens.

One blueprint (``blueprint.bp``); each ``*_api`` module adds the routes of
one resource to it. ``init_app`` is the one place that lists them all.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Import every admin view module (each adds its routes to ``bp``) and register ``bp``."""
    from scim_server.admin import (  # noqa: F401  (each adds its routes to bp)
        accounts_api,
        audit_api,
        billing_api,
        contacts_api,
        credentials_api,
        events_api,
        jobs_api,
        licenses_api,
        mail_api,
        mfa_api,
        roles_api,
        rule_sets_api,
        settings_api,
        tokens_api,
        webhooks_api,
    )
    from scim_server.admin.blueprint import bp
    from scim_server.admin.openapi import bp as docs

    app.register_blueprint(bp)
    app.register_blueprint(docs)  # /api/v1/openapi.json, no token needed
