"""The single sign-on pages: create from metadata with a preview, copy values, test, domains;
who may set them up (``sso.configure``: org admins) and what a security admin keeps."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.models import AuditEvent
from scim_server.services import console_access
from sso.connections.models import SsoConnection
from tests.sso.saml_idp import FakeIdp
from tests.support import Scim
from tests.support.admin_api import admin_of
from tests.support.console import csrf_token, sign_in_console
from tests.support.dns_server import LocalDns, add_verified_domain
from tests.support.sso import make_person


def _connections(app: Flask, org_id: str) -> list[SsoConnection]:
    with db.reader(app)() as s:
        return list(s.query(SsoConnection).filter_by(org_id=org_id))


def _create(client: FlaskClient, token: str, xml: str, name: str = "Entra ID") -> str:
    preview = client.post(
        "/admin/sso/new",
        data={
            "csrf_token": token,
            "protocol": "saml",
            "name": name,
            "metadata_file": (io.BytesIO(xml.encode()), "metadata.xml"),
        },
        content_type="multipart/form-data",
    )
    assert preview.status_code == 200, preview.get_data(as_text=True)
    body = preview.get_data(as_text=True)
    assert "https://idp.example.test/metadata" in body and "Create connection" in body
    created = client.post(
        "/admin/sso/new",
        data={
            "csrf_token": token,
            "protocol": "saml",
            "step": "create",
            "name": name,
            "metadata_xml": xml,
        },
    )
    assert created.status_code == 303
    return str(created.headers["Location"])


def test_org_admin_creates_a_saml_connection_from_uploaded_metadata(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Upload → a preview that stores nothing → create: the values to copy, the cert expiry."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/sso/")
    idp = FakeIdp()
    resp = client.post(
        "/admin/sso/new",
        data={
            "csrf_token": token,
            "protocol": "saml",
            "metadata_file": (io.BytesIO(idp.metadata_xml().encode()), "md.xml"),
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200 and _connections(app, scim.org_id) == []
    location = _create(client, token, idp.metadata_xml())
    conns = _connections(app, scim.org_id)
    assert len(conns) == 1 and conns[0].idp_entity_id == idp.entity_id
    page = client.get(location).get_data(as_text=True)
    assert f"/sso/saml/{conns[0].id}/acs" in page and f"/sso/saml/{conns[0].id}/metadata" in page
    assert page.count("data-copy=") == 4
    assert "Valid until" in page or "Expires in" in page


def test_bad_metadata_is_a_clear_error_and_creates_nothing(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Metadata that is not XML is refused with the reason; no connection is made."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/sso/")
    resp = client.post(
        "/admin/sso/new",
        data={"csrf_token": token, "protocol": "saml", "step": "create", "metadata_xml": "<nope"},
    )
    assert resp.status_code == 400
    assert "metadata refused" in resp.get_data(as_text=True)
    assert _connections(app, scim.org_id) == []
    missing = client.post("/admin/sso/new", data={"csrf_token": token, "protocol": "saml"})
    assert missing.status_code == 400 and "metadata URL" in missing.get_data(as_text=True)


def test_jit_toggle_domains_and_test_connection(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """JIT on and off, a domain added and removed, Test connection → the test-mode link."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/sso/")
    _create(client, token, FakeIdp().metadata_xml())
    conn = _connections(app, scim.org_id)[0]
    resp = client.post(
        f"/admin/sso/{conn.id}/settings",
        data={"csrf_token": token, "name": "Okta", "enabled": "on", "jit_enabled": "on"},
    )
    assert resp.status_code == 303
    assert _connections(app, scim.org_id)[0].jit_enabled is True
    client.post(f"/admin/sso/{conn.id}/settings", data={"csrf_token": token, "name": "Okta"})
    changed = _connections(app, scim.org_id)[0]
    assert changed.jit_enabled is False and changed.enabled is False and changed.name == "Okta"
    resp = client.post(
        "/admin/sso/domains",
        data={"csrf_token": token, "domain": "Acme-Corp.TEST", "connection_id": conn.id},
    )
    assert resp.status_code == 303
    assert "<strong>acme-corp.test</strong>" in client.get("/admin/sso/").get_data(as_text=True)
    test = client.post(f"/admin/sso/{conn.id}/test", data={"csrf_token": token})
    assert test.status_code == 200
    assert re.search(r'id="test-link" href="[^"]+/sso/test/[\w-]+"', test.get_data(as_text=True))
    with db.reader(app)() as s:
        actions = [e.action for e in s.query(AuditEvent).filter_by(org_id=scim.org_id)]
    assert "sso.connection.test" in actions and "sso.domain.add" in actions
    client.post("/admin/sso/domains/acme-corp.test/delete", data={"csrf_token": token})
    assert "acme-corp.test" not in client.get("/admin/sso/").get_data(as_text=True)


def test_domain_pending_then_verified(
    app: Flask, client: FlaskClient, scim: Scim, other_scim: Scim, local_dns: LocalDns
) -> None:
    """A new domain shows Pending with the TXT record; Verify without it: 409 saying what to
    publish; with it: Verified. Another organization holding it verified: the page says so."""
    record = admin_of(other_scim).post("/api/v1/sso/domains", {"domain": "contoso.test"})
    theirs = record.get_json()["verification"]["value"]  # another organization's claim
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/sso/")
    client.post("/admin/sso/domains", data={"csrf_token": token, "domain": "contoso.test"})
    page = client.get("/admin/sso/").get_data(as_text=True)
    value = re.search(r'id="txt-value-1">(scim-server-verification=[\w-]+)<', page)
    assert value and "Pending" in page
    assert (
        '<span class="value" id="txt-name-1">_scim-server-verification.contoso.test</span>' in page
    )
    assert 'data-copy="txt-value-1"' in page
    verify = "/admin/sso/domains/contoso.test/verify"
    resp = client.post(verify, data={"csrf_token": token})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 409 and 'role="alert"' in body
    assert "_scim-server-verification.contoso.test does not exist in DNS yet" in body
    local_dns.publish("_scim-server-verification.contoso.test", value.group(1))
    resp = client.post(verify, data={"csrf_token": token})
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "contoso.test is verified" in page and "Pending" not in page
    assert 'id="txt-value-1"' not in page and "Verify contoso.test" not in page
    # The other organization's claim, its record published too: its Verify meets the holder.
    local_dns.publish("_scim-server-verification.contoso.test", theirs)
    theirs_client = app.test_client()
    sign_in_console(app, theirs_client, other_scim, "org_admin")
    token = csrf_token(theirs_client, "/admin/sso/")
    resp = theirs_client.post(verify, data={"csrf_token": token})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 409 and "is verified by another organization" in body
    assert "Pending" in body


def test_certificate_expiring_within_90_days_is_warned(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A certificate 30 days from expiry shows a warning on the list and the connection."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/sso/")
    _create(client, token, FakeIdp().metadata_xml())
    conn = _connections(app, scim.org_id)[0]
    soon = (datetime.now(UTC) + timedelta(days=30, hours=1)).isoformat()
    with db.reader(app)() as s, s.begin():
        row = s.get(SsoConnection, (scim.org_id, conn.id))
        assert row is not None
        row.idp_certificates = [{**c, "not_after": soon} for c in row.idp_certificates]
    assert "Expires in 30 days" in client.get("/admin/sso/").get_data(as_text=True)
    assert "Expires in 30 days" in client.get(f"/admin/sso/{conn.id}").get_data(as_text=True)


def test_auditor_reads_sso_but_every_write_is_403(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """An auditor sees the connection, no write control, and each write answers 403."""
    conn = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Entra", "metadata_xml": FakeIdp().metadata_xml()},
    ).get_json()
    sign_in_console(app, client, scim, "auditor")
    token = csrf_token(client, "/admin/sso/")
    page = client.get(f"/admin/sso/{conn['id']}").get_data(as_text=True)
    assert "Entra" in page and "Test connection</button>" not in page
    for path in (
        "/admin/sso/new",
        f"/admin/sso/{conn['id']}/settings",
        f"/admin/sso/{conn['id']}/test",
        f"/admin/sso/{conn['id']}/delete",
        "/admin/sso/domains",
    ):
        assert client.post(path, data={"csrf_token": token}).status_code == 403, path
    assert client.get("/admin/sso/new").status_code == 403
    assert len(_connections(app, scim.org_id)) == 1


def test_form_without_csrf_token_is_refused(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """A forged cross-site post (no token) changes nothing."""
    sign_in_console(app, client, scim, "org_admin")
    resp = client.post("/admin/sso/domains", data={"domain": "evil.example"})
    assert resp.status_code == 400 and "Form expired" in resp.get_data(as_text=True)
    assert "evil.example" not in client.get("/admin/sso/").get_data(as_text=True)


def test_connection_name_is_escaped(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """A connection named <script> shows as text."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/sso/")
    location = _create(client, token, FakeIdp().metadata_xml(), name="<script>x()</script>")
    for page in (client.get(location), client.get("/admin/sso/")):
        body = page.get_data(as_text=True)
        assert "<script>x()</script>" not in body and "&lt;script&gt;x()&lt;/script&gt;" in body


def test_sign_in_log_lists_attempts_with_reasons(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A test sign-in appears in the sign-in log with its outcome; filters narrow it."""
    from sso.signin.decision import add_record

    with db.reader(app)() as s, s.begin():
        add_record(
            s,
            scim.org_id,
            outcome="failure",
            reason_code="missing_license",
            detail="no license",
            email="ivy@example.com",
        )
        add_record(s, scim.org_id, outcome="success", email="jack@example.com")
    sign_in_console(app, client, scim, "auditor")
    body = client.get("/admin/sign-ins/").get_data(as_text=True)
    assert "missing_license" in body and "ivy@example.com" in body and "jack@example.com" in body
    only = client.get("/admin/sign-ins/?outcome=failure").get_data(as_text=True)
    assert "ivy@example.com" in only and "jack@example.com" not in only
    assert client.get("/admin/sign-ins/?outcome=bogus").status_code == 400
    assert client.get("/admin/sign-ins/?cursor=%%%").status_code == 400


def test_metadata_url_must_be_https(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """A metadata URL that is not https is refused with the reason; nothing is fetched or made."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/sso/")
    resp = client.post(
        "/admin/sso/new",
        data={"csrf_token": token, "protocol": "saml", "metadata_url": "http://idp.example/md"},
    )
    assert resp.status_code == 400
    assert "https" in resp.get_data(as_text=True)
    assert _connections(app, scim.org_id) == []


def test_oidc_connection_shows_its_redirect_uri_and_never_the_secret(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """An OIDC connection: created from issuer and client; the secret is stored, never shown."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/sso/")
    resp = client.post(
        "/admin/sso/new",
        data={
            "csrf_token": token,
            "protocol": "oidc",
            "name": "Okta OIDC",
            "issuer": "https://okta.example.test",
            "client_id": "abc",
            "client_secret": "s3cr3t-value",
        },
    )
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    conn = _connections(app, scim.org_id)[0]
    assert f"/sso/oidc/{conn.id}/callback" in page and "Set (never shown)" in page
    assert "s3cr3t-value" not in page
    bad = client.post(
        "/admin/sso/new",
        data={"csrf_token": token, "protocol": "oidc", "issuer": "", "client_id": ""},
    )
    assert bad.status_code == 400 and len(_connections(app, scim.org_id)) == 1


def _security_admin_and_a_connection(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, *, enabled: bool = True
) -> dict[str, Any]:
    """A SAML connection the org admin made (the admin API), a security admin signed in."""
    conn = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Entra", "metadata_xml": FakeIdp().metadata_xml()},
    ).get_json()
    if not enabled:
        admin.patch(f"/api/v1/sso/connections/{conn['id']}", {"enabled": False})
    sign_in_console(app, client, scim, "security_admin", "sec@example.com")
    return dict(conn)


def test_security_admin_cannot_sign_in_as_the_org_admin_through_a_connection_they_add(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """A connection decides who signs in: whatever its IdP asserts is taken. A security
    admin adding one to an IdP of their own (enabled at once), with the organization's
    verified domain routed to no connection in particular, had it assert the org admin's
    address and was signed in to the console as the org admin. Making a connection is an
    org admin's (``sso.configure``, as ``tokens.create``). Found by a probe."""
    add_verified_domain(admin, "example.com")
    boss = make_person(app, scim, "boss@example.com")
    with db.reader(app)() as s:
        console_access.grant(s, scim.org_id, boss, "org_admin")
    evil = FakeIdp(
        entity_id="https://evil.example.test/metadata",
        sso_url="https://evil.example.test/sso",
        key_name="evil",
    )
    sign_in_console(app, client, scim, "security_admin", "sec@example.com")
    token = csrf_token(client, "/admin/sso/")
    made = client.post(
        "/admin/sso/new",
        data={
            "csrf_token": token,
            "protocol": "saml",
            "step": "create",
            "name": "Partner IdP",
            "metadata_file": (io.BytesIO(evil.metadata_xml().encode()), "idp.xml"),
        },
        content_type="multipart/form-data",
    )
    oidc = client.post(
        "/admin/sso/new",
        data={
            "csrf_token": token,
            "protocol": "oidc",
            "issuer": "https://evil.example.test",
            "client_id": "x",
        },
    )
    assert (made.status_code, oidc.status_code) == (403, 403)
    assert client.get("/admin/sso/new").status_code == 403
    assert _connections(app, scim.org_id) == []


def test_security_admin_cannot_repoint_enable_remove_or_unbind_what_decides_who_signs_in(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """The IdP's metadata (its certificate and issuer: a security admin's own IdP in place of
    the organization's), enabling a connection, deleting one (its domains go to every
    connection), adding, verifying or removing a domain (a domain bound to a connection
    keeps other IdPs from naming its people): 403 for a security admin, nothing changed."""
    conn = _security_admin_and_a_connection(app, client, scim, admin, enabled=False)
    add_verified_domain(admin, "example.com", connection_id=conn["id"])
    admin.post("/api/v1/sso/domains", {"domain": "pending.example"})
    token = csrf_token(client, "/admin/sso/")
    evil = FakeIdp(entity_id="https://evil.example.test/metadata", key_name="evil")
    refused = {
        "metadata": client.post(
            f"/admin/sso/{conn['id']}/metadata",
            data={
                "csrf_token": token,
                "metadata_file": (io.BytesIO(evil.metadata_xml().encode()), "idp.xml"),
            },
            content_type="multipart/form-data",
        ),
        "enable": client.post(
            f"/admin/sso/{conn['id']}/settings",
            data={"csrf_token": token, "name": "Entra", "enabled": "on"},
        ),
        "delete": client.post(
            f"/admin/sso/{conn['id']}/delete", data={"csrf_token": token, "confirm": "on"}
        ),
        "add domain": client.post(
            "/admin/sso/domains", data={"csrf_token": token, "domain": "evil.example"}
        ),
        "verify": client.post(
            "/admin/sso/domains/pending.example/verify", data={"csrf_token": token}
        ),
        "remove": client.post("/admin/sso/domains/example.com/delete", data={"csrf_token": token}),
    }
    assert {k: r.status_code for k, r in refused.items()} == dict.fromkeys(refused, 403)
    (row,) = _connections(app, scim.org_id)
    assert row.idp_entity_id == FakeIdp().entity_id and row.enabled is False
    domains = {d["domain"]: d for d in admin.get("/api/v1/sso/domains").get_json()["domains"]}
    assert set(domains) == {"example.com", "pending.example"}
    assert domains["example.com"]["connection_id"] == conn["id"]
    assert domains["pending.example"]["verified"] is False


def test_security_admin_keeps_disabling_renaming_jit_and_the_test_link(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """An incident: the security admin disables a connection, renames it, sets JIT, and
    tests it; none of that lets another IdP name anyone."""
    conn = _security_admin_and_a_connection(app, client, scim, admin)
    token = csrf_token(client, "/admin/sso/")
    resp = client.post(
        f"/admin/sso/{conn['id']}/settings",
        data={"csrf_token": token, "name": "Entra (paused)", "jit_enabled": "on"},
    )
    assert resp.status_code == 303
    (row,) = _connections(app, scim.org_id)
    assert (row.enabled, row.jit_enabled, row.name) == (False, True, "Entra (paused)")
    # Saved again while disabled (no Enabled box on the form): it stays disabled.
    resp = client.post(
        f"/admin/sso/{conn['id']}/settings", data={"csrf_token": token, "name": "Entra"}
    )
    assert resp.status_code == 303 and _connections(app, scim.org_id)[0].enabled is False
    assert (
        client.post(f"/admin/sso/{conn['id']}/test", data={"csrf_token": token}).status_code == 200
    )


def test_a_security_admin_is_told_who_sets_up_sso_and_offered_only_what_they_may_do(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """The list and the connection's page say an org admin sets up connections and domains,
    and why; no New connection, Add domain, Verify, Remove, Update metadata or Delete.
    Enabled is offered while the connection is enabled (to disable it), not once it is off.
    An org admin sees every control and no hint."""
    conn = _security_admin_and_a_connection(app, client, scim, admin)
    admin.post("/api/v1/sso/domains", {"domain": "pending.example"})
    hint = "set up by an organization admin"
    listed = client.get("/admin/sso/").get_data(as_text=True)
    shown = client.get(f"/admin/sso/{conn['id']}").get_data(as_text=True)
    for body in (listed, shown):
        assert hint in body
    for control in ("New connection", "Add domain</button>", "Verify pending.example", "Remove"):
        assert control not in listed, control
    for control in ("Update metadata", "Delete connection"):
        assert control not in shown, control
    assert "Test connection</button>" in shown and 'name="enabled"' in shown
    admin.patch(f"/api/v1/sso/connections/{conn['id']}", {"enabled": False})
    shown = client.get(f"/admin/sso/{conn['id']}").get_data(as_text=True)
    assert 'name="enabled"' not in shown and "an organization admin enables it" in shown
    boss = app.test_client()
    sign_in_console(app, boss, scim, "org_admin", "boss@example.com")
    listed = boss.get("/admin/sso/").get_data(as_text=True)
    shown = boss.get(f"/admin/sso/{conn['id']}").get_data(as_text=True)
    assert hint not in listed and hint not in shown
    assert "New connection" in listed and "Add domain</button>" in listed
    assert "Update metadata" in shown and 'name="enabled"' in shown


def test_delete_refused_while_a_verified_domain_is_bound_says_why(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The delete form of a connection a verified domain is bound to: 409, the page names the
    domain and says to bind it elsewhere or remove it; the connection stays."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/sso/")
    _create(client, token, FakeIdp().metadata_xml())
    conn = _connections(app, scim.org_id)[0]
    add_verified_domain(admin_of(scim), "example.com", conn.id)
    resp = client.post(f"/admin/sso/{conn.id}/delete", data={"csrf_token": token, "confirm": "on"})
    assert resp.status_code == 409, resp.get_data(as_text=True)
    page = resp.get_data(as_text=True)
    assert "Not deleted" in page and "example.com" in page
    assert "Bind them to another connection or remove them first" in page
    assert len(_connections(app, scim.org_id)) == 1
    client.post("/admin/sso/domains/example.com/delete", data={"csrf_token": token})
    resp = client.post(f"/admin/sso/{conn.id}/delete", data={"csrf_token": token, "confirm": "on"})
    assert resp.status_code == 303 and _connections(app, scim.org_id) == []
