"""``organization_contact_id`` is an organization contact's id, or null for none.

An empty string is neither: it is refused with a 400 (by the API's schema, and by
services.directory for any other caller) rather than read as "no organization",
so a client that meant to clear the link sends null, as the OpenAPI says.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from scim_server.errors import InvalidValueError
from scim_server.models import Contact
from scim_server.services import directory
from tests.support.admin_api import ok


def _count(session, org_id: str) -> int:
    session.rollback()
    stmt = select(func.count()).select_from(Contact).where(Contact.org_id == org_id)
    return int(session.scalar(stmt))


def test_create_with_an_empty_organization_contact_id_is_400(admin, session):
    """POST /contacts: 400 naming the field; no contact."""
    before = _count(session, admin.org_id)
    resp = admin.post(
        "/api/v1/contacts", {"kind": "person", "name": "Zed", "organization_contact_id": ""}
    )
    assert resp.status_code == 400
    assert list(resp.get_json()["detail"]) == ["organization_contact_id"]
    assert _count(session, admin.org_id) == before


def test_patch_with_an_empty_organization_contact_id_is_400_and_keeps_the_link(admin):
    """PATCH /contacts/<id>: 400; the contact still belongs to its organization."""
    company = ok(admin.post("/api/v1/contacts", {"kind": "organization", "name": "Acme"}), 201)
    body = {"kind": "person", "name": "Ann", "organization_contact_id": company["id"]}
    contact = ok(admin.post("/api/v1/contacts", body), 201)
    resp = admin.patch(f"/api/v1/contacts/{contact['id']}", {"organization_contact_id": ""})
    assert resp.status_code == 400
    kept = ok(admin.get(f"/api/v1/contacts/{contact['id']}"))
    assert kept["organization_contact_id"] == company["id"]


def test_null_clears_the_organization(admin):
    """null is how a client says "no organization"."""
    company = ok(admin.post("/api/v1/contacts", {"kind": "organization", "name": "Acme"}), 201)
    body = {"kind": "person", "name": "Ann", "organization_contact_id": company["id"]}
    contact = ok(admin.post("/api/v1/contacts", body), 201)
    cleared = ok(
        admin.patch(f"/api/v1/contacts/{contact['id']}", {"organization_contact_id": None})
    )
    assert cleared["organization_contact_id"] is None


@pytest.mark.parametrize("value", ["", 7])
def test_the_service_refuses_what_is_not_an_id(admin, session, value):
    """services.directory checks it for every caller, before the foreign key would."""
    before = _count(session, admin.org_id)
    session.rollback()
    with pytest.raises(InvalidValueError):
        directory.create_contact(
            session, admin.org_id, "person", "Zed", {"organization_contact_id": value}
        )
    assert _count(session, admin.org_id) == before
