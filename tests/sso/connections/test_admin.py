"""The SSO admin API (/api/v1/sso): connections, certificates, domains, SP metadata, records."""

from __future__ import annotations

from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from scim_server.services.tokens import create_token
from tests.sso.saml_idp import WS, FakeIdp, valid_response
from tests.support import Scim
from tests.support.admin_api import admin_of, ok
from tests.support.dns_server import add_verified_domain
from tests.support.sso import SamlConnection, assert_refused, events, make_person, read

MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"


def _admin_of(app: Flask, client: FlaskClient, org: Scim) -> Scim:
    with read(app) as s:
        _token, secret = create_token(s, org.org_id, "admin", kind="admin")
    return Scim(client, secret, org.org_id)


def test_requires_an_admin_token(client: FlaskClient, scim: Scim) -> None:
    """No token, or a SCIM token: 401."""
    assert client.get("/api/v1/sso/connections").status_code == 401
    assert scim.get("/api/v1/sso/connections").status_code == 401


def test_saml_connection_from_metadata(
    app: Flask, admin: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """Created from IdP metadata: IdP settings, URLs to paste, certificate expiry, no secrets."""
    data = saml_connection.data
    assert data["protocol"] == "saml" and data["enabled"] and not data["jit_enabled"]
    assert data["idp_entity_id"] == saml_idp.entity_id
    assert data["idp_sso_url"] == saml_idp.sso_url
    assert data["acs_url"] == f"http://localhost/sso/saml/{data['id']}/acs"
    assert data["sp_entity_id"] == f"http://localhost/sso/saml/{data['id']}"
    assert data["sp_metadata_url"].endswith(f"/sso/saml/{data['id']}/metadata")
    [cert] = data["certificates"]
    assert cert["days_left"] > 300 and cert["expired"] is False and len(cert["fingerprint"]) == 64
    assert "pem" not in cert
    assert "PRIVATE KEY" not in str(admin.get(f"/api/v1/sso/connections/{data['id']}").get_json())
    event = events(app, admin.org_id, "sso.connection.")[0]
    assert (event.action, event.resource_id) == ("sso.connection.create", data["id"])


def test_oidc_connection_never_returns_the_secret(app: Flask, admin: Scim) -> None:
    """client_secret is write-only: the view says it is set, the audit says it changed."""
    resp = admin.post(
        "/api/v1/sso/connections",
        {
            "protocol": "oidc",
            "name": "Okta",
            "issuer": "https://acme.okta.com",
            "client_id": "0oa1",
            "client_secret": "s3cret-value",
        },
    )
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["client_secret_set"] is True and "client_secret" not in body
    assert body["redirect_uri"] == f"http://localhost/sso/oidc/{body['id']}/callback"
    listed = admin.get("/api/v1/sso/connections").get_data(as_text=True)
    assert "s3cret-value" not in listed
    audit = admin.get("/api/v1/audit?action=sso.connection.create").get_data(as_text=True)
    assert "s3cret-value" not in audit


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"protocol": "ldap"}, 400),
        ({"protocol": "oidc", "issuer": "http://acme.example.com", "client_id": "x"}, 400),
        ({"protocol": "oidc", "issuer": "https://acme.example.com"}, 400),
        ({"protocol": "saml", "enabled": "yes"}, 400),
        ({"protocol": "saml", "sp_private_key": "x"}, 400),
        ({"protocol": "saml", "metadata_xml": "<not-metadata/>"}, 400),
    ],
)
def test_bad_connection_is_refused(app: Flask, admin: Scim, body: dict, status: int) -> None:
    """Invalid settings: 400 with a detail, nothing created."""
    resp = admin.post("/api/v1/sso/connections", body)
    assert resp.status_code == status and resp.get_json()["detail"]
    assert admin.get("/api/v1/sso/connections").get_json()["connections"] == []


def test_connections_are_per_organization(
    app: Flask, client: FlaskClient, other_scim: Scim, saml_connection: SamlConnection
) -> None:
    """Another organization's admin cannot read, change or delete the connection."""
    other = _admin_of(app, client, other_scim)
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    assert other.get(url).status_code == 404
    assert other.patch(url, {"enabled": False}).status_code == 404
    assert other.delete(url).status_code == 404
    assert other.get("/api/v1/sso/connections").get_json()["connections"] == []


def test_certificate_rotation(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """A second IdP certificate is trusted alongside the first; removing the old one ends it."""
    make_person(app, scim)
    new_idp = FakeIdp(key_name="idp-next")
    url = f"/api/v1/sso/connections/{saml_connection.id}/certificates"
    resp = admin.post(url, {"pem": new_idp.cert})
    assert resp.status_code == 201 and resp.get_json()["days_left"] > 300
    assert admin.post(url, {"pem": new_idp.cert}).status_code == 409
    listed = admin.get(url).get_json()["certificates"]
    assert len(listed) == 2
    for idp in (saml_idp, new_idp):
        request_id = saml_connection.start()
        resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), idp))
        assert resp.status_code == 303, resp.get_data(as_text=True)
    assert admin.delete(f"{url}/{listed[0]['fingerprint']}").status_code == 204
    request_id = saml_connection.start()
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert_refused(app, scim.org_id, resp, "signature")
    assert admin.post(url, {"pem": "not a certificate"}).status_code == 400


def test_metadata_import_as_xml_body(admin: Scim, saml_idp: FakeIdp) -> None:
    """IdP metadata uploaded as an XML body, with two signing certificates (rotation)."""
    conn = admin.post("/api/v1/sso/connections", {"protocol": "saml"}).get_json()
    assert conn["certificates"] == [] and conn["idp_sso_url"] is None
    xml = saml_idp.metadata_xml(extra_certs=(FakeIdp(key_name="idp-next").cert,))
    resp = admin.client.post(
        f"/api/v1/sso/connections/{conn['id']}/metadata",
        data=xml,
        headers={**admin.headers(), "Content-Type": "application/xml"},
    )
    assert resp.status_code == 200, resp.get_json()
    assert len(resp.get_json()["certificates"]) == 2
    assert resp.get_json()["idp_entity_id"] == saml_idp.entity_id


def test_metadata_with_doctype_is_refused(admin: Scim, saml_idp: FakeIdp) -> None:
    """Uploaded metadata with a DOCTYPE (XXE) is refused with a clear detail."""
    conn = admin.post("/api/v1/sso/connections", {"protocol": "saml"}).get_json()
    xml = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + saml_idp.metadata_xml()[21:]
    resp = admin.post(f"/api/v1/sso/connections/{conn['id']}/metadata", {"xml": xml})
    assert resp.status_code == 400 and "DOCTYPE" in resp.get_json()["detail"]


def test_sp_metadata_export(
    client: FlaskClient, admin: Scim, saml_connection: SamlConnection
) -> None:
    """SP metadata (public URL and admin API): entity id, ACS URL, signed requests, our key."""
    for resp in (
        client.get(f"/sso/saml/{saml_connection.id}/metadata"),
        admin.get(f"/api/v1/sso/connections/{saml_connection.id}/sp-metadata"),
    ):
        assert resp.status_code == 200 and resp.mimetype == "application/samlmetadata+xml"
        root = etree.fromstring(resp.data)
        assert root.get("entityID") == saml_connection.data["sp_entity_id"]
        sp = root.find(f"{MD}SPSSODescriptor")
        assert (sp.get("AuthnRequestsSigned"), sp.get("WantAssertionsSigned")) == ("true", "true")
        acs = sp.find(f"{MD}AssertionConsumerService")
        assert acs.get("Location") == saml_connection.data["acs_url"]
        assert b"X509Certificate" in resp.data and b"PRIVATE" not in resp.data


def test_custom_acs_path_and_refusals(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """A custom ACS path works; the same path again, or one of our own routes, is "not
    available" (409, one message); a malformed one is 400; a path that merely starts with
    another's is fine (routing and Destination/Recipient are exact)."""
    make_person(app, scim)
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    resp = admin.patch(url, {"acs_path": "/sso/saml/acme-corp"})
    assert resp.status_code == 200 and resp.get_json()["acs_url"].endswith("/sso/saml/acme-corp")
    saml_connection.data = resp.get_json()
    other = admin.post("/api/v1/sso/connections", {"protocol": "saml"}).get_json()
    other_url = f"/api/v1/sso/connections/{other['id']}"
    for path in ("/sso/saml/acme-corp", "/sso/saml/x/metadata", "/sso/saml/x/start"):
        resp = admin.patch(other_url, {"acs_path": path})
        assert resp.status_code == 409, path
        assert resp.get_json()["detail"] == "This ACS path is not available; choose another."
    for path in ("/elsewhere", "/sso/saml/../admin", "/sso/saml/x//y", ""):
        resp = admin.patch(other_url, {"acs_path": path})
        assert resp.status_code == 400, path
    for path in ("/sso/saml/acme", "/sso/saml/acme-corp/x"):
        assert admin.patch(other_url, {"acs_path": path}).status_code == 200, path
    # The connection at /sso/saml/acme-corp still gets its own responses, beside /acme-corp/x.
    request_id = saml_connection.start()
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert resp.status_code == 303, resp.get_data(as_text=True)


def test_another_organizations_acs_paths_do_not_show_through_prefix_probing(
    scim: Scim, other_scim: Scim
) -> None:
    """A's admin sets its own connection's acs_path to every prefix of B's: no answer
    differs, so B's connection id (or custom path) cannot be read one character at a time."""
    a, b = admin_of(scim), admin_of(other_scim)
    theirs = ok(b.post("/api/v1/sso/connections", {"protocol": "saml"}), 201)
    mine = ok(a.post("/api/v1/sso/connections", {"protocol": "saml"}), 201)
    url = f"/api/v1/sso/connections/{mine['id']}"
    alphabet = "0123456789abcdef-"
    found = ""
    while len(found) < 36:
        for c in alphabet:
            resp = a.patch(url, {"acs_path": f"/sso/saml/{found}{c}"})
            if resp.status_code == 409:
                found += c
                break
        else:
            break
    assert found != theirs["id"], "B's connection id was recovered through A's acs_path checks"
    assert found == ""


def test_a_prefix_taken_by_another_organization_blocks_no_custom_path(
    scim: Scim, other_scim: Scim
) -> None:
    """A's custom path ``/sso/saml/acme`` leaves B free to take ``/sso/saml/acme-corp`` (and
    A ``/sso/saml/acme/x`` under B's): routing to an ACS is by exact path."""
    a, b = admin_of(scim), admin_of(other_scim)
    mine = ok(a.post("/api/v1/sso/connections", {"protocol": "saml"}), 201)
    theirs = ok(b.post("/api/v1/sso/connections", {"protocol": "saml"}), 201)
    ok(a.patch(f"/api/v1/sso/connections/{mine['id']}", {"acs_path": "/sso/saml/acme"}))
    resp = b.patch(f"/api/v1/sso/connections/{theirs['id']}", {"acs_path": "/sso/saml/acme-corp"})
    assert resp.status_code == 200, (resp.status_code, resp.get_json())
    assert resp.get_json()["acs_url"].endswith("/sso/saml/acme-corp")


def test_another_organizations_exact_acs_path_is_refused_without_saying_whose(
    scim: Scim, other_scim: Scim
) -> None:
    """The one clash across organizations (the unique index): 409 in the words of any
    unusable path, naming no connection; B's connection keeps its path."""
    a, b = admin_of(scim), admin_of(other_scim)
    theirs = ok(b.post("/api/v1/sso/connections", {"protocol": "saml"}), 201)
    ok(b.patch(f"/api/v1/sso/connections/{theirs['id']}", {"acs_path": "/sso/saml/acme"}))
    mine = ok(a.post("/api/v1/sso/connections", {"protocol": "saml"}), 201)
    taken = a.patch(f"/api/v1/sso/connections/{mine['id']}", {"acs_path": "/sso/saml/acme"})
    reserved = a.patch(f"/api/v1/sso/connections/{mine['id']}", {"acs_path": "/sso/saml/a/start"})
    assert taken.status_code == reserved.status_code == 409
    assert taken.get_json() == reserved.get_json()
    assert taken.get_json()["detail"] == "This ACS path is not available; choose another."
    created = a.post("/api/v1/sso/connections", {"protocol": "saml", "acs_path": "/sso/saml/acme"})
    assert (created.status_code, created.get_json()) == (409, taken.get_json())
    assert ok(b.get(f"/api/v1/sso/connections/{theirs['id']}"))["acs_url"].endswith(
        "/sso/saml/acme"
    )


def test_an_acs_path_taken_during_the_save_gets_the_same_answer(
    app: Flask, admin: Scim, other_scim: Scim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two saves of one path at once: the check passes both, the unique index refuses the
    later one, which answers 409 "not available" (not a 500) and changes nothing."""
    from sso.connections import service

    b = admin_of(other_scim)
    theirs = ok(b.post("/api/v1/sso/connections", {"protocol": "saml"}), 201)
    ok(b.patch(f"/api/v1/sso/connections/{theirs['id']}", {"acs_path": "/sso/saml/acme"}))
    mine = ok(admin.post("/api/v1/sso/connections", {"protocol": "saml"}), 201)
    monkeypatch.setattr(service, "_acs_path_taken", lambda *_args: False)
    resp = admin.patch(f"/api/v1/sso/connections/{mine['id']}", {"acs_path": "/sso/saml/acme"})
    assert resp.status_code == 409, resp.get_data(as_text=True)
    assert resp.get_json()["detail"] == "This ACS path is not available; choose another."
    assert ok(admin.get(f"/api/v1/sso/connections/{mine['id']}"))["acs_url"].endswith(
        f"/sso/saml/{mine['id']}/acs"
    )


def test_email_domains(app: Flask, client: FlaskClient, admin: Scim, other_scim: Scim) -> None:
    """Domains: normalised, verified by one organization only, validated, removable."""
    assert add_verified_domain(admin, "Example.COM.")["domain"] == "example.com"
    assert admin.post("/api/v1/sso/domains", {"domain": "example.com"}).status_code == 409
    other = _admin_of(app, client, other_scim)
    assert other.post("/api/v1/sso/domains", {"domain": "example.com"}).status_code == 409
    for bad in ("not a domain", "com", "*.example.com", "a..b", 42):
        assert admin.post("/api/v1/sso/domains", {"domain": bad}).status_code == 400, bad
    resp = admin.post("/api/v1/sso/domains", {"domain": "x.example", "connection_id": "nope"})
    assert resp.status_code == 404
    assert [d["domain"] for d in admin.get("/api/v1/sso/domains").get_json()["domains"]] == [
        "example.com"
    ]
    assert other.delete("/api/v1/sso/domains/example.com").status_code == 404
    assert admin.delete("/api/v1/sso/domains/example.com").status_code == 204
    assert admin.get("/api/v1/sso/domains").get_json()["domains"] == []


def test_sign_in_records_api(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """The debugger: newest first, precise reason and detail, filters and a cursor."""
    make_person(app, scim, licensed=False)
    for _ in range(3):
        request_id = saml_connection.start()
        saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    resp = admin.get(f"/api/v1/sso/sign-ins?connection_id={saml_connection.id}&limit=2")
    body = resp.get_json()
    assert len(body["sign_ins"]) == 2 and body["next_cursor"]
    first = body["sign_ins"][0]
    assert (first["outcome"], first["reason_code"]) == ("failure", "missing_license")
    assert "license" in first["detail"] and first["email"] == "alice@example.com"
    rest = admin.get(f"/api/v1/sso/sign-ins?limit=2&cursor={body['next_cursor']}").get_json()
    assert len(rest["sign_ins"]) == 1 and rest["next_cursor"] is None
    assert admin.get("/api/v1/sso/sign-ins?outcome=success").get_json()["sign_ins"] == []


def test_disabling_a_connection_records_when_and_enabling_it_keeps_that(
    admin: Scim, saml_connection: SamlConnection
) -> None:
    """``disabled_at``: none until the connection is first disabled, then the moment of its
    latest disabling, kept when it is enabled again (the sessions it made before that stay
    over: ``sso.signin.session.connection_open``). A rename or a disable of a disabled
    connection leaves it."""
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    assert saml_connection.data["disabled_at"] is None
    assert ok(admin.patch(url, {"name": "Entra"}))["disabled_at"] is None
    first = ok(admin.patch(url, {"enabled": False}))["disabled_at"]
    assert first is not None
    assert ok(admin.patch(url, {"enabled": False, "name": "Entra ID"}))["disabled_at"] == first
    back = ok(admin.patch(url, {"enabled": True}))
    assert back["enabled"] and back["disabled_at"] == first
    assert ok(admin.get(url))["disabled_at"] == first
    second = ok(admin.patch(url, {"enabled": False}))["disabled_at"]
    assert datetime.fromisoformat(second) > datetime.fromisoformat(first)


def test_delete_connection(admin: Scim, saml_connection: SamlConnection) -> None:
    """Deleting a connection unbinds its pending claims and its ACS stops answering."""
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    assert admin.delete("/api/v1/sso/domains/example.com").status_code == 204
    pending = admin.post(
        "/api/v1/sso/domains", {"domain": "pending.test", "connection_id": saml_connection.id}
    )
    assert pending.status_code == 201
    assert admin.delete(url).status_code == 204
    [domain] = admin.get("/api/v1/sso/domains").get_json()["domains"]
    assert (domain["domain"], domain["connection_id"], domain["verified"]) == (
        "pending.test",
        None,
        False,
    )
    resp = saml_connection.client.post(saml_connection.acs_path, data={"SAMLResponse": "x"})
    assert resp.status_code == 404


def test_delete_refused_while_a_verified_domain_is_bound(
    app: Flask, admin: Scim, client: FlaskClient, scim: Scim, saml_connection: SamlConnection
) -> None:
    """example.com is bound to the employees' IdP: deleting it would leave the domain bound to
    none, open to the partner's IdP (ceo@example.com). 409 naming the domain; nothing changes,
    and the partner's IdP is still refused."""
    ceo = make_person(app, scim, "ceo@example.com")
    partner_idp = FakeIdp(
        entity_id="https://partner.example.test/metadata",
        sso_url="https://partner.example.test/sso",
        key_name="partner",
    )
    made = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Partner", "metadata_xml": partner_idp.metadata_xml()},
    )
    partner = SamlConnection(made.get_json(), app.test_client())
    resp = admin.delete(f"/api/v1/sso/connections/{saml_connection.id}")
    assert resp.status_code == 409, resp.get_json()
    detail = resp.get_json()["detail"]
    assert "example.com" in detail and "another connection or remove them" in detail
    assert admin.get(f"/api/v1/sso/connections/{saml_connection.id}").status_code == 200
    [domain] = admin.get("/api/v1/sso/domains").get_json()["domains"]
    assert domain["connection_id"] == saml_connection.id and domain["verified"] is True
    assert not [
        e for e in events(app, admin.org_id, "sso.connection.delete") if e.outcome == "success"
    ]
    assertion = partner.assertion(
        partner.start(),
        name_id="ceo@example.com",
        issuer=partner_idp.entity_id,
        attributes={WS + "emailaddress": ["ceo@example.com"]},
    )
    partner.post(valid_response(assertion, partner_idp))
    with partner.client.session_transaction() as sess:
        assert (sess.get("sso") or {}).get("user_id") != ceo


def test_oidc_create_with_metadata_is_refused_and_stores_nothing(admin: Scim) -> None:
    """POST {protocol: oidc, ..., metadata_xml}: 400 (metadata is for SAML), no connection."""
    resp = admin.post(
        "/api/v1/sso/connections",
        {
            "protocol": "oidc",
            "name": "Should not exist",
            "issuer": "https://login.example.test",
            "client_id": "abc",
            "metadata_xml": FakeIdp().metadata_xml(),
        },
    )
    assert resp.status_code == 400, resp.get_json()
    assert "for SAML connections" in resp.get_json()["detail"]
    assert admin.get("/api/v1/sso/connections").get_json()["connections"] == []


def test_saml_create_with_bad_metadata_stores_nothing(admin: Scim) -> None:
    """Metadata that does not parse is refused before the connection is created."""
    resp = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Bad", "metadata_xml": "<nope"},
    )
    assert resp.status_code == 400, resp.get_json()
    assert admin.get("/api/v1/sso/connections").get_json()["connections"] == []


def test_update_refuses_other_protocol_fields(admin: Scim, saml_connection: SamlConnection) -> None:
    """OIDC fields on a SAML connection (and unknown fields) are refused."""
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    assert admin.patch(url, {"issuer": "https://x.example.com"}).status_code == 400
    assert admin.patch(url, {"colour": "blue"}).status_code == 400
    assert admin.patch(url, {"name": ""}).status_code == 400


def test_sign_in_and_link_queries_are_checked_by_their_schemas(admin):
    """A limit that is no number, or below 1, is a 400 in the admin API's error shape."""
    for query in ("limit=abc", "limit=0"):
        resp = admin.get(f"/api/v1/sso/sign-ins?{query}")
        assert resp.status_code == 400
        assert (
            resp.get_json()["error"] == "invalid_request" and "limit" in resp.get_json()["detail"]
        )
    assert admin.get("/api/v1/sso/sign-ins?limit=100000").status_code == 200


@pytest.mark.parametrize(
    ("method", "url", "body", "action", "status"),
    [
        ("POST", "/api/v1/sso/connections", {"protocol": "bogus"}, "sso.connection.create", 400),
        ("PATCH", "/api/v1/sso/connections/nope", {"enabled": False}, "sso.connection.update", 404),
        ("DELETE", "/api/v1/sso/connections/nope", None, "sso.connection.delete", 404),
        (
            "POST",
            "/api/v1/sso/connections/nope/metadata",
            {"xml": "<not-metadata/>"},
            "sso.connection.metadata",
            400,
        ),
        (
            "POST",
            "/api/v1/sso/connections/nope/certificates",
            {"pem": 42},
            "sso.certificate.add",
            400,
        ),
        (
            "DELETE",
            "/api/v1/sso/connections/nope/certificates/ab12",
            None,
            "sso.certificate.remove",
            404,
        ),
        ("POST", "/api/v1/sso/connections/nope/test", None, "sso.connection.test", 404),
        ("POST", "/api/v1/sso/domains", {"domain": "not a domain"}, "sso.domain.add", 400),
        ("POST", "/api/v1/sso/domains/nobody.example/verify", None, "sso.domain.verify", 404),
        ("DELETE", "/api/v1/sso/domains/nobody.example", None, "sso.domain.remove", 404),
        (
            "DELETE",
            "/api/v1/sso/connections/nope/links/someone",
            None,
            "sso.identity_unlinked",
            404,
        ),
    ],
)
def test_a_refused_change_is_in_the_log(
    app: Flask, admin: Scim, method: str, url: str, body: dict | None, action: str, status: int
) -> None:
    """Every refused change of the admin API is evidence ("someone tried ... and was told
    no"), the SSO blueprint's too: recorded as a failure of the action its success records."""
    if body is None:
        resp = admin.client.open(url, method=method, headers=admin.headers(None))
    else:
        resp = admin.client.open(url, method=method, json=body, headers=admin.headers(None))
    assert resp.status_code == status, resp.get_json()
    [event] = [e for e in events(app, admin.org_id, "sso.") if e.outcome == "failure"]
    assert (event.action, event.status, event.actor_type) == (action, status, "admin")
    assert event.detail == resp.get_json()["detail"]


def test_every_change_of_the_blueprint_names_its_action(app: Flask) -> None:
    """A write route of /api/v1/sso without ``@audited`` would leave its refusals unlogged."""
    from scim_server.admin.common import audit_action

    writes = [
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("sso_admin.")
        and (rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}
    ]
    assert len(writes) == 11
    with app.app_context():
        assert [e for e in writes if audit_action(e) is None] == []
