"""Admin API for single sign-on: its own blueprint under ``/api/v1/sso/...``, admin tokens.

Connections (SAML metadata by upload or URL, OIDC issuer and client), e-mail
domains, IdP certificates with their expiry, SP metadata, identity links, the
sign-in records (the connection debugger) and test mode. Client secrets and SP private keys
are write-only: no response ever contains them. The blueprint gets the admin
API's authentication, error bodies and refusal log from
``scim_server.admin.common.install_admin_hooks``; ``sso.init_app`` registers it. The log
records a refusal of a view marked ``@audited``: every change, under the action its
success records.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import EXCLUDE, Schema, fields, validate

from scim_server.admin.apidoc import Content, Out, always, api_doc, nullable
from scim_server.admin.common import audited, install_admin_hooks, json_object
from scim_server.db import db
from scim_server.errors import InvalidValueError
from scim_server.urls import public_url
from sso.connections import records, service
from sso.connections.models import SignInRecord, SsoEmailDomain
from sso.connections.sealing import current_secret
from sso.errors import SsoError
from sso.saml import flow as saml_flow
from sso.saml.certs import expiry_view
from sso.signin import domains, links, testmode

bp = Blueprint("sso_admin", __name__, url_prefix="/api/v1")
install_admin_hooks(bp)

MAX_RECORDS = 500


# Connection bodies are checked by ``sso.connections.service`` (each problem named).
OBJECT = Content(("application/json",), {"type": "object"})


class ConnectionOut(Out):
    """An SSO connection (never its secrets), with the URLs to give the IdP."""

    id = always(fields.String)
    name = always(fields.String)
    protocol = always(fields.String)
    enabled = always(fields.Boolean)
    jit_enabled = always(fields.Boolean)
    created_at = always(fields.String)
    updated_at = always(fields.String)
    disabled_at = nullable(fields.String)  # the last disabling (kept after re-enabling)
    login_url = always(fields.String)


class ConnectionListOut(Out):
    """The organization's SSO connections."""

    connections = always(fields.List, cls_or_instance=fields.Nested(ConnectionOut))


class CertificateOut(Out):
    """A trusted IdP certificate: fingerprint, subject and expiry (not the PEM)."""

    fingerprint = always(fields.String)
    subject = nullable(fields.String)
    not_after = always(fields.String)
    days_left = always(fields.Integer)
    expired = always(fields.Boolean)


class CertificateListOut(Out):
    """The IdP certificates the connection trusts."""

    certificates = always(fields.List, cls_or_instance=fields.Nested(CertificateOut))


class TestLinkOut(Out):
    """A single-use test sign-in URL."""

    url = always(fields.String)
    expires_in = always(fields.Integer)


class DomainRecordOut(Out):
    """The DNS record that proves the organization owns the domain (while pending)."""

    type = always(fields.String)
    name = always(fields.String)
    value = always(fields.String)


class DomainOut(Out):
    """An e-mail domain routed to a connection; it routes sign-ins once ``verified``."""

    domain = always(fields.String)
    connection_id = nullable(fields.String)
    verified = always(fields.Boolean)
    verified_at = nullable(fields.String)
    verification = nullable(fields.Nested, nested=DomainRecordOut)


class DomainListOut(Out):
    """The organization's e-mail domains."""

    domains = always(fields.List, cls_or_instance=fields.Nested(DomainOut))


class LinkOut(Out):
    connection_id = always(fields.String)
    subject = always(fields.String)
    user_id = always(fields.String)
    created = always(fields.String)


class LinkListOut(Out):
    """The identity links found."""

    links = always(fields.List, cls_or_instance=fields.Nested(LinkOut))


class LinkArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    user_id = fields.String()
    subject = fields.String()


class SignInArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(min=1),
        metadata={"description": f"At most {MAX_RECORDS} are returned."},
    )
    cursor = fields.String()
    connection_id = fields.String()
    outcome = fields.String()
    reason_code = fields.String()


class SignInOut(Out):
    id = always(fields.String)
    at = always(fields.String)
    connection_id = nullable(fields.String)
    protocol = nullable(fields.String)
    outcome = always(fields.String)
    reason_code = nullable(fields.String)
    detail = nullable(fields.String)
    subject = nullable(fields.String)
    email = nullable(fields.String)
    user_id = nullable(fields.String)
    source_ip = nullable(fields.String)
    data = fields.Raw(allow_none=True)


class SignInListOut(Out):
    """Sign-in records, newest first; pass ``next_cursor`` back as ``cursor``."""

    sign_ins = always(fields.List, cls_or_instance=fields.Nested(SignInOut))
    next_cursor = nullable(fields.String)


def _body() -> dict[str, Any]:
    """The JSON object, read as strictly as every admin body (no NUL, no lone surrogate)."""
    return json_object()


def _view(conn: Any) -> dict[str, Any]:
    return service.connection_view(conn, public_url())


def _domain_view(row: SsoEmailDomain) -> dict[str, Any]:
    view: dict[str, Any] = {
        "domain": row.domain,
        "connection_id": row.connection_id,
        "verified": row.verified_at is not None,
        "verified_at": row.verified_at.isoformat() if row.verified_at else None,
        "verification": None,
    }
    if row.verified_at is None and row.verification_token:
        view["verification"] = {
            "type": "TXT",
            "name": domains.record_name(row.domain),
            "value": domains.record_value(row.verification_token),
        }
    return view


# -- connections ----------------------------------------------------------------------


@bp.get("/sso/connections")
@api_doc(tag="sso", response=ConnectionListOut)
def list_sso_connections() -> Response:
    return jsonify(connections=[_view(c) for c in service.list_connections(db.session, g.org_id)])


@bp.post("/sso/connections")
@audited("sso.connection.create")
@api_doc(tag="sso", body=OBJECT, response=ConnectionOut, status=201)
def create_sso_connection() -> tuple[Response, int]:
    """Create; a SAML connection may bring IdP metadata (``metadata_xml`` or ``metadata_url``)."""
    body = _body()
    xml, url = body.pop("metadata_xml", None), body.pop("metadata_url", None)
    # Refused before anything is stored: create and metadata are two transactions.
    if body.get("protocol") != "saml" and (xml is not None or url is not None):
        raise InvalidValueError(
            'metadata_xml and metadata_url are for SAML connections (protocol "saml").'
        )
    # Read and checked before the create, so bad metadata leaves no connection behind.
    meta = service.read_metadata(xml, url) if xml or url else None
    conn = service.create_connection(
        db.session, g.org_id, body, public_url(), secret=current_secret()
    )
    if meta is not None:
        conn = service.apply_metadata(db.session, g.org_id, conn.id, meta, url)
    return jsonify(_view(conn)), 201


@bp.get("/sso/connections/<connection_id>")
@api_doc(tag="sso", response=ConnectionOut)
def get_sso_connection(connection_id: str) -> Response:
    return jsonify(_view(service.get_connection(db.session, g.org_id, connection_id)))


@bp.patch("/sso/connections/<connection_id>")
@audited("sso.connection.update")
@api_doc(tag="sso", body=OBJECT, response=ConnectionOut)
def update_sso_connection(connection_id: str) -> Response:
    conn = service.update_connection(
        db.session, g.org_id, connection_id, _body(), secret=current_secret()
    )
    return jsonify(_view(conn))


@bp.delete("/sso/connections/<connection_id>")
@audited("sso.connection.delete")
@api_doc(tag="sso", status=204)
def delete_sso_connection(connection_id: str) -> tuple[str, int]:
    service.delete_connection(db.session, g.org_id, connection_id)
    return "", 204


@bp.post("/sso/connections/<connection_id>/metadata")
@audited("sso.connection.metadata")
@api_doc(
    tag="sso",
    body=Content(("application/json", "application/xml", "application/samlmetadata+xml"), {}),
    response=ConnectionOut,
)
def import_sso_metadata(connection_id: str) -> Response:
    """IdP metadata: an XML body (application/xml), or JSON ``{"url": ...}`` / ``{"xml": ...}``."""
    xml: Any = None
    url: Any = None
    if request.mimetype in ("application/xml", "text/xml", "application/samlmetadata+xml"):
        xml = request.get_data(cache=False).decode("utf-8", "replace")
    else:
        body = _body()
        xml, url = body.get("xml"), body.get("url")
    meta = service.read_metadata(xml, url)
    conn = service.apply_metadata(db.session, g.org_id, connection_id, meta, url)
    return jsonify(_view(conn))


@bp.get("/sso/connections/<connection_id>/certificates")
@api_doc(tag="sso", response=CertificateListOut)
def list_sso_certificates(connection_id: str) -> Response:
    conn = service.get_connection(db.session, g.org_id, connection_id)
    return jsonify(certificates=[expiry_view(c) for c in conn.idp_certificates])


@bp.post("/sso/connections/<connection_id>/certificates")
@audited("sso.certificate.add")
@api_doc(tag="sso", body=OBJECT, response=CertificateOut, status=201)
def add_sso_certificate(connection_id: str) -> tuple[Response, int]:
    """Trust another IdP signing certificate (PEM), e.g. the next one before a rotation."""
    pem = _body().get("pem")
    if not isinstance(pem, str):
        raise InvalidValueError("pem must be the certificate in PEM form.")
    info = service.add_certificate(db.session, g.org_id, connection_id, pem)
    return jsonify(expiry_view(info)), 201


@bp.delete("/sso/connections/<connection_id>/certificates/<fingerprint>")
@audited("sso.certificate.remove")
@api_doc(tag="sso", status=204)
def remove_sso_certificate(connection_id: str, fingerprint: str) -> tuple[str, int]:
    service.remove_certificate(db.session, g.org_id, connection_id, fingerprint)
    return "", 204


@bp.get("/sso/connections/<connection_id>/sp-metadata")
@api_doc(tag="sso", response=Content(("application/samlmetadata+xml",)))
def get_sp_metadata(connection_id: str) -> Response:
    conn = service.get_connection(db.session, g.org_id, connection_id)
    try:
        xml = saml_flow.saml.sp_metadata(saml_flow.config(conn, public_url()))
    except SsoError as err:
        raise InvalidValueError(err.detail) from None
    return Response(xml, mimetype="application/samlmetadata+xml")


@bp.post("/sso/connections/<connection_id>/test")
@audited("sso.connection.test")
@api_doc(tag="sso", response=TestLinkOut)
def test_sso_connection(connection_id: str) -> Response:
    """A single-use URL that runs a login and shows attributes and mapping, creating nobody."""
    url = testmode.create_test_link(db.session, g.org_id, connection_id, public_url())
    return jsonify(url=url, expires_in=testmode.TEST_SECONDS)


# -- e-mail domains -------------------------------------------------------------------


@bp.get("/sso/domains")
@api_doc(tag="sso", response=DomainListOut)
def list_sso_domains() -> Response:
    return jsonify(domains=[_domain_view(d) for d in domains.list_domains(db.session, g.org_id)])


@bp.post("/sso/domains")
@audited("sso.domain.add")
@api_doc(tag="sso", body=OBJECT, response=DomainOut, status=201)
def add_sso_domain() -> tuple[Response, int]:
    body = _body()
    row = domains.add_domain(db.session, g.org_id, body.get("domain"), body.get("connection_id"))
    return jsonify(_domain_view(row)), 201


@bp.post("/sso/domains/<domain>/verify")
@audited("sso.domain.verify")
@api_doc(tag="sso", response=DomainOut)
def verify_sso_domain(domain: str) -> Response:
    """Look up the domain's TXT record (``verification``); found: the domain is verified.

    409 when the record is not there (the detail names it) or another organization holds
    the domain verified; 503 when DNS gave no answer."""
    config = current_app.config
    row = domains.verify_domain(
        db.session,
        g.org_id,
        domain,
        resolvers=config["DNS_RESOLVERS"],
        timeout=config["DNS_TIMEOUT_SECONDS"],
    )
    return jsonify(_domain_view(row))


@bp.delete("/sso/domains/<domain>")
@audited("sso.domain.remove")
@api_doc(tag="sso", status=204)
def remove_sso_domain(domain: str) -> tuple[str, int]:
    domains.remove_domain(db.session, g.org_id, domain)
    return "", 204


# -- identity links (sso.signin.binding) -------------------------------------------------------


@bp.get("/sso/connections/<connection_id>/links")
@api_doc(tag="sso", query=LinkArgs, response=LinkListOut)
def list_sso_links(connection_id: str) -> Response:
    """The link of ``?user_id=`` and/or ``?subject=`` on the connection."""
    args = LinkArgs().load(request.args)
    found = links.find_links(
        db.session,
        g.org_id,
        connection_id,
        user_id=args.get("user_id"),
        subject=args.get("subject"),
    )
    return jsonify(links=[links.link_view(r) for r in found])


@bp.delete("/sso/connections/<connection_id>/links/<user_id>")
@audited("sso.identity_unlinked")
@api_doc(tag="sso", status=204)
def remove_sso_link(connection_id: str, user_id: str) -> tuple[str, int]:
    """Unlink the user: its next sign-in is matched by the fallbacks again (a changed NameID)."""
    links.unlink(db.session, g.org_id, connection_id, user_id)
    return "", 204


# -- sign-in records (the connection debugger) ----------------------------------------


def _record_view(row: SignInRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "connection_id": row.connection_id,
        "protocol": row.protocol,
        "outcome": row.outcome,
        "reason_code": row.reason_code,
        "detail": row.detail,
        "subject": row.subject,
        "email": row.email,
        "user_id": row.user_id,
        "source_ip": row.source_ip,
        "data": row.data,
    }


@bp.get("/sso/sign-ins")
@api_doc(tag="sso", query=SignInArgs, response=SignInListOut)
def list_sign_ins() -> Response:
    """Newest first; filter by ``connection_id`` / ``outcome``; page with ``cursor``."""
    args = SignInArgs().load(request.args)
    rows, next_cursor = records.list_sign_ins(
        db.session,
        g.org_id,
        limit=min(args["limit"], MAX_RECORDS),
        cursor=args.get("cursor"),
        connection_id=args.get("connection_id"),
        outcome=args.get("outcome"),
        reason_code=args.get("reason_code"),
    )
    return jsonify(sign_ins=[_record_view(r) for r in rows], next_cursor=next_cursor)
