"""The console's areas: each a child blueprint of ``blueprint.bp``, attached once at import.

A blueprint can be registered on several apps (tests build many) but gains
children only before its first registration, so they are attached here, once
per process, not in ``init_app``. A new area adds its module to ``AREAS``.
"""

from __future__ import annotations

from scim_server.console import (
    access_admin,
    billing,
    contacts,
    directory,
    home,
    imports,
    log,
    oidc_clients,
    reports,
    rules,
    settings,
    signins,
    sso,
    tokens,
    user_credentials,
    user_profile,
    users,
)
from scim_server.console.blueprint import bp

# the profile's routes are on the users area's blueprint
assert user_profile.bp is user_credentials.bp is users.bp
AREAS = (
    home.bp,
    users.bp,
    contacts.bp,
    imports.bp,
    directory.bp,
    billing.bp,
    sso.bp,
    rules.bp,
    log.bp,
    signins.bp,
    reports.bp,
    settings.bp,
    tokens.bp,
    oidc_clients.bp,
    access_admin.bp,
)

for _area in AREAS:
    bp.register_blueprint(_area)
