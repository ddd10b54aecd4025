"""The console's areas: each a child blueprint of ``blueprint.bp``, attached once at import.

A blueprint can be registered on several apps (tests build many) but gains
children only before its first registration, so they are attached here, once
per process, not in ``init_app``. A new area adds its module to ``AREAS``.
"""

from __future__ import annotations

from scim_server.console import home, imports, log, reports, rules, signins, sso
from scim_server.console.blueprint import bp

AREAS = (home.bp, imports.bp, sso.bp, rules.bp, log.bp, signins.bp, reports.bp)

for _area in AREAS:
    bp.register_blueprint(_area)
