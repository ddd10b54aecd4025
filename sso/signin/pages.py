"""The pages a person sees during sign-in: login by e-mail, refusals, test results.

Rendered from ``scim_server/templates/signin/`` (the one look of every page,
``base.html``), escaped, never cached, under a CSP with no inline script or
style. A refusal page says what to do, never why a signature failed: that
detail is in the sign-in records for the admin.
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, render_template

from sso.errors import SsoError

HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
Page = tuple[str, int, dict[str, str]]


def render_page(template: str, status: int = 200, **context: Any) -> Page:
    """One person-facing page: the product's name (and the organization's, when known) on it."""
    context.setdefault("org_name", None)
    html = render_template(template, product_name=current_app.config["PRODUCT_NAME"], **context)
    return html, status, dict(HTML_HEADERS)


def message_page(
    title: str, *paragraphs: str, status: int = 200, back: str | None = "/sso/login"
) -> Page:
    """A page that only tells the person something (and where to go back)."""
    return render_page("signin/message.html", status, title=title, paragraphs=paragraphs, back=back)


def login_page(
    next_path: str, email: str = "", problem: str | None = None, status: int = 200
) -> Page:
    return render_page(
        "signin/login.html", status, next_path=next_path, email=email, problem=problem
    )


def refusal_page(err: SsoError) -> Page:
    return message_page(err.title, err.message, status=err.status)


def unavailable_page() -> Page:
    """503: our database is unreachable for a moment (an outage or a restart)."""
    return message_page(
        "Sign-in unavailable",
        "We cannot complete sign-ins for a moment. Please try again in a few seconds.",
        status=503,
    )


def test_result_page(result: dict[str, Any]) -> Page:
    """Test mode: what the IdP sent and what the rules would make of it (nobody is created)."""
    return render_page(
        "signin/test_result.html",
        connection=result.get("connection", ""),
        decision=json.dumps(result.get("decision") or {}, indent=2, ensure_ascii=False),
        attributes=json.dumps(result.get("attributes"), indent=2, ensure_ascii=False),
        mapping=json.dumps(result.get("mapping"), indent=2, ensure_ascii=False, default=str),
    )
