"""Checks a SAML message must pass before any XML security library sees it.

xmlsec runs the transforms a signature names *before* it knows whether the
signature is good, so an unauthenticated sender chooses the work we do
(python3-saml 1.16 issue #447: an XSLT transform as a denial of service).
Hence, on the raw response and again on a decrypted assertion: a size cap, no
DTD or entities, no comments or processing instructions (comment injection
in NameID), a bounded number of elements, signatures and references, and only
allow-listed algorithm URIs.

The raw XML must be UTF-8 (or its ASCII subset), checked before the parser runs: the
DOCTYPE and ENTITY refusal reads the bytes as ASCII, and in UTF-16, UTF-32 or EBCDIC
``<!DOCTYPE`` is other bytes, which libxml2 would then parse and expand. Every IdP we
target sends UTF-8, so such a document (a byte order mark, NUL bytes, an encoding
declaration naming another encoding) is refused as ``xml_attack``; bytes that are
merely not valid UTF-8 hide nothing from those checks and are ``invalid_response``.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

from lxml import etree

from sso.errors import SsoError

MAX_RESPONSE_BYTES = 256 * 1024
MAX_ELEMENTS = 5000
MAX_DEPTH = 40
MAX_SIGNATURES = 2  # one on the Response, one on the Assertion
MAX_REFERENCES = 1  # per signature: the element it sits in, nothing else
MAX_TRANSFORMS = 2  # enveloped-signature and exclusive c14n

DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
TRANSFORMS = frozenset({ENVELOPED, EXC_C14N})
CANONICALIZATIONS = frozenset({EXC_C14N})
SIGNATURE_METHODS = frozenset(
    {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    }
)
DIGEST_METHODS = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)
ENCRYPTION_METHODS = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
        "http://www.w3.org/2009/xmlenc11#aes128-gcm",
        "http://www.w3.org/2009/xmlenc11#aes256-gcm",
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
        "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    }
)
# Known but refused as weak (a distinct reason, so the admin knows to change the IdP setting).
DEPRECATED = frozenset(
    {
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
        "http://www.w3.org/2000/09/xmldsig#sha1",
        "http://www.w3.org/2001/04/xmlenc#rsa-1_5",
        "http://www.w3.org/2001/04/xmlenc#tripledes-cbc",
    }
)


# What libxml2 would read as another encoding than UTF-8 (its autodetection): byte order
# marks (UTF-32's first: UTF-32LE's starts with UTF-16LE's) and EBCDIC's "<?xm".
_OTHER_ENCODINGS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
    (b"\x4c\x6f\xa7\x94", "EBCDIC"),
)
# XML 1.0 §2.8, §4.3.3: the declaration, if any, opens the document and may name its encoding.
_DECLARED_ENCODING = re.compile(rb"<\?xml\s[^>]*?\bencoding\s*=\s*([\"'])(.*?)\1")
_UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def _check_encoding(data: bytes) -> None:
    """Refuse XML that is not UTF-8 before any parser reads it (see the module's doc)."""
    for mark, name in _OTHER_ENCODINGS:
        if data.startswith(mark):
            raise SsoError("xml_attack", f"XML in {name}: only UTF-8 is accepted")
    if b"\0" in data:
        # UTF-16 or UTF-32 without a byte order mark (U+0000 is no XML character at all).
        raise SsoError("xml_attack", "NUL bytes in the XML (UTF-16 or UTF-32?): only UTF-8")
    body = data.removeprefix(codecs.BOM_UTF8)
    declared = _DECLARED_ENCODING.match(body)
    if declared is not None:
        name = declared.group(2).decode("ascii", "replace")
        if name.lower() not in _UTF8_NAMES:
            raise SsoError("xml_attack", f"XML declared as {name[:40]!r}: only UTF-8 is accepted")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SsoError(
            "invalid_response", f"XML is not valid UTF-8 (byte {err.start}): only UTF-8"
        ) from None


def _parser() -> etree.XMLParser:
    # No DTD loading, no entity expansion, no network, comments and PIs kept (to be refused).
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
    )


def parse(data: bytes, *, limit: int = MAX_RESPONSE_BYTES) -> etree._Element:
    """Parse untrusted UTF-8 XML safely, or raise ``SsoError`` (``too_large`` /
    ``xml_attack`` ...)."""
    if len(data) > limit:
        raise SsoError("too_large", f"XML of {len(data)} bytes exceeds the {limit}-byte limit")
    _check_encoding(data)
    # Cheap refusal before parsing (UTF-8: markup is ASCII bytes); the docinfo check
    # below catches a DOCTYPE after a long prolog.
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise SsoError("xml_attack", "DOCTYPE or ENTITY declaration in the XML (XXE)")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as err:
        raise SsoError("invalid_response", f"not well-formed XML: {err}") from None
    docinfo: Any = root.getroottree().docinfo  # lxml-stubs type it as a union lxml never returns
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise SsoError("xml_attack", "DOCTYPE in the XML (XXE)")
    return root


def check_tree(root: etree._Element) -> None:
    """Refuse a tree too big, with comments or PIs, or with signature machinery not allowed."""
    for count, node in enumerate(root.iter(), 1):
        if count > MAX_ELEMENTS:
            raise SsoError("xml_attack", f"more than {MAX_ELEMENTS} XML nodes")
        if isinstance(node, etree._Comment):
            raise SsoError("xml_attack", "XML comment in the message (comment injection)")
        if isinstance(node, etree._ProcessingInstruction):
            raise SsoError("xml_attack", "processing instruction in the message")
        if isinstance(node, etree._Entity):
            raise SsoError("xml_attack", "entity reference in the message")
    if _depth(root) > MAX_DEPTH:
        raise SsoError("xml_attack", f"XML nested deeper than {MAX_DEPTH} levels")
    _check_signatures(root)
    _check_encryption(root)


def _depth(root: etree._Element) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level <= MAX_DEPTH:
            stack.extend((child, level + 1) for child in node)
    return deepest


def _algorithm(node: etree._Element, what: str, allowed: frozenset[str]) -> None:
    uri = node.get("Algorithm") or ""
    if uri in allowed:
        return
    if uri in DEPRECATED:
        raise SsoError("deprecated_algorithm", f"deprecated {what} algorithm {uri}")
    raise SsoError("xml_attack", f"{what} algorithm not allowed: {uri[:200]!r}")


def _check_signatures(root: etree._Element) -> None:
    signatures = root.findall(f".//{{{DS}}}Signature")
    if root.tag == f"{{{DS}}}Signature":
        signatures.append(root)
    if len(signatures) > MAX_SIGNATURES:
        raise SsoError("signature", f"{len(signatures)} signatures (at most {MAX_SIGNATURES})")
    for sig in signatures:
        parent = sig.getparent()
        if parent is None or parent.tag not in (f"{{{SAMLP}}}Response", f"{{{SAML}}}Assertion"):
            where = parent.tag if parent is not None else "(root)"
            raise SsoError("signature", f"signature inside {where} (signature wrapping)")
        references = sig.findall(f".//{{{DS}}}Reference")
        if len(references) != MAX_REFERENCES:
            raise SsoError("signature", f"signature with {len(references)} references (need 1)")
        uri = references[0].get("URI") or ""
        if uri != "#" + (parent.get("ID") or "\0"):
            raise SsoError(
                "signature",
                f"reference {uri[:80]!r} is not the signed element (signature wrapping)",
            )
        if sig.find(f".//{{{DS}}}RetrievalMethod") is not None:
            raise SsoError("xml_attack", "RetrievalMethod in a signature's KeyInfo")
        if sig.find(f".//{{{DS}}}Object") is not None:
            raise SsoError("signature", "ds:Object inside a signature (signature wrapping)")
        transforms = sig.findall(f".//{{{DS}}}Transform")
        if len(transforms) > MAX_TRANSFORMS:
            raise SsoError("xml_attack", f"{len(transforms)} transforms (transform bomb)")
        for node in transforms:
            _algorithm(node, "transform", TRANSFORMS)
            if len(node):
                # exc-c14n may carry InclusiveNamespaces; nothing else (XPath, XSLT) belongs here.
                for child in node:
                    if etree.QName(child).localname != "InclusiveNamespaces":
                        raise SsoError("xml_attack", "transform with content (XSLT/XPath)")
        for node in sig.findall(f".//{{{DS}}}CanonicalizationMethod"):
            _algorithm(node, "canonicalization", CANONICALIZATIONS)
        for node in sig.findall(f".//{{{DS}}}SignatureMethod"):
            _algorithm(node, "signature", SIGNATURE_METHODS)
        for node in sig.findall(f".//{{{DS}}}DigestMethod"):
            _algorithm(node, "digest", DIGEST_METHODS)


def _check_encryption(root: etree._Element) -> None:
    for node in root.iter(f"{{{XENC}}}EncryptionMethod"):
        _algorithm(node, "encryption", ENCRYPTION_METHODS)
    for node in root.iter(f"{{{DS}}}DigestMethod"):
        parent = node.getparent()
        if parent is not None and parent.tag == f"{{{XENC}}}EncryptionMethod":
            _algorithm(node, "digest", DIGEST_METHODS | {"http://www.w3.org/2000/09/xmldsig#sha1"})
