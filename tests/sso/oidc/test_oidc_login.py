"""OIDC logins end to end through /sso, against a real provider on 127.0.0.1 (tests/sso/oidc_op)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

import mappings
from tests.sso.oidc_op.provider import LocalOP
from tests.sso.signin.test_mapping import engineering_rules, state
from tests.support import Scim
from tests.support.admin_api import person
from tests.support.sso import assert_refused, events, make_person, oidc_login, sign_ins


class _StandInIdentity:
    """Used only while ``mappings.ExternalIdentity`` is not there yet (it is being written)."""

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims

    @classmethod
    def from_oidc(cls, claims: dict[str, Any]) -> _StandInIdentity:
        return cls(claims)


@pytest.fixture(autouse=True)
def _external_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(mappings, "ExternalIdentity"):
        monkeypatch.setattr(mappings, "ExternalIdentity", _StandInIdentity, raising=False)


def test_oidc_login_signs_in(
    app: Flask, client: FlaskClient, scim: Scim, oidc_conn: dict[str, Any]
) -> None:
    """Code flow with PKCE through our callback: signed in, recorded, redirected to next."""
    user_id = make_person(app, scim)
    resp = oidc_login(client, oidc_conn)
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    with client.session_transaction() as sess:
        assert sess["sso"]["user_id"] == user_id and sess["sso"]["method"] == "oidc"
    record = sign_ins(app, scim.org_id)[-1]
    assert (record.outcome, record.protocol, record.subject) == ("success", "oidc", "user-42")


def test_oidc_unverified_email_is_not_trusted(
    app: Flask, client: FlaskClient, scim: Scim, oidc_conn: dict[str, Any], local_op: LocalOP
) -> None:
    """email_verified=false: the address is dropped, so the domain allow-list refuses."""
    make_person(app, scim)
    local_op.user["email_verified"] = False
    resp = oidc_login(client, oidc_conn)
    assert_refused(app, scim.org_id, resp, "email_domain_not_allowed")


def test_oidc_callback_replay_is_refused(
    app: Flask, client: FlaskClient, scim: Scim, oidc_conn: dict[str, Any]
) -> None:
    """The same callback twice: the state was consumed, the second is refused."""
    make_person(app, scim)
    start = client.get(f"/sso/oidc/{oidc_conn['id']}/start")
    at_op = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(at_op.headers["Location"])
    assert client.get(f"{back.path}?{back.query}").status_code == 303
    assert_refused(app, scim.org_id, client.get(f"{back.path}?{back.query}"), "state_mismatch")


def test_oidc_provider_refusal(
    app: Flask, client: FlaskClient, scim: Scim, oidc_conn: dict[str, Any], local_op: LocalOP
) -> None:
    """The provider says access_denied: idp_error, a generic page."""
    local_op.deny = True
    resp = oidc_login(client, oidc_conn)
    assert_refused(app, scim.org_id, resp, "idp_error")


def test_oidc_unknown_user(
    app: Flask, client: FlaskClient, scim: Scim, oidc_conn: dict[str, Any]
) -> None:
    """A verified identity with no account and JIT off: unknown_user (same decision as SAML)."""
    assert_refused(app, scim.org_id, oidc_login(client, oidc_conn), "unknown_user")


def test_oidc_groups_claim_gives_a_known_user_the_license(
    app: Flask, client: FlaskClient, admin: Scim, scim: Scim, oidc_conn: dict[str, Any]
) -> None:
    """Known user, no license; rule on the groups claim: let in with it, audited with why."""
    engineering_rules(admin)
    user_id = person(scim, "alice@example.com")["id"]
    assert state(app, scim.org_id, user_id)["license"] is None

    resp = oidc_login(client, oidc_conn)  # the provider sends groups: ["Engineering"]

    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    after = state(app, scim.org_id, user_id)
    assert (after["license"], after["license_rule"]) == ("Engineer", "engineering")
    assert after["roles"] == [("Builder", "rule", "engineering")]
    (mapped,) = events(app, scim.org_id, "user.mapping")
    assert mapped.actor_id == oidc_conn["id"] and "oidc" in mapped.detail
    assert mapped.changes["license"]["rule"] == "engineering"
    success = events(app, scim.org_id)[-1]
    assert success.action == "signin.success" and success.resource_id == user_id
    assert [r["rule"] for r in success.explanation["mapping"]["matched"]] == ["engineering"]
    record = sign_ins(app, scim.org_id)[-1]
    assert (record.outcome, record.protocol) == ("success", "oidc")
    assert record.data["mapping"]["applied"] is True


def test_oidc_without_groups_claim_refuses_a_known_user_without_license(
    app: Flask,
    client: FlaskClient,
    admin: Scim,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
) -> None:
    """The same rule, no groups claim and no SCIM group: missing_license, nothing given."""
    engineering_rules(admin)
    user_id = person(scim, "alice@example.com")["id"]
    before = state(app, scim.org_id, user_id)
    del local_op.user["groups"]

    assert_refused(app, scim.org_id, oidc_login(client, oidc_conn), "missing_license")
    assert state(app, scim.org_id, user_id) == before


def test_oidc_fullwidth_mail_claim_never_selects_an_account(
    app: Flask, client: FlaskClient, scim: Any, oidc_conn: dict[str, Any], local_op: Any
) -> None:
    """README: for OIDC only ``sub`` and ``email`` with ``email_verified`` select an account,
    "any other claim never do". A claim named "mail" in fullwidth letters (U+FF4D...) survives the drop of
    address claims (``str.casefold``) but is read as ``mail`` by the vocabulary (NFKC fold),
    and ``mail`` comes before ``email``: the verified address is replaced by an unverified one
    and the sign-in enters the account holding it."""
    victim = make_person(app, scim, "ceo@example.com")
    local_op.user.update(sub="mallory-1", email="mallory@example.com", email_verified=True)
    local_op.user["\uff4d\uff41\uff49\uff4c"] = "ceo@example.com"
    local_op.userinfo_overrides["\uff4d\uff41\uff49\uff4c"] = "ceo@example.com"
    resp = oidc_login(client, oidc_conn)
    with client.session_transaction() as sess:
        signed_in_as = (sess.get("sso") or {}).get("user_id")
    assert signed_in_as != victim, "mallory entered ceo@example.com's account"
    record = sign_ins(app, scim.org_id)[-1]
    assert record.user_id != victim, (resp.status_code, record.outcome, record.email)


def test_oidc_back_channel_to_loopback_is_refused_in_production(
    app: Flask,
    client: FlaskClient,
    admin: Any,
    local_op: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An organization's admin sets the OIDC issuer; the server then fetches it (discovery,
    then token, JWKS and userinfo URLs the document names). ``secure_url`` lets plain http to
    127.0.0.1 through "for tests and local development only", but checks no SCIM_ENV, and no
    address is checked at all: a tenant admin makes a production server call its own
    loopback services (SSRF), which the SAML metadata fetch and webhooks both refuse."""
    local_op.reset()
    monkeypatch.setitem(app.config, "SCIM_ENV", "production")
    resp = admin.post(
        "/api/v1/sso/connections",
        {
            "protocol": "oidc",
            "name": "Internal",
            "issuer": local_op.issuer,  # http://127.0.0.1:<port>
            "client_id": "rp-client",
            "client_secret": "x",
        },
    )
    if resp.status_code == 400:
        return  # refused when configured: fixed
    assert resp.status_code == 201, resp.get_json()
    start = client.get(f"/sso/oidc/{resp.get_json()['id']}/start")
    location = start.headers.get("Location", "")
    assert not location.startswith(local_op.issuer), (
        "production server fetched http://127.0.0.1 discovery and redirected to it"
    )
