"""Single sign-on set-up (``/admin/sso``): connections, the values for the IdP, domains, tests.

The same services as the admin API's ``/api/v1/sso``: ``sso.connections.service``
(connections, metadata, the view with the URLs to paste into the IdP and each
certificate's expiry), ``sso.signin.domains`` and ``sso.signin.testmode``.
A SAML connection is made from its IdP metadata (a URL or an uploaded XML file)
after a preview of what was read from it. Reading needs ``sso.read``. What decides
who may assert an identity needs ``sso.configure`` (org admins: a connection's IdP
signs anyone in, them included): making a connection, its IdP's metadata, enabling or
deleting it, adding, verifying or removing a domain. Disabling, renaming, JIT and the
test link need ``sso.write`` (security admins too).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, redirect, request, url_for

from scim_server.console.access import person, require
from scim_server.console.render import render
from scim_server.db import db
from scim_server.errors import DomainError, InvalidValueError
from scim_server.urls import public_url
from sso.connections import records, service
from sso.connections.sealing import current_secret
from sso.signin import domains, testmode

bp = Blueprint("sso", __name__, url_prefix="/sso")

MAX_METADATA = 1024 * 1024
CERT_WARNING_DAYS = 90


def _views(conns: list[Any]) -> list[dict[str, Any]]:
    base = public_url()
    out = []
    for conn in conns:
        view = service.connection_view(conn, base)
        certs = view.get("certificates") or []
        view["soonest"] = min(certs, key=lambda c: c["days_left"]) if certs else None
        out.append(view)
    return out


def _see_other(endpoint: str, **values: Any) -> Response:
    return redirect(url_for(endpoint, **values), code=303)  # type: ignore[return-value]


def _domain_rows(org_id: str) -> list[dict[str, Any]]:
    """Each domain with, while pending, the TXT record to publish."""
    rows = []
    for d in domains.list_domains(db.session, org_id):
        pending = d.verified_at is None
        rows.append(
            {
                "domain": d.domain,
                "connection_id": d.connection_id,
                "verified": not pending,
                "record_name": domains.record_name(d.domain) if pending else None,
                "record_value": domains.record_value(d.verification_token or "")
                if pending
                else None,
            }
        )
    return rows


def _list_page(status: int = 200, problem: dict[str, str] | None = None) -> Response:
    org_id = person().org_id
    conns = _views(service.list_connections(db.session, org_id))
    return render(
        "console/sso/list.html",
        status=status,
        connections=conns,
        names={c["id"]: c["name"] for c in conns},
        domains=_domain_rows(org_id),
        warn_days=CERT_WARNING_DAYS,
        problem=problem,
    )


@bp.get("/")
@require("sso.read")
def list_connections() -> Response:
    return _list_page()


@bp.get("/new")
@require("sso.configure")
def new_connection() -> Response:
    return render("console/sso/new.html", values={"protocol": "saml"}, preview=None, error=None)


def _metadata_from_form() -> tuple[str | None, str | None]:
    """The metadata XML (uploaded, or carried over from the preview) and the URL given."""
    url = (request.form.get("metadata_url") or "").strip() or None
    upload = request.files.get("metadata_file")
    if upload is not None and upload.filename:
        data = upload.read(MAX_METADATA + 1)
        if len(data) > MAX_METADATA:
            raise InvalidValueError("The metadata file is larger than 1 MiB.")
        return data.decode("utf-8", "replace"), None
    carried = request.form.get("metadata_xml") or None
    return carried, url


@bp.post("/new")
@require("sso.configure")
def create_connection() -> Response:
    """SAML: read the metadata and show it (``preview``), then create (``create``). OIDC: create."""
    form = request.form
    protocol = form.get("protocol", "saml")
    values = {
        k: form.get(k, "") for k in ("protocol", "name", "metadata_url", "issuer", "client_id")
    }
    step = form.get("step", "preview")
    org_id = person().org_id
    try:
        if protocol == "oidc":
            fields = {
                "protocol": "oidc",
                "name": form.get("name", "").strip() or "OIDC connection",
                "issuer": form.get("issuer", "").strip(),
                "client_id": form.get("client_id", "").strip(),
            }
            if form.get("client_secret"):
                fields["client_secret"] = form["client_secret"]
            conn = service.create_connection(
                db.session, org_id, fields, public_url(), secret=current_secret()
            )
            return _see_other("console.sso.show_connection", connection_id=conn.id)
        if protocol != "saml":
            raise InvalidValueError("Choose SAML 2.0 or OpenID Connect.")
        xml, url = _metadata_from_form()
        if not xml and not url:
            raise InvalidValueError("Give the IdP's metadata URL, or upload its metadata file.")
        if xml is None:
            xml = service.fetch_metadata_text(url or "")
        meta = service.read_metadata(xml, None)
        if step != "create":
            return render(
                "console/sso/new.html",
                values=values,
                preview=service.metadata_view(meta),
                metadata_xml=xml,
                error=None,
            )
        name = form.get("name", "").strip() or "SAML connection"
        conn = service.create_connection(
            db.session,
            org_id,
            {"protocol": "saml", "name": name},
            public_url(),
            secret=current_secret(),
        )
        service.apply_metadata(db.session, org_id, conn.id, meta, url)
    except DomainError as err:
        return render(
            "console/sso/new.html", status=err.status, values=values, preview=None, error=err.detail
        )
    return _see_other("console.sso.show_connection", connection_id=conn.id)


@bp.get("/<connection_id>")
@require("sso.read")
def show_connection(connection_id: str) -> Response:
    return _connection_page(connection_id)


def _connection_page(
    connection_id: str, *, status: int = 200, delete_blocked: list[str] | None = None
) -> Response:
    """The connection's page; ``delete_blocked``: the verified domains that refused a delete."""
    org_id = person().org_id
    conn = service.get_connection(db.session, org_id, connection_id)
    recent, _ = records.list_sign_ins(db.session, org_id, limit=10, connection_id=conn.id)
    return render(
        "console/sso/show.html",
        status=status,
        delete_blocked=delete_blocked,
        c=_views([conn])[0],
        domains=[d for d in domains.list_domains(db.session, org_id) if d.connection_id == conn.id],
        recent=recent,
        warn_days=CERT_WARNING_DAYS,
        active_nav="console.sso.list_connections",
    )


@bp.post("/<connection_id>/settings")
@require("sso.write")
def update_settings(connection_id: str) -> Response:
    """Name, enabled and just-in-time creation (checkboxes: absent means off). Enabling a
    disabled connection needs ``sso.configure``: it lets its IdP sign people in again."""
    form = request.form
    who = person()
    fields: dict[str, Any] = {
        "name": form.get("name", ""),
        "enabled": form.get("enabled") == "on",
        "jit_enabled": form.get("jit_enabled") == "on",
    }
    service.update_connection(
        db.session,
        who.org_id,
        connection_id,
        fields,
        secret=current_secret(),
        may_enable=who.can("sso.configure"),
    )
    return _see_other("console.sso.show_connection", connection_id=connection_id, saved=1)


@bp.post("/<connection_id>/metadata")
@require("sso.configure")
def replace_metadata(connection_id: str) -> Response:
    """New IdP metadata (e.g. after a certificate rotation), from a URL or a file."""
    xml, url = _metadata_from_form()
    meta = service.read_metadata(xml, url)
    service.apply_metadata(db.session, person().org_id, connection_id, meta, url)
    return _see_other("console.sso.show_connection", connection_id=connection_id, saved=1)


@bp.post("/<connection_id>/test")
@require("sso.write")
def test_connection(connection_id: str) -> Response:
    """The existing test mode: a single-use link that logs in and only shows the result.

    A page with the link, not a redirect: the CSP's ``form-action 'self'`` (rightly)
    stops a form's redirect chain from leaving for the IdP.
    """
    org_id = person().org_id
    url = testmode.create_test_link(db.session, org_id, connection_id, public_url())
    conn = service.get_connection(db.session, org_id, connection_id)
    return render(
        "console/sso/test_link.html",
        url=url,
        name=conn.name,
        connection_id=conn.id,
        minutes=testmode.TEST_SECONDS // 60,
        active_nav="console.sso.list_connections",
    )


@bp.post("/<connection_id>/delete")
@require("sso.configure")
def delete_connection(connection_id: str) -> Response:
    """Refused while verified domains are bound to it: the page says which (409)."""
    try:
        service.delete_connection(db.session, person().org_id, connection_id)
    except service.ConnectionInUseError as err:
        return _connection_page(connection_id, status=409, delete_blocked=err.domains)
    return _see_other("console.sso.list_connections")


@bp.post("/domains")
@require("sso.configure")
def add_domain() -> Response:
    connection_id = request.form.get("connection_id") or None
    domains.add_domain(db.session, person().org_id, request.form.get("domain", ""), connection_id)
    return _see_other("console.sso.list_connections")


@bp.post("/domains/<domain>/verify")
@require("sso.configure")
def verify_domain(domain: str) -> Response:
    """Look up the TXT record; found: verified. Not found, taken, DNS down: said on the page."""
    config = current_app.config
    try:
        row = domains.verify_domain(
            db.session,
            person().org_id,
            domain,
            resolvers=config["DNS_RESOLVERS"],
            timeout=config["DNS_TIMEOUT_SECONDS"],
        )
    except (domains.VerificationError, domains.DnsUnavailableError) as err:
        problem = {"domain": domain, "reason": err.reason, "cause": getattr(err, "cause", "")}
        return _list_page(status=err.status, problem=problem)
    return _see_other("console.sso.list_connections", verified=row.domain)


@bp.post("/domains/<domain>/delete")
@require("sso.configure")
def remove_domain(domain: str) -> Response:
    domains.remove_domain(db.session, person().org_id, domain)
    return _see_other("console.sso.list_connections")
