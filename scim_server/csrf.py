"""CSRF protection for the pages a person uses with a cookie (console, sign-in forms).

Flask-WTF's ``CSRFProtect`` with its app-wide check turned off
(``WTF_CSRF_CHECK_DEFAULT = False``): the SCIM and admin JSON APIs authenticate
with bearer tokens, never cookies, so a forged cross-site request carries
nothing they trust. The console checks every unsafe request itself (a form's
``csrf_token`` field, or htmx's ``X-CSRFToken`` header set on ``<body>``); a sign-in
form calls ``check_csrf`` the same way. Not for the SAML ACS, which the IdP posts
cross-site by design (its own state and signatures protect it).
"""

from __future__ import annotations

from flask import request
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_csrf() -> None:
    """Refuse (``CSRFError``, 400) an unsafe request without this session's token."""
    if request.method not in SAFE_METHODS:
        csrf.protect()
