"""A local SAML identity provider for tests: metadata and signed responses, no network.

Responses are signed with a key generated here (python3-saml's ``add_sign``,
i.e. xmlsec), so every check of the service provider runs for real. Attack
builders are named after the defect they carry, like python3-saml's
invalid-response fixtures.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from xml.sax.saxutils import escape, quoteattr

from onelogin.saml2.utils import OneLogin_Saml2_Utils

from sso.saml.certs import generate_sp_keypair, pem_body

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
NS = (
    'xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
    'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
)
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
WS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"


@cache
def idp_keypair(name: str = "idp") -> tuple[str, str]:
    """One key pair per name for the whole test session (RSA generation is slow)."""
    return generate_sp_keypair(f"https://{name}.example.test")


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeIdp:
    entity_id: str = "https://idp.example.test/metadata"
    sso_url: str = "https://idp.example.test/sso"
    key_name: str = "idp"

    @property
    def key(self) -> str:
        return idp_keypair(self.key_name)[0]

    @property
    def cert(self) -> str:
        return idp_keypair(self.key_name)[1]

    def metadata_xml(self, extra_certs: tuple[str, ...] = ()) -> str:
        """Entra/Okta-style IdP metadata: entity id, HTTP-Redirect SSO URL, signing certificates."""
        keys = "".join(
            '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
            f"{pem_body(c)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
            for c in (self.cert, *extra_certs)
        )
        return (
            '<?xml version="1.0"?>'
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{self.entity_id}">'
            '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            f"{keys}"
            '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
            f'Location="{self.sso_url}/post"/>'
            '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
            f'Location="{self.sso_url}"/>'
            "</md:IDPSSODescriptor></md:EntityDescriptor>"
        )


@dataclass
class Assertion:
    """What the IdP asserts; every field can be bent to build a defective response."""

    acs_url: str
    audience: str
    name_id: str = "alice@example.com"
    name_id_format: str = EMAIL_FORMAT
    attributes: dict[str, list[str]] = field(
        default_factory=lambda: {
            WS + "emailaddress": ["alice@example.com"],
            WS + "givenname": ["Alice"],
            WS + "surname": ["Liddell"],
        }
    )
    in_response_to: str | None = None
    issuer: str = "https://idp.example.test/metadata"
    recipient: str | None = None  # default: acs_url
    destination: str | None = None  # default: acs_url
    valid_for: timedelta = timedelta(minutes=5)
    issued: timedelta = timedelta(0)  # offset from now (negative: in the past)
    assertion_id: str = field(default_factory=lambda: "_a" + uuid.uuid4().hex)
    response_id: str = field(default_factory=lambda: "_r" + uuid.uuid4().hex)

    def assertion_xml(self) -> str:
        now = datetime.now(UTC) + self.issued
        until = now + self.valid_for
        irt = f' InResponseTo="{self.in_response_to}"' if self.in_response_to else ""
        attrs = "".join(
            f"<saml:Attribute Name={quoteattr(name)}>"
            + "".join(f"<saml:AttributeValue>{escape(v)}</saml:AttributeValue>" for v in values)
            + "</saml:Attribute>"
            for name, values in self.attributes.items()
        )
        return (
            f'<saml:Assertion {NS} ID="{self.assertion_id}" Version="2.0" '
            f'IssueInstant="{_time(now)}">'
            f"<saml:Issuer>{escape(self.issuer)}</saml:Issuer>"
            f'<saml:Subject><saml:NameID Format="{self.name_id_format}">'
            f"{escape(self.name_id)}</saml:NameID>"
            '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
            f'<saml:SubjectConfirmationData NotOnOrAfter="{_time(until)}" '
            f"Recipient={quoteattr(self.recipient or self.acs_url)}{irt}/>"
            "</saml:SubjectConfirmation></saml:Subject>"
            f'<saml:Conditions NotBefore="{_time(now - timedelta(minutes=1))}" '
            f'NotOnOrAfter="{_time(until)}"><saml:AudienceRestriction>'
            f"<saml:Audience>{escape(self.audience)}</saml:Audience>"
            "</saml:AudienceRestriction></saml:Conditions>"
            f'<saml:AuthnStatement AuthnInstant="{_time(now)}" SessionIndex="_s{uuid.uuid4().hex}">'
            "<saml:AuthnContext><saml:AuthnContextClassRef>"
            "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
            + (f"<saml:AttributeStatement>{attrs}</saml:AttributeStatement>" if attrs else "")
            + "</saml:Assertion>"
        )

    def response_xml(self, assertion: str) -> str:
        now = datetime.now(UTC) + self.issued
        irt = f' InResponseTo="{self.in_response_to}"' if self.in_response_to else ""
        return (
            f'<samlp:Response {NS} ID="{self.response_id}" Version="2.0" '
            f'IssueInstant="{_time(now)}" Destination={quoteattr(self.destination or self.acs_url)}{irt}>'
            f"<saml:Issuer>{escape(self.issuer)}</saml:Issuer>"
            '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
            f"</samlp:Status>{assertion}</samlp:Response>"
        )


def sign(xml: str, idp: FakeIdp, alg: str = RSA_SHA256, digest: str = SHA256) -> str:
    signed = OneLogin_Saml2_Utils.add_sign(xml, idp.key, idp.cert, False, alg, digest)
    return signed.decode() if isinstance(signed, bytes) else signed


def _strip_declaration(xml: str) -> str:
    return xml.split("?>", 1)[1] if xml.startswith("<?xml") else xml


def valid_response(a: Assertion, idp: FakeIdp) -> str:
    """A response as Entra sends it: the assertion signed, the envelope not."""
    return a.response_xml(_strip_declaration(sign(a.assertion_xml(), idp)))


def fully_signed_response(a: Assertion, idp: FakeIdp) -> str:
    """Assertion and Response both signed (as Okta can be configured)."""
    return sign(valid_response(a, idp), idp)


def unsigned_assertion(a: Assertion, idp: FakeIdp) -> str:
    return a.response_xml(a.assertion_xml())


def sha1_signed(a: Assertion, idp: FakeIdp) -> str:
    return a.response_xml(_strip_declaration(sign(a.assertion_xml(), idp, RSA_SHA1, SHA1)))


def signed_by_another_key(a: Assertion, idp: FakeIdp) -> str:
    return valid_response(a, FakeIdp(key_name="rogue"))


def unsolicited_bound_on_the_envelope(a: Assertion, idp: FakeIdp, request_id: str) -> str:
    """A signed unsolicited assertion (no InResponseTo) in a Response naming ``request_id``.

    Entra (and Okta by default) sign the assertion only: anyone holding one edits the
    envelope without breaking a signature.
    """
    assert a.in_response_to is None
    signed = _strip_declaration(sign(a.assertion_xml(), idp))
    return replace(a, in_response_to=request_id).response_xml(signed)


def signature_wrapping_attack(a: Assertion, idp: FakeIdp, victim: str) -> str:
    """XSW: the genuine signed assertion kept, an unsigned one for ``victim`` placed first."""
    genuine = _strip_declaration(sign(a.assertion_xml(), idp))
    evil = Assertion(
        **{**a.__dict__, "name_id": victim, "assertion_id": "_evil" + uuid.uuid4().hex}
    )
    return a.response_xml(evil.assertion_xml() + genuine)


def comment_injection_in_nameid(a: Assertion, idp: FakeIdp, cut: str | None = None) -> str:
    """CVE-2017-11427 style: a comment splits the signed NameID (c14n ignores comments).

    ``cut`` is the prefix a vulnerable parser would read as the whole NameID.
    """
    signed = valid_response(a, idp)
    prefix = cut or a.name_id.split(".")[0]
    rest = a.name_id.removeprefix(prefix)
    return signed.replace(f">{a.name_id}<", f">{prefix}<!---->{rest}<", 1)


def xslt_transform_added(response: str) -> str:
    """The transform bomb of python3-saml issue #447, put into a real signature."""
    xslt = (
        '<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116">'
        '<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0">'
        '<xsl:template match="/"><x/></xsl:template></xsl:stylesheet></ds:Transform>'
    )
    marker = "<ds:Transforms>"
    assert marker in response
    return response.replace(marker, marker + xslt, 1)


def tampered_after_signing(a: Assertion, idp: FakeIdp, victim: str) -> str:
    return valid_response(a, idp).replace(f">{a.name_id}<", f">{victim}<", 1)


def encode(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()


def encrypt_assertion(response: str, sp_certificate: str) -> str:
    """Wrap the (signed) assertion in EncryptedAssertion, encrypted for the SP (AES-128, RSA-OAEP)."""
    import xmlsec
    from lxml import etree

    root = etree.fromstring(response.encode())
    ns = {"saml": "urn:oasis:names:tc:SAML:2.0:assertion"}
    assertion = root.find("saml:Assertion", ns)
    wrapper = etree.Element(f"{{{ns['saml']}}}EncryptedAssertion", nsmap={"saml": ns["saml"]})
    assertion.addprevious(wrapper)
    wrapper.append(assertion)
    manager = xmlsec.KeysManager()
    manager.add_key(
        xmlsec.Key.from_memory(sp_certificate.encode(), xmlsec.constants.KeyDataFormatCertPem)
    )
    template = xmlsec.template.encrypted_data_create(
        wrapper,
        xmlsec.constants.TransformAes128Cbc,
        type=xmlsec.constants.TypeEncElement,
        ns="xenc",
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    context = xmlsec.EncryptionContext(manager)
    context.key = xmlsec.Key.generate(
        xmlsec.constants.KeyDataAes, 128, xmlsec.constants.KeyDataTypeSession
    )
    context.encrypt_xml(template, assertion)
    return etree.tostring(root).decode()
