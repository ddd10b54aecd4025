"""SAML 2.0 service provider: the only module that imports onelogin (python3-saml).

python3-saml runs in strict mode with signed assertions required, deprecated
algorithms refused and AuthnRequests signed. Around it we add what it does
loosely or not at all: XML checks before xmlsec runs (``sso.saml.xml_guard``),
exact Destination / Recipient / Audience comparison (it uses prefix and
substring tests), and one error type. It reports failures two ways (raises
for some, records others for ``get_error()``); ``verify_response`` checks
both and raises one ``SsoError``. No database and no Flask here: request ids
and replay are the caller's (``sso.saml.flow``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from sso.errors import SsoError
from sso.saml import xml_guard
from sso.saml.certs import SIGNIN_MIN_RSA_BITS, pem_body, rsa_key_bits

SAMLP = xml_guard.SAMLP
SAML = xml_guard.SAML
NS = {"samlp": SAMLP, "saml": SAML}
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
# base64 of MAX_RESPONSE_BYTES, plus line breaks some IdPs insert.
MAX_ENCODED = xml_guard.MAX_RESPONSE_BYTES * 4 // 3 + 4096
MAX_ATTRIBUTE_VALUES = 2000
# The NameID is the key of its identity link (a btree index: PostgreSQL refuses entries over
# about 2.7 KB). Counted in UTF-8 bytes so the bound holds whatever the script; e-mail
# addresses, UPNs and persistent ids (SAML Core §8.3.7: at most 256 characters) fit.
MAX_NAME_ID_BYTES = 1024

V = OneLogin_Saml2_ValidationError
# python3-saml's error codes onto ours (the rest: invalid_response).
REASONS = {
    V.WRONG_AUDIENCE: "wrong_audience",
    V.WRONG_DESTINATION: "wrong_recipient",
    V.EMPTY_DESTINATION: "wrong_recipient",
    V.ASSERTION_EXPIRED: "expired",
    V.ASSERTION_TOO_EARLY: "expired",
    V.SESSION_EXPIRED: "expired",
    V.NO_SIGNED_ASSERTION: "unsigned",
    V.NO_SIGNED_MESSAGE: "unsigned",
    V.NO_SIGNATURE_FOUND: "unsigned",
    V.INVALID_SIGNATURE: "signature",
    V.WRONG_SIGNED_ELEMENT: "signature",
    V.INVALID_SIGNED_ELEMENT: "signature",
    V.UNEXPECTED_SIGNED_ELEMENTS: "signature",
    V.DUPLICATED_ID_IN_SIGNED_ELEMENTS: "signature",
    V.DUPLICATED_REFERENCE_IN_SIGNED_ELEMENTS: "signature",
    V.ID_NOT_FOUND_IN_SIGNED_ELEMENT: "signature",
    V.WRONG_NUMBER_OF_SIGNATURES_IN_RESPONSE: "signature",
    V.WRONG_NUMBER_OF_SIGNATURES_IN_ASSERTION: "signature",
    V.WRONG_NUMBER_OF_SIGNATURES: "signature",
    V.WRONG_NUMBER_OF_ASSERTIONS: "signature",
    V.DEPRECATED_SIGNATURE_METHOD: "deprecated_algorithm",
    V.DEPRECATED_DIGEST_METHOD: "deprecated_algorithm",
    V.WRONG_ISSUER: "wrong_issuer",
    V.ISSUER_MULTIPLE_IN_RESPONSE: "wrong_issuer",
    V.ISSUER_NOT_FOUND_IN_ASSERTION: "wrong_issuer",
    V.WRONG_INRESPONSETO: "state_mismatch",
    V.STATUS_CODE_IS_NOT_SUCCESS: "idp_error",
}


@dataclass(frozen=True)
class SamlConfig:
    """One SAML connection as python3-saml needs it; certificates in PEM."""

    sp_entity_id: str
    acs_url: str
    sp_certificate: str
    sp_private_key: str = field(repr=False)
    idp_entity_id: str | None = None
    idp_sso_url: str | None = None
    idp_certificates: tuple[str, ...] = ()
    want_encrypted_assertions: bool = False


@dataclass(frozen=True)
class SamlAssertion:
    """A verified assertion: who, what the IdP says about them, and how to stop its replay."""

    name_id: str
    name_id_format: str | None
    attributes: dict[str, list[str]]
    assertion_id: str
    response_id: str | None
    in_response_to: str | None  # from the signed SubjectConfirmationData
    not_on_or_after: datetime  # keep the assertion id until then (replay cache)
    issuer: str
    session_index: str | None
    # SAML Core §2.7.2: AuthnStatement/@SessionNotOnOrAfter, the IdP's upper bound on the
    # session we start (ADFS, Shibboleth; Okta with a session policy); None: no bound.
    session_not_on_or_after: datetime | None = None


def _settings(cfg: SamlConfig, *, sp_only: bool = False) -> OneLogin_Saml2_Settings:
    data: dict[str, Any] = {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": cfg.sp_entity_id,
            "assertionConsumerService": {"url": cfg.acs_url, "binding": C.BINDING_HTTP_POST},
            "NameIDFormat": UNSPECIFIED,
            "x509cert": pem_body(cfg.sp_certificate),
            "privateKey": cfg.sp_private_key,
        },
        "security": {
            "authnRequestsSigned": True,
            "wantAssertionsSigned": True,
            "wantMessagesSigned": False,  # Entra signs the assertion only, by default
            "wantAssertionsEncrypted": cfg.want_encrypted_assertions,
            "wantNameId": True,
            "wantNameIdEncrypted": False,
            "wantAttributeStatement": False,
            "allowRepeatAttributeName": True,
            "rejectDeprecatedAlgorithm": True,
            "signatureAlgorithm": C.RSA_SHA256,
            "digestAlgorithm": C.SHA256,
            # No RequestedAuthnContext: asking for "password" breaks MFA and passwordless at Entra.
            "requestedAuthnContext": False,
            "signMetadata": False,
        },
    }
    if not sp_only:
        data["idp"] = {
            "entityId": cfg.idp_entity_id or "",
            "singleSignOnService": {
                "url": cfg.idp_sso_url or "",
                "binding": C.BINDING_HTTP_REDIRECT,
            },
            "x509certMulti": {"signing": [pem_body(p) for p in cfg.idp_certificates]},
        }
    try:
        return OneLogin_Saml2_Settings(data, sp_validation_only=sp_only)
    except OneLogin_Saml2_Error as err:
        raise SsoError("invalid_config", f"SAML settings refused: {err}") from None


def _request_data(url: str, post: dict[str, str] | None = None) -> dict[str, Any]:
    """python3-saml's view of the request: our configured public URL, never the Host header."""
    parts = urlsplit(url)
    return {
        "https": "on" if parts.scheme == "https" else "off",
        "http_host": parts.netloc,
        "script_name": parts.path,
        "get_data": {},
        "post_data": post or {},
    }


def authn_request_url(cfg: SamlConfig, relay_state: str | None) -> tuple[str, str]:
    """The signed HTTP-Redirect AuthnRequest URL and the request id (to expect in InResponseTo)."""
    if not cfg.idp_sso_url or not cfg.idp_certificates:
        raise SsoError("invalid_config", "the connection has no IdP SSO URL or certificate yet")
    auth = OneLogin_Saml2_Auth(_request_data(cfg.acs_url), _settings(cfg))
    url = auth.login(return_to=relay_state or None, set_nameid_policy=True)
    return url, auth.get_last_request_id()


def sp_metadata(cfg: SamlConfig) -> str:
    """Our SP metadata (entity id, ACS URL, signing key) for the admin to upload to the IdP."""
    settings = _settings(cfg, sp_only=True)
    xml = settings.get_sp_metadata()
    errors = settings.validate_metadata(xml)
    if errors:
        raise SsoError("invalid_config", f"SP metadata invalid: {errors}")
    return xml.decode() if isinstance(xml, bytes) else xml


def _decode(encoded: str) -> bytes:
    if len(encoded) > MAX_ENCODED:
        raise SsoError("too_large", f"SAMLResponse of {len(encoded)} characters")
    try:
        return base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SsoError("invalid_response", "SAMLResponse is not base64") from None


def _without_weak_keys(cfg: SamlConfig) -> tuple[SamlConfig, list[int]]:
    """The config with only the IdP certificates strong enough to verify with, and the RSA
    key sizes of those left out.

    Certificates are checked when trusted (``certs.describe``), but one stored before that
    check may carry a 512-bit key anyone can factor: it signs nobody in. None left:
    ``weak_key``.
    """
    weak = {
        pem: bits
        for pem in cfg.idp_certificates
        if (bits := rsa_key_bits(pem)) is not None and bits < SIGNIN_MIN_RSA_BITS
    }
    if not weak:
        return cfg, []
    kept = tuple(p for p in cfg.idp_certificates if p not in weak)
    sizes = sorted(set(weak.values()))
    if not kept:
        raise SsoError(
            "weak_key",
            f"the IdP's signing certificates have RSA keys of {sizes} bits (at least "
            f"{SIGNIN_MIN_RSA_BITS} needed to sign in); trust the IdP's new certificate",
        )
    return replace(cfg, idp_certificates=kept), sizes


def verify_response(cfg: SamlConfig, encoded: str) -> SamlAssertion:
    """Check a POSTed SAMLResponse completely (except request binding and replay) or refuse."""
    cfg, weak = _without_weak_keys(cfg)
    try:
        return _verify(cfg, encoded)
    except SsoError as err:
        if weak and err.reason_code == "signature":
            note = f"; certificates with RSA keys of {weak} bits are not trusted to sign in"
            raise SsoError("signature", err.detail + note) from None
        raise


def _verify(cfg: SamlConfig, encoded: str) -> SamlAssertion:
    raw = _decode(encoded)
    xml_guard.check_tree(xml_guard.parse(raw))
    try:
        response = OneLogin_Saml2_Response(_settings(cfg), base64.b64encode(raw))
    except SsoError:
        raise
    except Exception as err:  # decryption or parsing inside python3-saml
        raise SsoError("invalid_response", f"response could not be read: {err}") from None
    if response.encrypted:
        # The decrypted assertion is new, unauthenticated XML: the same checks again.
        xml_guard.check_tree(response.decrypted_document)
    document = response.get_xml_document()
    assertion, in_response_to = _precheck(cfg, document)
    try:
        valid = response.is_valid(_request_data(cfg.acs_url), raise_exceptions=True)
    except OneLogin_Saml2_ValidationError as err:
        raise SsoError(REASONS.get(err.code, "invalid_response"), str(err)) from None
    except Exception as err:
        raise SsoError("invalid_response", f"validation failed: {err}") from None
    if not valid or response.get_error():
        raise SsoError("invalid_response", response.get_error() or "response refused")
    return _extract(response, assertion, in_response_to)


def _one(nodes: list[Any], what: str) -> Any:
    if len(nodes) != 1:
        raise SsoError("signature", f"{len(nodes)} {what} elements (need exactly 1)")
    return nodes[0]


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(OneLogin_Saml2_Utils.parse_SAML_to_time(value), UTC)
    except Exception:
        raise SsoError("invalid_response", f"bad timestamp {value[:40]!r}") from None


def _precheck(cfg: SamlConfig, root: etree._Element) -> tuple[etree._Element, str | None]:
    """Exact checks with precise reasons, before the signature is verified.

    They only ever refuse; python3-saml then verifies the very element checked
    here (the document must hold exactly one assertion, a child of Response).
    Returns it and the request it answers (``_in_response_to``).
    """
    if root.tag != f"{{{SAMLP}}}Response":
        raise SsoError("invalid_response", f"root element is {etree.QName(root).localname}")
    code = root.find("samlp:Status/samlp:StatusCode", NS)
    if code is None or code.get("Value") != SUCCESS:
        value = code.get("Value") if code is not None else "(none)"
        raise SsoError("idp_error", f"IdP status {value}")
    assertion = _one(root.findall(".//saml:Assertion", NS), "Assertion")
    if assertion.getparent() is not root:
        raise SsoError("signature", "assertion is not a child of the Response (signature wrapping)")
    destination = root.get("Destination")
    # SAML Core §3.2.2: Destination, when present, is exactly where we received it.
    if destination is not None and destination != cfg.acs_url:
        raise SsoError("wrong_recipient", f"Destination {destination!r} is not {cfg.acs_url!r}")
    restrictions = assertion.findall("saml:Conditions/saml:AudienceRestriction", NS)
    if not restrictions:
        raise SsoError("wrong_audience", "assertion has no AudienceRestriction")
    for restriction in restrictions:
        # SAML Core §2.5.1.4: each restriction must be satisfied; compared exactly.
        audiences = [(a.text or "") for a in restriction.findall("saml:Audience", NS)]
        if cfg.sp_entity_id not in audiences:
            raise SsoError(
                "wrong_audience", f"audience {audiences!r}, expected {cfg.sp_entity_id!r}"
            )
    now = datetime.now(UTC)
    conditions = assertion.find("saml:Conditions", NS)
    not_on_or_after = _time(conditions.get("NotOnOrAfter")) if conditions is not None else None
    if not_on_or_after is not None and not_on_or_after <= now:
        raise SsoError("expired", f"assertion expired at {not_on_or_after.isoformat()}")
    confirmations = [
        c
        for c in assertion.findall("saml:Subject/saml:SubjectConfirmation", NS)
        if c.get("Method") == BEARER
    ]
    if not confirmations:
        raise SsoError("invalid_response", "no bearer SubjectConfirmation")
    datas = [c.find("saml:SubjectConfirmationData", NS) for c in confirmations]
    for data in datas:
        recipient = data.get("Recipient") if data is not None else None
        # SAML Profiles §4.1.4.2: Recipient is required and is our ACS URL, exactly.
        if recipient != cfg.acs_url:
            raise SsoError("wrong_recipient", f"Recipient {recipient!r} is not {cfg.acs_url!r}")
        expiry = _time(data.get("NotOnOrAfter"))
        if expiry is None:
            raise SsoError("invalid_response", "SubjectConfirmationData has no NotOnOrAfter")
        if expiry <= now:
            raise SsoError("expired", f"subject confirmation expired at {expiry.isoformat()}")
    return assertion, _in_response_to(root, datas)


def _in_response_to(root: etree._Element, datas: list[Any]) -> str | None:
    """The request the assertion answers: None for an unsolicited one.

    SAML Profiles §4.1.4.2/§4.1.4.3: it is the InResponseTo of the bearer
    SubjectConfirmationData, inside the signed assertion. The Response's own is
    outside that signature (Entra signs only the assertion, Okta by default too):
    it may agree, never name a request alone, or anyone could bind an unsolicited
    assertion to a login of their own.
    """
    named = {data.get("InResponseTo") for data in datas}
    if len(named) > 1:
        raise SsoError("state_mismatch", "bearer confirmations name different requests")
    in_response_to = named.pop()
    outer = root.get("InResponseTo")
    if outer is not None and in_response_to is not None and outer != in_response_to:
        raise SsoError("state_mismatch", "Response and assertion name different requests")
    return in_response_to


def _attribute_values(raw: dict[str, list[Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    count = 0
    for name, values in raw.items():
        for value in values:
            # python3-saml returns nested NameIDs (eduPersonTargetedID) as dicts.
            text = value.get("NameID", {}).get("value") if isinstance(value, dict) else value
            if isinstance(text, str) and count < MAX_ATTRIBUTE_VALUES:
                out.setdefault(name, []).append(text)
                count += 1
    return out


def _extract(
    response: OneLogin_Saml2_Response, assertion: etree._Element, in_response_to: str | None
) -> SamlAssertion:
    try:
        name_id = response.get_nameid_data()
        attributes = _attribute_values(response.get_attributes())
        assertion_id = response.get_assertion_id()
        issuers = response.get_issuers()
        # python3-saml requires exactly one AuthnStatement and refused a bound already
        # past (SESSION_EXPIRED): this is the one it checked.
        session_end = response.get_session_not_on_or_after()
    except OneLogin_Saml2_ValidationError as err:
        raise SsoError(REASONS.get(err.code, "invalid_response"), str(err)) from None
    if not name_id.get("Value") or not assertion_id:
        raise SsoError("invalid_response", "assertion without NameID or ID")
    size = len(name_id["Value"].strip().encode())
    if size > MAX_NAME_ID_BYTES:
        raise SsoError("invalid_response", f"NameID of {size} bytes (at most {MAX_NAME_ID_BYTES})")
    expiries = [
        _time(d.get("NotOnOrAfter"))
        for d in assertion.findall(".//saml:SubjectConfirmationData", NS)
    ]
    conditions = assertion.find("saml:Conditions", NS)
    if conditions is not None:
        expiries.append(_time(conditions.get("NotOnOrAfter")))
    keep_until = max(e for e in expiries if e is not None)
    return SamlAssertion(
        name_id=name_id["Value"].strip(),
        name_id_format=name_id.get("Format"),
        attributes=attributes,
        assertion_id=assertion_id,
        response_id=response.get_id(),
        in_response_to=in_response_to,
        not_on_or_after=keep_until,
        issuer=issuers[0] if issuers else "",
        session_index=response.get_session_index(),
        session_not_on_or_after=(
            datetime.fromtimestamp(session_end, UTC) if session_end is not None else None
        ),
    )
