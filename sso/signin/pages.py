"""The few HTML pages a person sees during SSO: login by e-mail, refusals, test results.

Plain HTML, escaped, never cached. A refusal page says what to do, never why
a signature failed: that detail is in the sign-in records for the admin.
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup, escape

from sso.errors import SsoError

HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
}
Page = tuple[str, int, dict[str, str]]


def _page(title: str, body: Markup, status: int = 200) -> Page:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;"
        "padding:0 1rem}input{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}"
        "button{font-size:1rem;padding:.4rem 1rem;margin-top:.6rem}pre{overflow:auto;"
        "background:#f4f4f4;padding:.6rem}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return html, status, dict(HTML_HEADERS)


def login_page(
    next_path: str, email: str = "", problem: str | None = None, status: int = 200
) -> Page:
    notice = Markup("<p role='alert'>{}</p>").format(problem) if problem else Markup("")
    form = Markup(
        "{}<form method='post' action='/sso/login'>"
        "<label for='email'>Work e-mail address</label>"
        "<input id='email' name='email' type='email' autocomplete='username' required value='{}'>"
        "<input type='hidden' name='next' value='{}'>"
        "<button type='submit'>Continue</button></form>"
        "<p>You will be sent to your organization's sign-in page.</p>"
    ).format(notice, email, next_path)
    return _page("Sign in", form, status)


def refusal_page(err: SsoError) -> Page:
    body = Markup("<p>{}</p><p><a href='/sso/login'>Back to sign-in</a></p>").format(err.message)
    return _page(err.title, body, err.status)


def unavailable_page() -> Page:
    """503: our database is unreachable for a moment (an outage or a restart)."""
    body = Markup(
        "<p>We cannot complete sign-ins for a moment. Please try again in a few seconds.</p>"
        "<p><a href='/sso/login'>Back to sign-in</a></p>"
    )
    return _page("Sign-in unavailable", body, 503)


def signed_in_page(name: str) -> Page:
    return _page("Signed in", Markup("<p>You are signed in as {}.</p>").format(name))


def test_result_page(result: dict[str, Any]) -> Page:
    """Test mode: what the IdP sent and what the rules would make of it (nobody is created)."""
    outcome = result.get("decision") or {}
    body = Markup(
        "<p>Test sign-in through <strong>{}</strong>. Nobody was signed in or created.</p>"
        "<h2>Decision</h2><pre>{}</pre>"
        "<h2>Attributes received</h2><pre>{}</pre>"
        "<h2>Mapping result</h2><pre>{}</pre>"
    ).format(
        result.get("connection", ""),
        json.dumps(outcome, indent=2, ensure_ascii=False),
        json.dumps(result.get("attributes"), indent=2, ensure_ascii=False),
        json.dumps(result.get("mapping"), indent=2, ensure_ascii=False, default=str),
    )
    return _page("SSO connection test", body)
