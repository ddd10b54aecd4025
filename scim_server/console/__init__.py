"""The admin console in the browser (``/admin``): server-rendered pages over the services.

An endpoint layer like the admin API (``scim_server.admin``): views parse a
form, call one service function, render a template. One parent blueprint
(``blueprint.bp``: sign-in, idle timeout, CSRF, permissions, error pages) holds
one child blueprint per console area (``areas``); templates live under
``templates/console/<area>/``.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """CSRF protection and the console's blueprints; ``/`` leads to the console."""
    from scim_server.console import areas
    from scim_server.console.blueprint import root
    from scim_server.console.render import ACTION_LABELS, STATUS_LABELS
    from scim_server.csrf import csrf

    csrf.init_app(app)
    # Macros are imported without the page's context: what they need is a global.
    app.jinja_env.globals["STATUS_LABELS"] = STATUS_LABELS
    app.jinja_env.globals["ACTION_LABELS"] = ACTION_LABELS
    app.register_blueprint(areas.bp)
    app.register_blueprint(root)
