"""Values the SSO admin API refuses with a 400 that creates or changes nothing.

Its bodies are read as strictly as every admin body (``common.json_object``: no
lone surrogate, no NUL, which no column holds); a metadata URL that cannot even
be parsed (a port past 65535, a broken IPv6 literal, a host name IDNA cannot
encode) is a ``MetadataError``, as a URL that is not https is; a domain's
``connection_id`` is a string id or null.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from sso.connections.models import SsoConnection, SsoEmailDomain
from tests.support import Scim
from tests.support.admin_api import ok


def _count(session: Any, model: Any, org_id: str) -> int:
    session.rollback()
    stmt = select(func.count()).select_from(model).where(model.org_id == org_id)
    return int(session.scalar(stmt))


def _send(admin: Scim, url: str, raw: str, method: str = "POST") -> Any:
    """The body exactly as written: JSON escapes a client may send that Python would not."""
    headers = admin.headers({"Content-Type": "application/json"})
    return admin.client.open(url, method=method, data=raw.encode(), headers=headers)


@pytest.mark.parametrize(
    "raw",
    [
        '{"protocol": "saml", "name": "\\ud800"}',
        '{"protocol": "saml", "sp_entity_id": "urn:x:\\ud800"}',
        '{"protocol": "saml", "name": "a\\u0000b"}',
        '{"protocol": "saml", "metadata_url": "https://idp.example.com:99999/m"}',
        '{"protocol": "saml", "metadata_url": "https://[::1/m"}',
        '{"protocol": "saml", "metadata_url": "https://a..b.example/m"}',
    ],
)
def test_create_refuses_what_cannot_be_stored_or_fetched(admin, session, raw):
    """POST /sso/connections: 400 in the admin error body; no connection."""
    before = _count(session, SsoConnection, admin.org_id)
    resp = _send(admin, "/api/v1/sso/connections", raw)
    assert resp.status_code == 400
    assert set(resp.get_json()) >= {"error", "detail"}
    assert _count(session, SsoConnection, admin.org_id) == before


def test_rename_to_a_lone_surrogate_is_400_and_keeps_the_name(admin):
    """PATCH /sso/connections/<id>: 400; the connection keeps its name."""
    conn = ok(admin.post("/api/v1/sso/connections", {"protocol": "saml", "name": "S"}), 201)
    url = f"/api/v1/sso/connections/{conn['id']}"
    resp = _send(admin, url, '{"name": "\\ud800"}', method="PATCH")
    assert resp.status_code == 400
    assert ok(admin.get(url))["name"] == "S"


def test_a_body_that_is_not_a_json_object_is_400(admin, session):
    """An array, or broken JSON, is refused as every admin body is."""
    before = _count(session, SsoConnection, admin.org_id)
    assert _send(admin, "/api/v1/sso/connections", '["saml"]').status_code == 400
    assert _send(admin, "/api/v1/sso/connections", '{"protocol": ').status_code == 400
    assert _count(session, SsoConnection, admin.org_id) == before


@pytest.mark.parametrize("connection_id", [["x"], {"id": "x"}, 2**70, 7, True])
def test_a_domain_connection_id_of_the_wrong_type_is_400(admin, session, connection_id):
    """POST /sso/domains: 400 naming connection_id; no domain."""
    resp = admin.post(
        "/api/v1/sso/domains", {"domain": "example.org", "connection_id": connection_id}
    )
    assert resp.status_code == 400
    assert "connection_id" in resp.get_json()["detail"]
    assert _count(session, SsoEmailDomain, admin.org_id) == 0


def test_a_domain_of_an_unknown_connection_is_404(admin, session):
    """A string that names no connection of the organization is a 404, as before."""
    resp = admin.post("/api/v1/sso/domains", {"domain": "example.org", "connection_id": "nope"})
    assert resp.status_code == 404
    assert _count(session, SsoEmailDomain, admin.org_id) == 0
