"""SSO connection secrets at rest: sealed in the database, opened only to sign in, bound to a row."""

from __future__ import annotations

import base64
import logging
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from scim_server.db import db
from scim_server.models import AuditEvent
from sso.connections.models import SsoConnection
from sso.connections.sealing import (
    CONNECTION_SECRETS,
    SealedSecretError,
    open_connection_secret,
    seal,
    seal_connection_secret,
    unseal,
)
from sso.connections.secrets import encrypt_secrets, secret_for_use
from tests.sso.oidc_op import provider as op_module
from tests.sso.oidc_op.provider import CLIENT_ID, CLIENT_SECRET, LocalOP, running_op
from tests.sso.saml_idp import FakeIdp, valid_response
from tests.support import Scim
from tests.support.dns_server import add_verified_domain
from tests.support.sso import SamlConnection, assert_refused, events, make_person, read

FIRST = "first server secret"
SECOND = "second server secret"


@pytest.fixture
def app(app: Flask) -> Flask:
    """The suite's app with a fixed encryption secret (not a key file under instance/)."""
    app.config["OAUTH_KEY_SECRET"] = FIRST
    return app


@pytest.fixture(scope="module")
def local_op() -> Iterator[LocalOP]:
    with running_op() as op:
        yield op


def _create_oidc(admin: Scim, issuer: str, name: str = "Local OP") -> dict[str, Any]:
    body = {
        "protocol": "oidc",
        "name": name,
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    resp = admin.post("/api/v1/sso/connections", body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


@pytest.fixture
def oidc_conn(
    app: Flask, admin: Scim, local_op: LocalOP, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """An OIDC connection to the local provider, example.com routed to it."""
    local_op.reset()
    app.config["BASE_URL"] = "http://127.0.0.1"
    conn = _create_oidc(admin, local_op.issuer)
    monkeypatch.setattr(op_module, "REDIRECT_URI", conn["redirect_uri"])
    add_verified_domain(admin, "example.com", conn["id"])
    return conn


def _raw(app: Flask, connection_id: str) -> dict[str, Any]:
    """The stored columns, as a database dump would show them."""
    with read(app) as s:
        row = s.execute(
            text("SELECT client_secret, sp_private_key FROM sso_connections WHERE id = :id"),
            {"id": connection_id},
        ).one()
    return {"client_secret": row[0], "sp_private_key": row[1]}


def _store(app: Flask, connection_id: str, **columns: Any) -> None:
    """Write stored columns directly (a pre-upgrade row, or an attacker with database access)."""
    sets = ", ".join(f"{name} = :{name}" for name in columns)
    with read(app) as s, s.begin():
        s.execute(
            text(f"UPDATE sso_connections SET {sets} WHERE id = :id"),
            {**columns, "id": connection_id},
        )


def _saml_start(client: FlaskClient, conn: SamlConnection) -> Any:
    return client.get(f"/sso/saml/{conn.id}/start?next=/after")


def _assert_signed_by_sp(location: str, sp_certificate: str) -> None:
    """The AuthnRequest's redirect-binding signature verifies with the connection's SP certificate.

    SAML Bindings §3.4.4.1: the signed octets are SAMLRequest, RelayState, SigAlg as sent.
    """
    query = urlsplit(location).query
    parts = dict(p.split("=", 1) for p in query.split("&"))
    signed = "&".join(
        f"{k}={parts[k]}" for k in ("SAMLRequest", "RelayState", "SigAlg") if k in parts
    )
    signature = base64.b64decode(unquote(parts["Signature"]))
    cert = x509.load_pem_x509_certificate(sp_certificate.encode())
    cert.public_key().verify(signature, signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert parse_qs(query)["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]


def _second_saml(admin: Scim, saml_idp: FakeIdp) -> dict[str, Any]:
    resp = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Okta", "metadata_xml": saml_idp.metadata_xml()},
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _oidc_login(client: FlaskClient, conn: dict[str, Any]) -> Any:
    start = client.get(f"/sso/oidc/{conn['id']}/start?next=/app")
    assert start.status_code == 302, start.get_data(as_text=True)
    at_op = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    assert at_op.status_code == 302, at_op.text
    back = urlsplit(at_op.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


# -- stored sealed, used in clear -------------------------------------------------------------


def test_oidc_client_secret_is_sealed_in_the_database(
    app: Flask, admin: Scim, client: FlaskClient, scim: Scim, oidc_conn: dict[str, Any]
) -> None:
    """The column holds a v1 ciphertext, not the secret; the view never shows it; login works."""
    stored = _raw(app, oidc_conn["id"])["client_secret"]
    assert stored.startswith("enc:v1:") and CLIENT_SECRET not in stored
    assert base64.urlsafe_b64encode(CLIENT_SECRET.encode()).decode()[:12] not in stored
    view = admin.get(f"/api/v1/sso/connections/{oidc_conn['id']}")
    assert view.status_code == 200
    assert view.get_json()["client_secret_set"] is True
    assert "client_secret" not in view.get_json() and stored not in view.get_data(as_text=True)
    # The provider checks the secret at its token endpoint (client_secret_basic): it was opened.
    user_id = make_person(app, scim)
    resp = _oidc_login(client, oidc_conn)
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    with client.session_transaction() as sess:
        assert sess["sso"]["user_id"] == user_id


def test_same_client_secret_again_is_no_change(
    app: Flask, admin: Scim, oidc_conn: dict[str, Any]
) -> None:
    """PATCHing the secret it already has: nothing stored, nothing audited (compared in clear)."""
    before = _raw(app, oidc_conn["id"])["client_secret"]
    url = f"/api/v1/sso/connections/{oidc_conn['id']}"
    assert admin.patch(url, {"client_secret": CLIENT_SECRET}).status_code == 200
    assert _raw(app, oidc_conn["id"])["client_secret"] == before
    assert [e.action for e in events(app, admin.org_id, "sso.connection.update")] == []
    assert admin.patch(url, {"client_secret": "another"}).status_code == 200
    after = _raw(app, oidc_conn["id"])["client_secret"]
    assert after != before and after.startswith("enc:v1:") and "another" not in after
    [event] = events(app, admin.org_id, "sso.connection.update")
    assert event.changes == {"client_secret": "(changed)"}


def test_saml_sp_private_key_is_sealed_in_the_database(
    app: Flask, admin: Scim, client: FlaskClient, saml_connection: SamlConnection
) -> None:
    """No PEM in the column or the view; the AuthnRequest is still signed with the SP key."""
    stored = _raw(app, saml_connection.id)["sp_private_key"]
    assert stored.startswith("enc:v1:") and "PRIVATE KEY" not in stored
    # No base64 DER of the key either. (Not "MII" as such: random ciphertext holds it ~1% of runs.)
    with app.app_context(), read(app) as s:
        conn = s.get(SsoConnection, (admin.org_id, saml_connection.id))
        pem = secret_for_use(conn, "sp_private_key")
    der = "".join(pem.strip().splitlines()[1:-1])
    assert len(der) > 500 and der[:48] not in stored and der[-48:] not in stored
    view = admin.get(f"/api/v1/sso/connections/{saml_connection.id}").get_data(as_text=True)
    assert "PRIVATE KEY" not in view and stored not in view
    resp = _saml_start(client, saml_connection)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    _assert_signed_by_sp(resp.headers["Location"], saml_connection.data["sp_certificate"])


# -- bound to its connection ------------------------------------------------------------------


def test_sp_key_copied_to_another_connection_does_not_open(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """Connection A's sealed key written into B: B refuses (secret_unreadable), A still works."""
    other = _second_saml(admin, saml_idp)
    _store(app, other["id"], sp_private_key=_raw(app, saml_connection.id)["sp_private_key"])
    resp = client.get(f"/sso/saml/{other['id']}/start")
    record = assert_refused(app, admin.org_id, resp, "secret_unreadable")
    assert record.connection_id == other["id"]
    assert "cannot be decrypted" in record.detail
    assert _saml_start(client, saml_connection).status_code == 302


def test_client_secret_copied_to_another_connection_does_not_open(
    app: Flask, admin: Scim, client: FlaskClient, oidc_conn: dict[str, Any], local_op: LocalOP
) -> None:
    """An OIDC ciphertext moved to another connection of the same organization is refused."""
    other = _create_oidc(admin, local_op.issuer, name="Copy")
    _store(app, other["id"], client_secret=_raw(app, oidc_conn["id"])["client_secret"])
    resp = client.get(f"/sso/oidc/{other['id']}/start")
    assert_refused(app, admin.org_id, resp, "secret_unreadable")
    assert client.get(f"/sso/oidc/{oidc_conn['id']}/start").status_code == 302


# -- a changed server secret --------------------------------------------------------------------


def test_changed_server_secret_refuses_saml_sign_in_clearly(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    saml_connection: SamlConnection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another SCIM_SECRET_KEY: a generic refusal page, the cause logged and recorded, no 500."""
    app.config["OAUTH_KEY_SECRET"] = SECOND
    with caplog.at_level(logging.ERROR, logger="sso.connections.secrets"):
        resp = _saml_start(client, saml_connection)
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    assert "Traceback" not in page and "SCIM_SECRET_KEY" not in page
    record = assert_refused(app, admin.org_id, resp, "secret_unreadable")
    assert "SCIM_SECRET_KEY changed" in record.detail and "encrypt-secrets" in record.detail
    assert any(
        "sp_private_key cannot be decrypted" in r.getMessage() and r.levelno == logging.ERROR
        for r in caplog.records
    )
    # The SP metadata needs the settings too: a refusal, not a 500.
    metadata = client.get(f"/sso/saml/{saml_connection.id}/metadata")
    assert metadata.status_code == 400 and metadata.mimetype == "text/html"
    api = admin.get(f"/api/v1/sso/connections/{saml_connection.id}/sp-metadata")
    assert api.status_code == 400 and "cannot be decrypted" in api.get_json()["detail"]


def test_changed_server_secret_then_client_secret_entered_again(
    app: Flask, admin: Scim, client: FlaskClient, scim: Scim, oidc_conn: dict[str, Any]
) -> None:
    """OIDC refuses with secret_unreadable; re-entering the client secret makes login work again."""
    app.config["OAUTH_KEY_SECRET"] = SECOND
    resp = client.get(f"/sso/oidc/{oidc_conn['id']}/start")
    assert_refused(app, admin.org_id, resp, "secret_unreadable")
    # The person is told it is for the administrator, not to retry.
    assert "needs its administrator" in resp.get_data(as_text=True)
    url = f"/api/v1/sso/connections/{oidc_conn['id']}"
    patched = admin.patch(url, {"client_secret": CLIENT_SECRET})
    assert patched.status_code == 200 and patched.get_json()["client_secret_set"] is True
    [event] = events(app, admin.org_id, "sso.connection.update")
    assert event.changes == {"client_secret": "(changed)"}
    make_person(app, scim)
    assert _oidc_login(client, oidc_conn).status_code == 303


def test_rotation_reseals_with_the_previous_secret(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """encrypt_secrets with the old secret re-seals under the new one; SAML sign-in works again."""
    before = _raw(app, saml_connection.id)["sp_private_key"]
    with read(app) as s:
        [untouched] = encrypt_secrets(s, SECOND.encode())
    assert (untouched.status, untouched.field) == ("unreadable", "sp_private_key")
    assert _raw(app, saml_connection.id)["sp_private_key"] == before
    with read(app) as s:
        [state] = encrypt_secrets(s, SECOND.encode(), previous=FIRST.encode())
    assert (state.connection_id, state.status) == (saml_connection.id, "resealed")
    after = _raw(app, saml_connection.id)["sp_private_key"]
    assert after != before and after.startswith("enc:v1:")
    [event] = events(app, admin.org_id, "sso.connection.secrets")
    assert event.changes == {"sp_private_key": "(resealed)"}
    app.config["OAUTH_KEY_SECRET"] = SECOND
    make_person(app, scim)
    request_id = saml_connection.start()
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert resp.status_code == 303, resp.get_data(as_text=True)


# -- values written before encryption existed ------------------------------------------------


def test_legacy_clear_sp_key_works_and_next_write_seals_it(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    saml_connection: SamlConnection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A clear PEM (pre-upgrade row) still signs, with a warning; the next PATCH seals it."""
    stored = _raw(app, saml_connection.id)["sp_private_key"]
    pem = open_connection_secret(
        FIRST.encode(), admin.org_id, saml_connection.id, "sp_private_key", stored
    )
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    _store(app, saml_connection.id, sp_private_key=pem)
    with caplog.at_level(logging.WARNING, logger="sso.connections.secrets"):
        resp = _saml_start(client, saml_connection)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    _assert_signed_by_sp(resp.headers["Location"], saml_connection.data["sp_certificate"])
    assert any("stored in clear" in r.getMessage() for r in caplog.records)
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    assert admin.patch(url, {"name": "Entra ID (prod)"}).status_code == 200
    stored = _raw(app, saml_connection.id)["sp_private_key"]
    assert stored.startswith("enc:v1:") and "PRIVATE KEY" not in stored
    [event] = events(app, admin.org_id, "sso.connection.update")
    assert event.changes["sp_private_key"] == "(encrypted at rest)"
    resp = _saml_start(client, saml_connection)
    assert resp.status_code == 302
    _assert_signed_by_sp(resp.headers["Location"], saml_connection.data["sp_certificate"])


def test_encrypt_secrets_seals_legacy_values_once(
    app: Flask, admin: Scim, client: FlaskClient, oidc_conn: dict[str, Any]
) -> None:
    """A clear client secret is sealed by encrypt_secrets; a second run changes nothing."""
    _store(app, oidc_conn["id"], client_secret=CLIENT_SECRET)
    with read(app) as s:
        [state] = encrypt_secrets(s, FIRST.encode())
    assert (state.field, state.status) == ("client_secret", "sealed")
    stored = _raw(app, oidc_conn["id"])["client_secret"]
    assert stored.startswith("enc:v1:") and CLIENT_SECRET not in stored
    with read(app) as s:
        assert [x.status for x in encrypt_secrets(s, FIRST.encode())] == ["current"]
    assert _raw(app, oidc_conn["id"])["client_secret"] == stored
    with read(app) as s:
        actions = s.scalars(
            select(AuditEvent.action).where(
                AuditEvent.org_id == admin.org_id, AuditEvent.resource_id == oidc_conn["id"]
            )
        ).all()
    assert actions.count("sso.connection.secrets") == 1
    assert client.get(f"/sso/oidc/{oidc_conn['id']}/start").status_code == 302


# -- the sealing itself ------------------------------------------------------------------------


def test_sealed_value_is_authenticated_and_versioned() -> None:
    """Tampering, another field or connection, another secret or an unknown version: refused."""
    key = FIRST.encode()
    sealed = seal_connection_secret(key, "org", "conn-a", "client_secret", "s3cret")
    assert sealed != seal_connection_secret(key, "org", "conn-a", "client_secret", "s3cret")
    assert open_connection_secret(key, "org", "conn-a", "client_secret", sealed) == "s3cret"
    raw = bytearray(base64.urlsafe_b64decode(sealed.removeprefix("enc:v1:")))
    raw[-1] ^= 1
    tampered = "enc:v1:" + base64.urlsafe_b64encode(bytes(raw)).decode()
    refusals = [
        (key, "org", "conn-a", "client_secret", tampered),
        (key, "org", "conn-b", "client_secret", sealed),
        (key, "other-org", "conn-a", "client_secret", sealed),
        (key, "org", "conn-a", "sp_private_key", sealed),
        (SECOND.encode(), "org", "conn-a", "client_secret", sealed),
        (key, "org", "conn-a", "client_secret", sealed.replace("enc:v1:", "enc:v2:")),
        (key, "org", "conn-a", "client_secret", "enc:v1:!!"),
    ]
    for args in refusals:
        with pytest.raises(SealedSecretError, match="cannot be decrypted"):
            open_connection_secret(*args)


def test_purposes_derive_different_keys() -> None:
    """The same server secret under another HKDF purpose does not open a connection secret."""
    key = FIRST.encode()
    sealed = seal(key, "x", purpose=CONNECTION_SECRETS, context=b"c")
    assert unseal(key, sealed, purpose=CONNECTION_SECRETS, context=b"c") == "x"
    with pytest.raises(SealedSecretError):
        unseal(key, sealed, purpose=b"scim-server oauth signing keys v1", context=b"c")


# -- the command line --------------------------------------------------------------------------


def test_cli_encrypt_secrets(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """sso encrypt-secrets: seals clear values, re-seals with SCIM_PREVIOUS_SECRET_KEY, idempotent."""
    from scim_server import create_app
    from scim_server.cli import main
    from sso.connections.sealing import encryption_secret
    from sso.connections.service import create_connection

    db_file = tmp_path / "cli.db"
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{db_file}")
    monkeypatch.setenv("SCIM_SECRET_KEY", FIRST)
    monkeypatch.delenv("SCIM_PREVIOUS_SECRET_KEY", raising=False)
    runner = CliRunner()
    made = runner.invoke(main, ["org", "create", "acme"], catch_exceptions=False)
    assert made.exit_code == 0
    org_id = made.output.strip()
    cli_app = create_app()
    fields = {"protocol": "oidc", "issuer": "https://id.example.com", "client_id": "c"}
    with db.writer(cli_app)() as s:
        with_secret = {**fields, "client_secret": "one"}
        sealed = create_connection(s, org_id, with_secret, "", secret=encryption_secret(cli_app)).id
        legacy = create_connection(s, org_id, fields, "", secret=encryption_secret(cli_app)).id
    db.engine(cli_app).dispose()
    with sqlite3.connect(db_file) as conn:
        conn.execute("UPDATE sso_connections SET client_secret = 'two' WHERE id = ?", (legacy,))

    monkeypatch.setenv("SCIM_SECRET_KEY", SECOND)
    out = runner.invoke(main, ["sso", "encrypt-secrets"])
    assert out.exit_code == 1
    assert f"{sealed}\tclient_secret\tunreadable" in out.output
    assert f"{legacy}\tclient_secret\tsealed" in out.output
    assert "SCIM_PREVIOUS_SECRET_KEY" in out.output

    monkeypatch.setenv("SCIM_PREVIOUS_SECRET_KEY", FIRST)
    out = runner.invoke(main, ["sso", "encrypt-secrets"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert f"{sealed}\tclient_secret\tresealed" in out.output
    out = runner.invoke(main, ["sso", "encrypt-secrets"], catch_exceptions=False)
    assert out.exit_code == 0 and "\t" not in out.output
    assert "2 secret(s) already encrypted" in out.output

    with sqlite3.connect(db_file) as conn:
        rows = dict(conn.execute("SELECT id, client_secret FROM sso_connections").fetchall())
    key = SECOND.encode()
    assert open_connection_secret(key, org_id, sealed, "client_secret", rows[sealed]) == "one"
    assert open_connection_secret(key, org_id, legacy, "client_secret", rows[legacy]) == "two"


# Sealed by sso.connections.sealing before the primitive moved to scim_server.sealing (FIRST as
# the server secret): what databases hold today must still open.
OLD_CLIENT_SECRET = "enc:v1:jHUMAjZt9avAYZ3xIo5zVrL174QpjHNvOv8aUmTl2j7fDg=="
OLD_SP_KEY = "enc:v1:rqTTV85-xjtMCbXm-ASf8gTHL8VZ_LSwazs901_69nLYsX-b-szY7VR8oGh4uFUDLcyQeFiXiA=="
OLD_TOTP = "enc:v1:BsY636LHIyH4gVWRl3Wy1zdGMHEhA6-7ZzmUYMliWWWQPFd6WWcVyPfhiH8="


def test_values_sealed_before_the_move_still_open() -> None:
    """Connection secrets and a TOTP secret sealed by the old code open with the shared
    primitive; its error is the one sso code catches."""
    from scim_server import sealing as shared
    from sso.local import keys

    key = FIRST.encode()
    assert open_connection_secret(key, "org-1", "conn-1", "client_secret", OLD_CLIENT_SECRET) == (
        "s3cret"
    )
    sp_key = open_connection_secret(key, "org-1", "conn-1", "sp_private_key", OLD_SP_KEY)
    assert sp_key == "-----BEGIN PRIVATE KEY-----"
    assert keys.open_totp(key, "org-1", "factor-1", OLD_TOTP) == "JBSWY3DPEHPK3PXP"
    assert SealedSecretError is shared.SealedSecretError
    with pytest.raises(shared.SealedSecretError):
        open_connection_secret(key, "org-1", "conn-2", "client_secret", OLD_CLIENT_SECRET)
