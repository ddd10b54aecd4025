"""The allow-list of e-mail domains when an organization has several connections.

A verified domain bound to a connection may be asserted only by that connection
(employees on Entra, a partner's Okta in the same organization: the partner's IdP
must not reach ceo@example.com by the e-mail fallback); a domain bound to none
stays organization-wide. SAML and OIDC alike, test mode too.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.sso.oidc_op.provider import LocalOP
from tests.sso.saml_idp import WS, FakeIdp, valid_response
from tests.support import Scim
from tests.support.dns_server import add_verified_domain
from tests.support.sso import (
    SamlConnection,
    assert_refused,
    make_person,
    oidc_login,
    start_test_login,
)

PARTNER = FakeIdp(
    entity_id="https://partner.example.test/metadata",
    sso_url="https://partner.example.test/sso",
    key_name="partner",
)


def _saml_connection(admin: Scim, client: FlaskClient, name: str, idp: FakeIdp) -> SamlConnection:
    resp = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": name, "metadata_xml": idp.metadata_xml()},
    )
    assert resp.status_code == 201, resp.get_json()
    return SamlConnection(resp.get_json(), client)


def _saml_login(
    app: Flask, conn: SamlConnection, idp: FakeIdp, email: str
) -> tuple[Any, str | None]:
    """A complete SP-initiated login in a new browser: the answer and who it signed in."""
    browser = SamlConnection(conn.data, app.test_client())
    assertion = browser.assertion(
        browser.start(),
        name_id=email,
        issuer=idp.entity_id,
        attributes={WS + "emailaddress": [email]},
    )
    resp = browser.post(valid_response(assertion, idp))
    with browser.client.session_transaction() as sess:
        return resp, (sess.get("sso") or {}).get("user_id")


def test_a_domain_bound_to_a_connection_is_refused_from_another(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """example.com is bound to Entra: the partner's IdP asserting ceo@example.com is refused
    as an address outside the allow-list; Entra still signs the CEO in."""
    ceo = make_person(app, scim, "ceo@example.com")
    partner = _saml_connection(admin, client, "Partner Okta", PARTNER)

    resp, signed_in = _saml_login(app, partner, PARTNER, "ceo@example.com")
    record = assert_refused(app, scim.org_id, resp, "email_domain_not_allowed")
    assert (record.connection_id, record.user_id, signed_in) == (partner.id, None, None)

    resp, signed_in = _saml_login(app, saml_connection, saml_idp, "ceo@example.com")
    assert resp.status_code == 303 and signed_in == ceo


@pytest.mark.parametrize("where", ["name_id", "upn"])
def test_an_address_bound_to_another_connection_selects_no_account(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    where: str,
) -> None:
    """The partner asserts its own (allowed) e-mail, but ceo@example.com as the NameID or
    the userName (UPN): the userName fallback would reach the CEO; refused the same way."""
    ceo = make_person(app, scim, "ceo@example.com")
    partner = _saml_connection(admin, client, "Partner Okta", PARTNER)
    add_verified_domain(admin, "partner.test", partner.id)
    browser = SamlConnection(partner.data, app.test_client())
    attributes = {WS + "emailaddress": ["mallory@partner.test"]}
    if where == "upn":
        attributes[WS + "upn"] = ["ceo@example.com"]
    assertion = browser.assertion(
        browser.start(),
        name_id="ceo@example.com" if where == "name_id" else "00u-mallory",
        issuer=PARTNER.entity_id,
        attributes=attributes,
    )
    resp = browser.post(valid_response(assertion, PARTNER))
    record = assert_refused(app, scim.org_id, resp, "email_domain_not_allowed")
    assert record.user_id is None
    with browser.client.session_transaction() as sess:
        assert (sess.get("sso") or {}).get("user_id") != ceo


def test_a_domain_bound_to_no_connection_is_allowed_from_every_one(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """example.net, verified with no connection: either IdP may assert its addresses."""
    add_verified_domain(admin, "example.net")
    bob = make_person(app, scim, "bob@example.net")
    partner = _saml_connection(admin, client, "Partner Okta", PARTNER)
    for conn, idp in ((saml_connection, saml_idp), (partner, PARTNER)):
        resp, signed_in = _saml_login(app, conn, idp, "bob@example.net")
        assert (resp.status_code, signed_in) == (303, bob), resp.get_data(as_text=True)


def test_test_mode_shows_the_refusal(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
) -> None:
    """A test login through the partner's connection previews the same refusal."""
    make_person(app, scim, "ceo@example.com")
    partner = _saml_connection(admin, client, "Partner Okta", PARTNER)
    request_id = start_test_login(admin, client, partner.id)
    assertion = partner.assertion(
        request_id,
        name_id="ceo@example.com",
        issuer=PARTNER.entity_id,
        attributes={WS + "emailaddress": ["ceo@example.com"]},
    )
    resp = partner.post(valid_response(assertion, PARTNER))
    assert resp.status_code == 200
    assert "email_domain_not_allowed" in resp.get_data(as_text=True)


def test_oidc_is_refused_for_a_domain_bound_to_another_connection(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
) -> None:
    """example.org is bound to a SAML connection: the OIDC connection may not assert it;
    example.com (bound to none, the fixture's) it may."""
    saml = _saml_connection(admin, client, "Entra ID", FakeIdp())
    add_verified_domain(admin, "example.org", saml.id)
    make_person(app, scim, "carol@example.org")
    local_op.user.update(sub="00u-carol", email="carol@example.org", email_verified=True)
    record = assert_refused(
        app, scim.org_id, oidc_login(client, oidc_conn), "email_domain_not_allowed"
    )
    assert (record.connection_id, record.user_id) == (oidc_conn["id"], None)

    make_person(app, scim, "dave@example.com")
    local_op.user.update(sub="00u-dave", email="dave@example.com")
    assert oidc_login(app.test_client(), oidc_conn).status_code == 303
