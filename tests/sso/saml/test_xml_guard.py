"""The checks every SAML message passes before XML security code runs (sso.xml_guard)."""

from __future__ import annotations

import pytest

from sso.errors import SsoError
from sso.saml import xml_guard

DS = "http://www.w3.org/2000/09/xmldsig#"
RESPONSE = (
    '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
    'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:ds="{ds}" ID="_r">'
    '<saml:Assertion ID="_a">{signature}</saml:Assertion></samlp:Response>'
)


def signature(
    *,
    c14n: str = xml_guard.EXC_C14N,
    method: str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    digest: str = "http://www.w3.org/2001/04/xmlenc#sha256",
    transforms: tuple[str, ...] = (xml_guard.ENVELOPED, xml_guard.EXC_C14N),
    uri: str = "#_a",
    extra: str = "",
) -> str:
    steps = "".join(f'<ds:Transform Algorithm="{t}"/>' for t in transforms)
    return (
        f'<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="{c14n}"/>'
        f'<ds:SignatureMethod Algorithm="{method}"/><ds:Reference URI="{uri}">'
        f'<ds:Transforms>{steps}</ds:Transforms><ds:DigestMethod Algorithm="{digest}"/>'
        "<ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:SignedInfo>"
        f"<ds:SignatureValue>AA==</ds:SignatureValue>{extra}</ds:Signature>"
    )


def check(xml: str) -> None:
    xml_guard.check_tree(xml_guard.parse(xml.encode()))


def response(sig: str) -> str:
    return RESPONSE.format(ds=DS, signature=sig)


def test_well_formed_signature_passes() -> None:
    """Exclusive c14n, enveloped-signature, RSA-SHA256 and SHA-256: accepted."""
    check(response(signature()))


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"method": "http://www.w3.org/2000/09/xmldsig#rsa-sha1"}, "deprecated_algorithm"),
        ({"digest": "http://www.w3.org/2000/09/xmldsig#sha1"}, "deprecated_algorithm"),
        ({"method": "http://www.w3.org/2000/09/xmldsig#hmac-sha1"}, "xml_attack"),
        ({"c14n": "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"}, "xml_attack"),
        ({"transforms": ("http://www.w3.org/TR/1999/REC-xslt-19991116",)}, "xml_attack"),
        ({"transforms": ("http://www.w3.org/2002/06/xmldsig-filter2",)}, "xml_attack"),
        ({"transforms": (xml_guard.ENVELOPED,) * 3}, "xml_attack"),
        ({"uri": "#_other"}, "signature"),
        ({"uri": ""}, "signature"),
        ({"extra": "<ds:Object><x/></ds:Object>"}, "signature"),
        ({"extra": "<ds:KeyInfo><ds:RetrievalMethod URI='http://x'/></ds:KeyInfo>"}, "xml_attack"),
    ],
)
def test_refused_signature_machinery(kwargs: dict, reason: str) -> None:
    """Algorithms outside the allow-list, extra transforms and odd references are refused."""
    with pytest.raises(SsoError) as err:
        check(response(signature(**kwargs)))
    assert err.value.reason_code == reason


def test_too_many_signatures() -> None:
    """More signatures than Response + Assertion: refused before any verification."""
    xml = response(signature() + signature())
    xml = xml.replace("</samlp:Response>", signature(uri="#_r") + "</samlp:Response>")
    with pytest.raises(SsoError, match="signatures"):
        check(xml)


def test_two_references_in_one_signature() -> None:
    """A signature must reference exactly its own element."""
    sig = signature().replace("</ds:SignedInfo>", '<ds:Reference URI="#_a"/></ds:SignedInfo>')
    with pytest.raises(SsoError, match="references"):
        check(response(sig))


def test_signature_outside_response_or_assertion() -> None:
    """A Signature hidden in another element (wrapping) is refused."""
    xml = response("").replace(
        "</saml:Assertion>", f"<saml:Subject>{signature()}</saml:Subject></saml:Assertion>"
    )
    with pytest.raises(SsoError, match="wrapping"):
        check(xml)


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ("<a><!-- hi --></a>", "xml_attack"),
        ("<a><?php evil ?></a>", "xml_attack"),
        ('<!DOCTYPE a SYSTEM "http://evil/">\n<a/>', "xml_attack"),
        ("<a>" + "<b>" * 50 + "</b>" * 50 + "</a>", "xml_attack"),
        ("<a>" + "<b/>" * 6000 + "</a>", "xml_attack"),
        ("<a>", "invalid_response"),
    ],
)
def test_refused_documents(xml: str, reason: str) -> None:
    """Comments, processing instructions, DTDs, deep or huge trees, broken XML."""
    with pytest.raises(SsoError) as err:
        check(xml)
    assert err.value.reason_code == reason


def test_doctype_in_utf16_is_refused() -> None:
    """The DOCTYPE check does not depend on the byte encoding."""
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>'
    with pytest.raises(SsoError) as err:
        xml_guard.parse(data.encode("utf-16"))
    assert err.value.reason_code == "xml_attack"


PLAIN = '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r"/>'


@pytest.mark.parametrize(
    "data",
    [
        PLAIN.encode(),
        b'<?xml version="1.0" encoding="UTF-8"?>' + PLAIN.encode(),
        b"<?xml version='1.0' encoding='utf-8' standalone='yes'?>" + PLAIN.encode(),
        b'<?xml version="1.0" encoding="US-ASCII"?>' + PLAIN.encode(),
        b'<?xml version="1.0"?>' + PLAIN.encode(),
        b"\xef\xbb\xbf" + PLAIN.encode(),  # UTF-8 with its byte order mark (ADFS's files)
        PLAIN.replace("_r", "_r\u00e9\u4e2d").encode(),  # non-ASCII UTF-8
    ],
    ids=["bare", "declared", "declared-lower", "ascii", "no-encoding", "utf-8-bom", "non-ascii"],
)
def test_utf8_is_accepted(data: bytes) -> None:
    """UTF-8 (or ASCII), declared or not, with or without its byte order mark: parsed."""
    assert xml_guard.parse(data).get("ID", "").startswith("_r")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (PLAIN.encode("utf-16"), "xml_attack"),
        (PLAIN.encode("utf-16-le"), "xml_attack"),
        (PLAIN.encode("utf-32"), "xml_attack"),
        (PLAIN.encode("utf-32-be"), "xml_attack"),
        (('<?xml version="1.0" encoding="IBM500"?>' + PLAIN).encode("cp500"), "xml_attack"),
        (PLAIN.encode("cp500"), "invalid_response"),  # EBCDIC undeclared: not UTF-8 either
        (b'<?xml version="1.0" encoding="ISO-8859-1"?>' + PLAIN.encode(), "xml_attack"),
        (b'<?xml version="1.0" encoding="UTF-16"?>' + PLAIN.encode(), "xml_attack"),
        (b'<?xml version="1.0" encoding="UTF-7"?>' + PLAIN.encode(), "xml_attack"),
        (PLAIN.replace("_r", "_r\u00e9").encode("latin-1"), "invalid_response"),
    ],
    ids=[
        "utf-16-bom",
        "utf-16-no-bom",
        "utf-32-bom",
        "utf-32-no-bom",
        "ebcdic",
        "ebcdic-undeclared",
        "declared-latin-1",
        "declared-utf-16",
        "declared-utf-7",
        "latin-1-bytes",
    ],
)
def test_other_encodings_are_refused_before_parsing(
    data: bytes, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only UTF-8: in another encoding the DOCTYPE check on the bytes sees nothing, so such
    a document is refused before lxml reads it (xml_attack); bytes that are not valid UTF-8
    hide no markup (invalid_response)."""

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("the XML parser was reached")

    monkeypatch.setattr(xml_guard.etree, "fromstring", boom)
    with pytest.raises(SsoError) as err:
        xml_guard.parse(data)
    assert err.value.reason_code == reason
    assert "only UTF-8" in err.value.detail


def test_size_cap() -> None:
    """Over the cap: too_large, not parsed."""
    with pytest.raises(SsoError) as err:
        xml_guard.parse(b"<a>" + b"x" * xml_guard.MAX_RESPONSE_BYTES + b"</a>")
    assert err.value.reason_code == "too_large"


def test_encryption_algorithms() -> None:
    """RSA-OAEP and AES are accepted; RSA 1.5 key transport is deprecated."""
    enc = (
        '<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">'
        '<xenc:EncryptionMethod Algorithm="{alg}"/></xenc:EncryptedData>'
    )
    check(enc.format(alg="http://www.w3.org/2009/xmlenc11#aes256-gcm"))
    with pytest.raises(SsoError) as err:
        check(enc.format(alg="http://www.w3.org/2001/04/xmlenc#rsa-1_5"))
    assert err.value.reason_code == "deprecated_algorithm"
