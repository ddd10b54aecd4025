"""The attack corpus: each defective response refused with its own logged reason, nobody signed in.

Generated responses come from builders named after the defect
(``tests/sso/saml_idp.py``); static ones are files in ``samples/`` named so.
"""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from sso.connections.models import SsoIdentityLink, SsoReplay
from sso.saml.certs import generate_sp_keypair
from tests.sso.saml_idp import (
    WS,
    FakeIdp,
    comment_injection_in_nameid,
    encrypt_assertion,
    sha1_signed,
    sign,
    signature_wrapping_attack,
    signed_by_another_key,
    tampered_after_signing,
    unsigned_assertion,
    unsolicited_bound_on_the_envelope,
    valid_response,
    xslt_transform_added,
)
from tests.support import Scim
from tests.support.dns_server import add_verified_domain
from tests.support.sso import SamlConnection, assert_refused, make_person, read, sign_ins

SAMPLES = Path(__file__).parent.parent / "samples"


@pytest.fixture
def alice(app: Flask, scim: Scim) -> str:
    """A licensed user an attacker would like to be (or to sign in as)."""
    make_person(app, scim, "admin@example.com")
    return make_person(app, scim)


def _not_signed_in(client: FlaskClient) -> None:
    with client.session_transaction() as sess:
        assert "sso" not in sess


def test_wrong_audience(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
) -> None:
    """An assertion for another service provider: wrong_audience."""
    request_id = saml_connection.start()
    assertion = saml_connection.assertion(request_id, audience="https://other-sp.example.test")
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    assert_refused(app, scim.org_id, resp, "wrong_audience")
    _not_signed_in(client)


def test_audience_prefix_is_not_enough(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp, alice: str
) -> None:
    """Audience is compared exactly: our entity id plus a suffix is refused."""
    request_id = saml_connection.start()
    audience = saml_connection.data["sp_entity_id"] + "x"
    resp = saml_connection.post(
        valid_response(saml_connection.assertion(request_id, audience=audience), saml_idp)
    )
    assert_refused(app, scim.org_id, resp, "wrong_audience")


def test_wrong_recipient(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp, alice: str
) -> None:
    """SubjectConfirmationData Recipient is another ACS: wrong_recipient."""
    request_id = saml_connection.start()
    assertion = saml_connection.assertion(
        request_id, recipient=saml_connection.data["acs_url"] + "/other"
    )
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    assert_refused(app, scim.org_id, resp, "wrong_recipient")


def test_wrong_destination(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp, alice: str
) -> None:
    """Response Destination that merely starts with our ACS URL: wrong_recipient (exact match)."""
    request_id = saml_connection.start()
    assertion = saml_connection.assertion(
        request_id, destination=saml_connection.data["acs_url"] + "-evil"
    )
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    assert_refused(app, scim.org_id, resp, "wrong_recipient")


def test_expired(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp, alice: str
) -> None:
    """An assertion past its NotOnOrAfter: expired."""
    request_id = saml_connection.start()
    assertion = saml_connection.assertion(request_id, issued=-timedelta(minutes=20))
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    assert_refused(app, scim.org_id, resp, "expired")


def test_replayed(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
) -> None:
    """The same assertion posted twice: the second is a replay."""
    request_id = saml_connection.start()
    response = valid_response(saml_connection.assertion(request_id), saml_idp)
    assert saml_connection.post(response).status_code == 303
    client.get("/sso/login")  # the session is irrelevant: the database refuses
    resp = saml_connection.post(response)
    assert_refused(app, scim.org_id, resp, "replay")


def test_replayed_idp_initiated(
    app: Flask,
    admin: Scim,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
) -> None:
    """Replay protection holds without a request id too (IdP-initiated)."""
    admin.client.patch(
        f"/api/v1/sso/connections/{saml_connection.id}",
        json={"idp_initiated_allowed": True},
        headers=admin.headers(),
    )
    response = valid_response(saml_connection.assertion(None), saml_idp)
    assert saml_connection.post(response).status_code == 303
    assert_refused(app, scim.org_id, saml_connection.post(response), "replay")


def _allow_idp_initiated(admin: Scim, saml_connection: SamlConnection) -> None:
    resp = admin.patch(
        f"/api/v1/sso/connections/{saml_connection.id}", {"idp_initiated_allowed": True}
    )
    assert resp.get_json()["idp_initiated_allowed"] is True


def test_unsolicited_assertion_bound_on_the_unsigned_envelope(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp, alice: str
) -> None:
    """IdP-initiated is off; an unsolicited assertion (no InResponseTo in it) whose unsigned
    Response names the attacker's own request is still unsolicited: state_mismatch.

    SAML Profiles §4.1.4.2/§4.1.4.3: the request binding is the InResponseTo of the bearer
    SubjectConfirmationData, inside the signed assertion; the envelope's binds nothing.
    """
    attacker = app.test_client()
    mallory = SamlConnection(saml_connection.data, attacker)
    request_id = mallory.start()
    forged = unsolicited_bound_on_the_envelope(
        saml_connection.assertion(None), saml_idp, request_id
    )
    assert "InResponseTo" not in forged.split("<saml:Assertion", 1)[1]
    resp = mallory.post(forged)
    record = assert_refused(app, scim.org_id, resp, "state_mismatch")
    assert "IdP-initiated" in (record.detail or "")
    _not_signed_in(attacker)


def test_unsolicited_assertion_bound_on_a_signed_envelope(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
) -> None:
    """Even a signed Response binds no request for an assertion without InResponseTo."""
    request_id = saml_connection.start()
    unsolicited = unsolicited_bound_on_the_envelope(
        saml_connection.assertion(None), saml_idp, request_id
    )
    resp = saml_connection.post(sign(unsolicited, saml_idp))
    assert_refused(app, scim.org_id, resp, "state_mismatch")
    _not_signed_in(client)


def test_envelope_and_assertion_name_different_requests(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
) -> None:
    """The Response names one request, the signed assertion another: state_mismatch."""
    ours, theirs = saml_connection.start(), saml_connection.start()
    assertion = saml_connection.assertion(theirs)
    signed = valid_response(assertion, saml_idp)
    resp = saml_connection.post(
        signed.replace(f'InResponseTo="{theirs}"', f'InResponseTo="{ours}"', 1)
    )
    record = assert_refused(app, scim.org_id, resp, "state_mismatch")
    assert "different requests" in (record.detail or "")
    _not_signed_in(client)


def test_envelope_request_is_ignored_for_an_idp_initiated_login(
    app: Flask,
    admin: Scim,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
) -> None:
    """IdP-initiated allowed: an assertion without InResponseTo is unsolicited whatever the
    envelope says; the named request (its next, its browser binding) is not used."""
    _allow_idp_initiated(admin, saml_connection)
    request_id = saml_connection.start(next_path="/from-the-request")
    forged = unsolicited_bound_on_the_envelope(
        saml_connection.assertion(None), saml_idp, request_id
    )
    resp = saml_connection.post(forged, relay_state="/from-the-idp")
    assert (resp.status_code, resp.headers["Location"]) == (303, "/from-the-idp")


def test_refused_unsolicited_assertion_cannot_be_retried(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
) -> None:
    """A refused unsolicited assertion is spent: posted again (its envelope bound to the
    attacker's request, or once IdP-initiated is allowed) it is a replay, nobody signed in."""
    unsolicited = saml_connection.assertion(None)
    resp = saml_connection.post(valid_response(unsolicited, saml_idp))
    assert_refused(app, scim.org_id, resp, "state_mismatch")

    attacker = app.test_client()
    mallory = SamlConnection(saml_connection.data, attacker)
    resp = mallory.post(unsolicited_bound_on_the_envelope(unsolicited, saml_idp, mallory.start()))
    assert_refused(app, scim.org_id, resp, "replay")
    _not_signed_in(attacker)

    _allow_idp_initiated(admin, saml_connection)
    resp = saml_connection.post(valid_response(unsolicited, saml_idp))
    assert_refused(app, scim.org_id, resp, "replay")
    _not_signed_in(client)
    assert [r.outcome for r in sign_ins(app, scim.org_id)] == ["failure"] * 3


@pytest.mark.parametrize("jit", [False, True], ids=["email-match", "jit"])
def test_name_id_of_several_kilobytes(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
    jit: bool,
) -> None:
    """A signed NameID of 10 KB (random, so the database cannot compress it under its index
    limit): invalid_response, no link, account or replay mark stored, and never a 500."""
    if jit:
        admin.patch(f"/api/v1/sso/connections/{saml_connection.id}", {"jit_enabled": True})
    email = "carol@example.com" if jit else "alice@example.com"
    request_id = saml_connection.start()
    assertion = saml_connection.assertion(
        request_id,
        name_id=secrets.token_hex(5000),
        attributes={WS + "emailaddress": [email]},
    )
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    record = assert_refused(app, scim.org_id, resp, "invalid_response")
    assert "NameID" in (record.detail or "")
    _not_signed_in(client)
    with read(app) as s:
        assert s.scalars(select(SsoIdentityLink)).all() == []
        assert s.scalars(select(SsoReplay)).all() == []
    assert (
        scim.get('/scim/v2/Users?filter=userName eq "carol@example.com"').get_json()["totalResults"]
        == 0
    )


def test_unsigned_assertion(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp, alice: str
) -> None:
    """No signature anywhere: unsigned."""
    request_id = saml_connection.start()
    resp = saml_connection.post(unsigned_assertion(saml_connection.assertion(request_id), saml_idp))
    assert_refused(app, scim.org_id, resp, "unsigned")


def test_signed_by_another_key(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp, alice: str
) -> None:
    """A signature by a key the connection does not trust: signature."""
    request_id = saml_connection.start()
    resp = saml_connection.post(
        signed_by_another_key(saml_connection.assertion(request_id), saml_idp)
    )
    assert_refused(app, scim.org_id, resp, "signature")


def test_tampered_after_signing(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp, alice: str
) -> None:
    """NameID changed after signing: the digest no longer matches."""
    request_id = saml_connection.start()
    response = tampered_after_signing(
        saml_connection.assertion(request_id, name_id="nobody@example.com"),
        saml_idp,
        "alice@example.com",
    )
    assert_refused(app, scim.org_id, saml_connection.post(response), "signature")


def test_signature_wrapping(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
) -> None:
    """XSW: a genuine signed assertion plus an unsigned one for the admin: refused, nobody in."""
    request_id = saml_connection.start()
    response = signature_wrapping_attack(
        saml_connection.assertion(request_id), saml_idp, victim="admin@example.com"
    )
    assert_refused(app, scim.org_id, saml_connection.post(response), "signature")
    _not_signed_in(client)


def test_comment_injection_in_nameid(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
) -> None:
    """A comment splitting the signed NameID (still a valid signature): xml_attack."""
    request_id = saml_connection.start()
    response = comment_injection_in_nameid(saml_connection.assertion(request_id), saml_idp)
    assert "<!---->" in response
    assert_refused(app, scim.org_id, saml_connection.post(response), "xml_attack")
    _not_signed_in(client)


def test_sha1_signature(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp, alice: str
) -> None:
    """RSA-SHA1 with a SHA-1 digest: deprecated_algorithm."""
    request_id = saml_connection.start()
    resp = saml_connection.post(sha1_signed(saml_connection.assertion(request_id), saml_idp))
    assert_refused(app, scim.org_id, resp, "deprecated_algorithm")


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        ("xxe_doctype.xml", "xml_attack"),
        ("billion_laughs.xml", "xml_attack"),
        ("transform_bomb.xml", "xml_attack"),
        ("xpath_transform.xml", "xml_attack"),
    ],
)
def test_static_attack_samples(
    app: Flask, scim: Scim, saml_connection: SamlConnection, alice: str, sample: str, reason: str
) -> None:
    """DOCTYPE/XXE, entity expansion and XSLT/XPath transforms are refused before xmlsec runs."""
    resp = saml_connection.post((SAMPLES / sample).read_text())
    assert_refused(app, scim.org_id, resp, reason)


def _laughs_in(encoding: str, declared: str | None = None) -> bytes:
    """The billion-laughs sample in another encoding, its declaration naming ``declared``."""
    text = (SAMPLES / "billion_laughs.xml").read_text()
    text = text.replace('<?xml version="1.0"?>', f'<?xml version="1.0" encoding="{declared}"?>')
    return text.encode(encoding)


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (_laughs_in("utf-16", "UTF-16"), "UTF-16"),  # with its byte order mark
        (_laughs_in("utf-16-be", "UTF-16"), "UTF-16"),  # without one
        (_laughs_in("utf-32", "UTF-32"), "UTF-32"),
        (_laughs_in("utf-8", "ISO-8859-1"), "ISO-8859-1"),
        (_laughs_in("cp500", "IBM500"), "EBCDIC"),
    ],
    ids=["utf-16-bom", "utf-16-be", "utf-32", "declared-latin-1", "ebcdic"],
)
def test_xml_in_another_encoding_than_utf8_is_refused_before_parsing(
    app: Flask,
    scim: Scim,
    saml_connection: SamlConnection,
    alice: str,
    monkeypatch: Any,
    raw: bytes,
    named: str,
) -> None:
    """The DOCTYPE refusal reads the bytes as ASCII: in UTF-16 or UTF-32 the billion laughs
    slipped past it and lxml expanded entities up to libxml2's amplification limit (logged
    as invalid_response). Every IdP we target sends UTF-8: anything else is refused as
    xml_attack, the parser never called. Found by a probe."""
    from sso.saml import xml_guard

    def boom(*_a: Any, **_k: Any) -> None:
        raise AssertionError("the XML parser was reached")

    monkeypatch.setattr(xml_guard.etree, "fromstring", boom)
    resp = saml_connection.client.post(
        saml_connection.acs_path, data={"SAMLResponse": base64.b64encode(raw).decode()}
    )
    record = assert_refused(app, scim.org_id, resp, "xml_attack")
    assert named in (record.detail or "")


def test_transform_bomb_never_reaches_xmlsec(
    app: Flask, scim: Scim, saml_connection: SamlConnection, alice: str, monkeypatch: Any
) -> None:
    """The XSLT sample is refused without python3-saml (and so xmlsec) being called."""
    from sso.saml import sp as saml

    def boom(*_a: Any, **_k: Any) -> None:
        raise AssertionError("python3-saml was reached")

    monkeypatch.setattr(saml, "OneLogin_Saml2_Response", boom)
    resp = saml_connection.post((SAMPLES / "transform_bomb.xml").read_text())
    assert_refused(app, scim.org_id, resp, "xml_attack")


def test_oversized_response(
    app: Flask, scim: Scim, saml_connection: SamlConnection, alice: str
) -> None:
    """A SAMLResponse over the size cap: too_large, not parsed."""
    big = "<samlp:Response>" + "x" * 300_000 + "</samlp:Response>"
    assert_refused(app, scim.org_id, saml_connection.post(big), "too_large")


def test_not_base64(
    app: Flask, scim: Scim, client: FlaskClient, saml_connection: SamlConnection
) -> None:
    """Garbage in SAMLResponse: invalid_response, a 400 page and no 500."""
    resp = client.post(saml_connection.acs_path, data={"SAMLResponse": "%%%not base64%%%"})
    assert_refused(app, scim.org_id, resp, "invalid_response")


def test_unknown_acs_path(client: FlaskClient) -> None:
    """A POST to an ACS path no connection has: 404 page, nothing recorded."""
    resp = client.post("/sso/saml/nope/acs", data={"SAMLResponse": "x"})
    assert resp.status_code == 404 and resp.mimetype == "text/html"


def test_acs_does_not_answer_get(client: FlaskClient, saml_connection: SamlConnection) -> None:
    """The ACS takes the HTTP-POST binding only: a SAMLResponse in a URL is 405."""
    assert client.get(saml_connection.acs_path + "?SAMLResponse=x").status_code == 405


def test_encrypted_assertion_for_another_key(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """An assertion encrypted for another SP's key cannot be read: invalid_response."""
    make_person(app, scim)
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    assert admin.patch(url, {"want_encrypted_assertions": True}).status_code == 200
    other = generate_sp_keypair("https://other-sp.example.test")[1]
    response = valid_response(saml_connection.assertion(saml_connection.start()), saml_idp)
    resp = saml_connection.post(encrypt_assertion(response, other))
    assert_refused(app, scim.org_id, resp, "invalid_response")


def test_cdata_split_name_id_is_read_whole(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """Comment injection's idea with CDATA (canonicalization keeps the signature valid): the
    NameID is read whole, never as admin@example.com."""
    make_person(app, scim, "admin@example.com")
    a = saml_connection.assertion(
        saml_connection.start(), name_id="admin@example.com.evil.test", attributes={}
    )
    xml = valid_response(a, saml_idp).replace(
        ">admin@example.com.evil.test<", ">admin@example.com<![CDATA[.evil.test]]><"
    )
    record = assert_refused(app, scim.org_id, saml_connection.post(xml), "email_domain_not_allowed")
    assert record.subject == "admin@example.com.evil.test"


def test_another_connection_of_the_same_idp(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """One IdP behind two connections: A's assertion at B's ACS is wrong_recipient, and an
    answer to B's request posted at A is state_mismatch."""
    make_person(app, scim)
    made = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Partner", "metadata_xml": saml_idp.metadata_xml()},
    )
    b = SamlConnection(made.get_json(), client)
    resp = b.post(valid_response(saml_connection.assertion(saml_connection.start()), saml_idp))
    assert_refused(app, scim.org_id, resp, "wrong_recipient")
    resp = saml_connection.post(valid_response(saml_connection.assertion(b.start()), saml_idp))
    assert_refused(app, scim.org_id, resp, "state_mismatch")


def test_connection_without_certificate_accepts_nothing(
    app: Flask, admin: Scim, client: FlaskClient, scim: Scim
) -> None:
    """A connection made without IdP metadata trusts no key: any response is invalid_config."""
    make_person(app, scim)
    made = admin.post("/api/v1/sso/connections", {"protocol": "saml", "name": "Half"})
    conn = SamlConnection(made.get_json(), client)
    add_verified_domain(admin, "example.com", conn.id)
    admin.patch(f"/api/v1/sso/connections/{conn.id}", {"idp_initiated_allowed": True})
    resp = conn.post(valid_response(conn.assertion(None), FakeIdp(key_name="rogue")))
    assert_refused(app, scim.org_id, resp, "invalid_config")


def test_idp_error_status_in_a_signed_response(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """A non-success StatusCode is the IdP's refusal: idp_error."""
    a = saml_connection.assertion(saml_connection.start())
    xml = valid_response(a, saml_idp).replace("status:Success", "status:Responder", 1)
    assert_refused(app, scim.org_id, saml_connection.post(xml), "idp_error")


def test_refusals_never_sign_in(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp, alice: str
) -> None:
    """After a refused attempt the user's last login is untouched and a record says failure."""
    request_id = saml_connection.start()
    saml_connection.post(unsigned_assertion(saml_connection.assertion(request_id), saml_idp))
    assert [r.outcome for r in sign_ins(app, scim.org_id)] == ["failure"]


def test_comment_injection_inside_encrypted_assertion(
    app: Flask,
    admin: Scim,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
) -> None:
    """Inside an encrypted assertion the comment cannot cut the NameID: the whole value is read."""
    admin.patch(
        f"/api/v1/sso/connections/{saml_connection.id}", {"want_encrypted_assertions": True}
    )
    request_id = saml_connection.start()
    assertion = saml_connection.assertion(
        request_id, name_id="alice@example.com.evil.test", attributes={}
    )
    injected = comment_injection_in_nameid(assertion, saml_idp, cut="alice@example.com")
    assert "alice@example.com<!---->.evil.test" in injected
    encrypted = encrypt_assertion(injected, saml_connection.data["sp_certificate"])
    record = assert_refused(
        app, scim.org_id, saml_connection.post(encrypted), "email_domain_not_allowed"
    )
    assert record.subject == "alice@example.com.evil.test" and record.user_id is None


def test_transform_bomb_inside_encrypted_assertion(
    app: Flask,
    admin: Scim,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    alice: str,
) -> None:
    """The decrypted assertion is checked again: an XSLT transform hidden by encryption is refused."""
    admin.patch(
        f"/api/v1/sso/connections/{saml_connection.id}", {"want_encrypted_assertions": True}
    )
    request_id = saml_connection.start()
    response = xslt_transform_added(valid_response(saml_connection.assertion(request_id), saml_idp))
    encrypted = encrypt_assertion(response, saml_connection.data["sp_certificate"])
    # Hidden: the transform's URI ("-" is no base64 character, so the ciphertext never
    # spells it; a bare "xslt" it did once in a while).
    assert "REC-xslt" in response and "REC-xslt" not in encrypted
    assert_refused(app, scim.org_id, saml_connection.post(encrypted), "xml_attack")
