"""Proof of ownership of an SSO e-mail domain: a DNS TXT record, asked of a real DNS server.

A claim routes nothing (discovery, the assertion allow-list, the password sign-in's
organization) until ``_scim-server-verification.<domain>`` carries the organization's
token, or the operator vouches for it on the command line. The DNS server is the suite's
own on 127.0.0.1 (``tests.support.dns_server``), never a mock of dnspython.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scim_server.db import db, utcnow
from sso.connections.models import SsoEmailDomain
from sso.local import accounts, routing
from sso.signin import domains
from tests.sso.saml_idp import WS, FakeIdp, valid_response
from tests.support import Scim
from tests.support.admin_api import admin_of
from tests.support.dns_server import SERVFAIL, SILENT, LocalDns, add_verified_domain
from tests.support.sso import SamlConnection, assert_refused, events, make_person, read

RECORD = "_scim-server-verification.contoso.test"


def _claim(admin: Scim, domain: str = "contoso.test", **extra: Any) -> dict[str, Any]:
    resp = admin.post("/api/v1/sso/domains", {"domain": domain, **extra})
    assert resp.status_code == 201, resp.get_json()
    body: dict[str, Any] = resp.get_json()
    return body


def _verify(admin: Scim, domain: str = "contoso.test") -> Any:
    return admin.post(f"/api/v1/sso/domains/{domain}/verify", None)


def test_a_claim_is_pending_with_the_record_to_publish(admin: Scim) -> None:
    """POST /sso/domains: verified false, the TXT record's name and value, listed as such."""
    body = _claim(admin)
    assert body["verified"] is False and body["verified_at"] is None
    record = body["verification"]
    assert record["type"] == "TXT" and record["name"] == RECORD
    token = record["value"].removeprefix("scim-server-verification=")
    assert len(token) >= 32 and token != record["value"]
    assert admin.get("/api/v1/sso/domains").get_json()["domains"] == [body]


def test_verify_finds_the_record(app: Flask, admin: Scim, scim: Scim, local_dns: LocalDns) -> None:
    """The record published: 200, verified, no record shown any more, sso.domain.verify (dns)."""
    record = _claim(admin)["verification"]
    local_dns.publish(record["name"], "v=spf1 -all")  # other TXT records at the name are fine
    local_dns.publish(record["name"], record["value"])
    resp = _verify(admin)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["verified"] is True and body["verified_at"] and body["verification"] is None
    assert local_dns.questions == [RECORD]
    [event] = events(app, scim.org_id, "sso.domain.verify")
    assert (event.resource_id, event.detail, event.outcome) == ("contoso.test", "dns", "success")
    assert event.actor_type == "admin"  # the admin token that asked
    again = _verify(admin)  # already verified: as it is, no DNS question, no second event
    assert again.status_code == 200 and again.get_json() == body
    assert local_dns.questions == [RECORD]
    assert len(events(app, scim.org_id, "sso.domain.verify")) == 1


def test_verify_without_the_record_names_it(admin: Scim, local_dns: LocalDns) -> None:
    """No such name (NXDOMAIN), the name without TXT, or another token: 409 naming the record."""
    record = _claim(admin)["verification"]
    resp = _verify(admin)
    assert resp.status_code == 409
    detail = resp.get_json()["detail"]
    assert "NXDOMAIN" in detail and RECORD in detail and record["value"] in detail
    local_dns.records[RECORD] = []
    resp = _verify(admin)
    assert resp.status_code == 409 and "has no TXT record" in resp.get_json()["detail"]
    local_dns.publish(RECORD, "scim-server-verification=someone-elses-token")
    resp = _verify(admin)
    assert resp.status_code == 409
    assert (
        "none with it" in resp.get_json()["detail"] and record["value"] in resp.get_json()["detail"]
    )
    [domain] = admin.get("/api/v1/sso/domains").get_json()["domains"]
    assert domain["verified"] is False


@pytest.mark.parametrize("mode", [SILENT, SERVFAIL])
def test_dns_failure_is_a_clear_503(
    app: Flask, admin: Scim, local_dns: LocalDns, mode: str
) -> None:
    """The DNS server silent (timeout) or failing (SERVFAIL): 503 with the reason, not verified."""
    _claim(admin)
    app.config["DNS_TIMEOUT_SECONDS"] = 0.5
    local_dns.mode = mode
    resp = _verify(admin)
    assert resp.status_code == 503
    detail = resp.get_json()["detail"]
    assert RECORD in detail
    assert ("timed out" in detail) if mode == SILENT else ("SERVFAIL" in detail)
    assert admin.get("/api/v1/sso/domains").get_json()["domains"][0]["verified"] is False


def test_unknown_domain_is_404(admin: Scim, other_scim: Scim, local_dns: LocalDns) -> None:
    """Verify of a domain the organization did not claim (another's claim included): 404."""
    _claim(admin_of(other_scim))
    assert _verify(admin).status_code == 404
    assert _verify(admin, "not a domain").status_code == 400
    assert local_dns.questions == []


def test_second_organization_may_claim_but_not_verify(
    app: Flask, admin: Scim, other_scim: Scim, local_dns: LocalDns
) -> None:
    """Two claims of one domain: the first verified holds it; the other's record does not help,
    and a new claim is refused while it is held. Removed by its holder: the other verifies."""
    other = admin_of(other_scim)
    ours, theirs = _claim(admin)["verification"], _claim(other)["verification"]
    assert ours["value"] != theirs["value"]
    for record in (ours, theirs):
        local_dns.publish(record["name"], record["value"])
    assert _verify(admin).status_code == 200
    resp = _verify(other)
    assert resp.status_code == 409 and "another organization" in resp.get_json()["detail"]
    assert other.get("/api/v1/sso/domains").get_json()["domains"][0]["verified"] is False
    third = admin_of(Scim(admin.client, "", _new_org(app, "initech")))
    resp = third.post("/api/v1/sso/domains", {"domain": "contoso.test"})
    assert (
        resp.status_code == 409 and "verified by another organization" in resp.get_json()["detail"]
    )
    assert admin.delete("/api/v1/sso/domains/contoso.test").status_code == 204
    assert _verify(other).status_code == 200


def _new_org(app: Flask, name: str) -> str:
    from tests.support import make_org

    org_id, _secret = make_org(app, name)
    return org_id


def test_one_verified_holder_is_enforced_by_the_database(
    session: Session, scim: Scim, other_scim: Scim
) -> None:
    """The partial unique index: two pending claims are fine, a second verified row is refused
    (what two verifications racing on two nodes meet)."""
    with session.begin():
        for org_id in (scim.org_id, other_scim.org_id):
            session.add(SsoEmailDomain(org_id=org_id, domain="race.test", verification_token="t"))
    with session.begin():
        session.execute(
            update(SsoEmailDomain)
            .where(SsoEmailDomain.org_id == scim.org_id)
            .values(verified_at=utcnow())
        )
    with pytest.raises(IntegrityError), session.begin():
        session.execute(
            update(SsoEmailDomain)
            .where(SsoEmailDomain.org_id == other_scim.org_id)
            .values(verified_at=utcnow())
        )


def test_a_lost_race_is_409(
    app: Flask, admin: Scim, other_scim: Scim, local_dns: LocalDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another organization verifies while our DNS question is out: 409 (the index), not 500."""
    other = admin_of(other_scim)
    for record in (_claim(admin)["verification"], _claim(other)["verification"]):
        local_dns.publish(record["name"], record["value"])
    real = domains.txt_records.txt_values

    def answer_after_theirs(*args: Any) -> Any:
        values = real(*args)
        with read(app) as s, s.begin():  # their verification commits first
            s.execute(
                update(SsoEmailDomain)
                .where(SsoEmailDomain.org_id == other_scim.org_id)
                .values(verified_at=utcnow(), verification_token=None)
            )
        monkeypatch.setattr(domains, "_taken", lambda *a: False)  # past the check, at the write
        return values

    monkeypatch.setattr(domains.txt_records, "txt_values", answer_after_theirs)
    resp = _verify(admin)
    assert resp.status_code == 409 and "another organization" in resp.get_json()["detail"]
    assert admin.get("/api/v1/sso/domains").get_json()["domains"][0]["verified"] is False


def test_discovery_ignores_a_pending_claim(
    client: FlaskClient, admin: Scim, saml_connection: SamlConnection, local_dns: LocalDns
) -> None:
    """Another tenant's people at contoso.test are not sent to this organization's IdP while its
    claim is pending; once verified they are."""
    record = _claim(admin, connection_id=saml_connection.id)["verification"]
    resp = client.post("/sso/login", data={"email": "ceo@contoso.test"})
    assert resp.status_code == 200 and 'action="/sso/login/password"' in resp.get_data(as_text=True)
    local_dns.publish(record["name"], record["value"])
    assert _verify(admin).status_code == 200
    resp = client.post("/sso/login", data={"email": "ceo@contoso.test"})
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith(f"/sso/saml/{saml_connection.id}/start")


def test_pending_domain_is_not_in_the_allow_list(
    app: Flask, scim: Scim, admin: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """An assertion for an address at a pending domain of the organization is refused."""
    _claim(admin)
    make_person(app, scim, "ceo@contoso.test")
    request_id = saml_connection.start()
    assertion = saml_connection.assertion(
        request_id,
        name_id="ceo@contoso.test",
        attributes={WS + "emailaddress": ["ceo@contoso.test"]},
    )
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    assert_refused(app, scim.org_id, resp, "email_domain_not_allowed")


def test_password_routing_ignores_a_pending_claim(
    app: Flask, admin: Scim, scim: Scim, other_scim: Scim, local_dns: LocalDns
) -> None:
    """Which organization an address belongs to: the verified holder only."""
    _claim(admin_of(other_scim))
    record = _claim(admin)["verification"]
    with read(app) as s:
        assert accounts.domain_org(s, "ceo@contoso.test") is None
        assert routing.route(s, "ceo@contoso.test") == routing.Route()
        assert not domains.domain_allowed(s, scim.org_id, "ceo@contoso.test", "any-connection")
    local_dns.publish(record["name"], record["value"])
    assert _verify(admin).status_code == 200
    with read(app) as s:
        assert accounts.domain_org(s, "ceo@contoso.test") == scim.org_id
        assert domains.domain_allowed(s, scim.org_id, "ceo@contoso.test", "any-connection")
        assert not domains.domain_allowed(
            s, other_scim.org_id, "ceo@contoso.test", "any-connection"
        )


def test_add_verified_domain_helper_goes_through_dns(admin: Scim, local_dns: LocalDns) -> None:
    """The suite's helper verifies the real way: a question for the record reached the server."""
    add_verified_domain(admin, "fabrikam.test")
    assert local_dns.questions == ["_scim-server-verification.fabrikam.test"]


# -- the operator's override (command line) ----------------------------------------------------


def _cli_org(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, str, Any]:
    from scim_server import create_app
    from scim_server.cli import main

    db_file = tmp_path / "cli.db"
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{db_file}")
    runner = CliRunner()
    made = runner.invoke(main, ["org", "create", "acme"], catch_exceptions=False)
    assert made.exit_code == 0, made.output
    org_id = made.output.strip()
    cli_app = create_app()
    with db.writer(cli_app)() as s:
        domains.add_domain(s, org_id, "contoso.test")
    db.engine(cli_app).dispose()
    return runner, org_id, db_file


def test_cli_verifies_without_dns(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """sso domain verify --without-dns: verified, audited as the command line (operator)."""
    from scim_server.cli import main

    runner, org_id, db_file = _cli_org(tmp_path, monkeypatch)
    args = ["sso", "domain", "verify", "--org", "acme", "Contoso.TEST", "--without-dns"]
    out = runner.invoke(main, args, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.startswith("contoso.test\tverified ")
    with sqlite3.connect(db_file) as conn:
        row = conn.execute(
            "SELECT verified_at, verification_token FROM sso_email_domains WHERE org_id = ?",
            (org_id,),
        ).fetchone()
        event = conn.execute(
            "SELECT actor_type, actor_name, detail FROM audit_events WHERE action = ?",
            ("sso.domain.verify",),
        ).fetchone()
    assert row[0] is not None and row[1] is None
    assert event == ("cli", "scim-server sso domain verify --without-dns", "operator")
    missing = runner.invoke(
        main, ["sso", "domain", "verify", "--org", "acme", "x.test", "--without-dns"]
    )
    assert missing.exit_code == 1 and "not registered for this organization" in missing.output


def test_cli_verifies_by_dns(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, local_dns: LocalDns
) -> None:
    """sso domain verify (no flag): the TXT record as the API asks for it; exit 1 naming it."""
    from scim_server.cli import main

    runner, _org_id, db_file = _cli_org(tmp_path, monkeypatch)
    monkeypatch.setenv("SCIM_DNS_RESOLVERS", f"127.0.0.1:{local_dns.port}")
    args = ["sso", "domain", "verify", "--org", "acme", "contoso.test"]
    out = runner.invoke(main, args)
    assert out.exit_code == 1 and RECORD in out.output
    with sqlite3.connect(db_file) as conn:
        (token,) = conn.execute("SELECT verification_token FROM sso_email_domains").fetchone()
    local_dns.publish(RECORD, f"scim-server-verification={token}")
    out = runner.invoke(main, args, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    with sqlite3.connect(db_file) as conn:
        assert conn.execute(
            "SELECT actor_name, detail FROM audit_events WHERE action = ?", ("sso.domain.verify",)
        ).fetchone() == ("scim-server sso domain verify", "dns")


def test_a_german_sharp_s_domain_is_not_the_same_as_its_ss_spelling(
    app: Flask, client: FlaskClient, admin: Scim, other_scim: Scim
) -> None:
    """``straße.de`` is ``xn--strae-oqa.de`` under IDNA 2008 / UTS 46 non-transitional (what
    browsers, mail (RFC 6531) and DENIC use; a domain of its own since 2010), not the
    ``strasse.de`` of IDNA 2003: the holder of strasse.de neither blocks its owner's claim
    nor routes its addresses."""
    add_verified_domain(admin, "strasse.de")
    other = admin_of(other_scim)
    resp = other.post("/api/v1/sso/domains", {"domain": "straße.de"})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["domain"] == "xn--strae-oqa.de"
    assert domains.email_domain("ann@straße.de") == "xn--strae-oqa.de"
    assert domains.email_domain("ann@STRASSE.de") == "strasse.de"
