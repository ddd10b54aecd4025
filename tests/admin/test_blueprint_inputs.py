"""NUL in an admin API URL is a 400 before any lookup, on every ``/api/v1`` blueprint.

PostgreSQL text cannot hold NUL: an id or filter with one would fail in the driver.
The admin blueprint's ``authenticate`` refuses it first (as ``scim.auth`` does for
SCIM), ahead of the token lookup, so no query and no refusal event carry it; the SSO
admin blueprint shares the hook (``install_admin_hooks``). Same answer on SQLite.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from scim_server.models import AuditEvent


@pytest.mark.parametrize(
    "method,url",
    [
        ("GET", "/api/v1/users/a%00b"),
        ("DELETE", "/api/v1/users/a%00b"),
        ("GET", "/api/v1/contacts/a%00b"),
        ("DELETE", "/api/v1/webhooks/a%00b"),
        ("PATCH", "/api/v1/licenses/a%00b"),
        ("GET", "/api/v1/audit/timeline/a%00b"),
        ("GET", "/api/v1/audit?action=a%00b"),
        ("GET", "/api/v1/audit?user_name=a%00b"),
        ("GET", "/api/v1/audit?action=x&action=a%00b"),  # a repeated key's later value too
        ("GET", "/api/v1/sso/sign-ins?reason_code=a%00b"),
        ("GET", "/api/v1/sso/connections/a%00b"),
        ("DELETE", "/api/v1/sso/domains/a%00b.example"),
    ],
)
def test_nul_in_the_url_is_400_and_logs_nothing(admin, session, method, url):
    """400 with the admin error body; the log is as it was (no refusal event with a NUL)."""
    before = session.scalar(select(func.count()).select_from(AuditEvent))
    session.rollback()
    resp = admin.client.open(url, method=method, headers=admin.headers(), json={})
    assert resp.status_code == 400
    assert resp.get_json() == {
        "error": "InvalidValueError",
        "detail": "NUL characters are not allowed in the URL.",
    }
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == before
