"""A connection pointed at another IdP: the old IdP's identity links go. A subject names a
person only within its IdP (OIDC Core §2, §5.7: iss and sub; SAML Core §8.3.7: a
persistent NameID qualified by its IdP): after a change of issuer or entity id the new
IdP's ``user-42`` entered the account the old IdP's ``user-42`` had been linked to."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import AuditEvent
from tests.sso.oidc_op.provider import LocalOP, running_op
from tests.sso.saml_idp import FakeIdp
from tests.support import Scim
from tests.support.sso import (
    SamlConnection,
    make_person,
    oidc_login,
    read,
    saml_as,
    session_user,
)


def _removed_links(app: Flask, org_id: str, action: str) -> Any:
    with read(app) as s:
        event = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.org_id == org_id, AuditEvent.action == action)
            .order_by(AuditEvent.seq.desc())
        ).first()
    assert event is not None
    return (event.changes or {}).get("identity_links_removed")


def test_a_new_oidc_issuer_does_not_inherit_the_old_issuers_links(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
) -> None:
    """Alice signed in through issuer A as ``user-42``; the connection now trusts issuer B,
    whose ``user-42`` is Bob: Bob signs in to Bob's account (bound again by his verified
    e-mail), not Alice's; the change's event says how many links went."""
    alice = make_person(app, scim, "alice@example.com")
    bob = make_person(app, scim, "bob@example.com")
    assert oidc_login(client, oidc_conn).status_code == 303
    assert session_user(client) == alice
    with running_op() as other:
        other.user.update(sub="user-42", email="bob@example.com", name="Bob", given_name="Bob")
        resp = admin.patch(f"/api/v1/sso/connections/{oidc_conn['id']}", {"issuer": other.issuer})
        assert resp.status_code == 200, resp.get_json()
        assert _removed_links(app, scim.org_id, "sso.connection.update") == 1
        browser = app.test_client()
        assert oidc_login(browser, oidc_conn).status_code == 303
        assert session_user(browser) == bob


def test_new_saml_idp_metadata_does_not_inherit_the_old_idps_links(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """Alice signed in through IdP A as NameID P-0001; the metadata of IdP B (another entity
    id) is uploaded, where P-0001 is Bob: Bob lands in his own account. New metadata of the
    same IdP (a certificate rollover) keeps the links."""
    alice = make_person(app, scim, "alice@example.com")
    bob = make_person(app, scim, "bob@example.com")
    assert saml_as(saml_connection, saml_idp, client, "P-0001", "alice@example.com").status_code
    assert session_user(client) == alice

    def upload(idp: FakeIdp) -> None:
        resp = admin.client.post(
            f"/api/v1/sso/connections/{saml_connection.id}/metadata",
            data=idp.metadata_xml(),
            headers=admin.headers({"Content-Type": "application/xml"}),
        )
        assert resp.status_code == 200, resp.get_json()

    upload(saml_idp)
    assert _removed_links(app, scim.org_id, "sso.connection.metadata") is None
    idp_b = FakeIdp(entity_id="https://idp-b.example.test/metadata", key_name="idp-b")
    upload(idp_b)
    assert _removed_links(app, scim.org_id, "sso.connection.metadata") == 1
    browser = app.test_client()
    assert saml_as(saml_connection, idp_b, browser, "P-0001", "bob@example.com").status_code == 303
    assert session_user(browser) == bob
