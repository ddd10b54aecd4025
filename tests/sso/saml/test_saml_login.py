"""SAML logins end to end through /sso: the sign-in decision and what it leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import Contact, License, User
from scim_server.services.lifecycle import ACTIVE, DEACTIVATED, LOCKED_BY_ADMIN
from sso.extension import sso_extension
from tests.sso.saml_idp import (
    WS,
    Assertion,
    FakeIdp,
    _strip_declaration,
    encrypt_assertion,
    fully_signed_response,
    sign,
    valid_response,
)
from tests.support import Scim
from tests.support.sso import (
    SamlConnection,
    assert_refused,
    events,
    make_person,
    read,
    set_default_license,
    sign_ins,
)


def test_valid_login_signs_in_and_goes_to_next(
    app: Flask, client: FlaskClient, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """A signed assertion for a licensed user: session started, ACTIVE, recorded and audited."""
    user_id = make_person(app, scim)
    request_id = saml_connection.start("/after?x=1")
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/after?x=1"
    with client.session_transaction() as sess:
        assert sess["sso"]["user_id"] == user_id
        assert sess["sso"]["method"] == "saml"
        assert sess["sso"]["connection_id"] == saml_connection.id
    with read(app) as s:
        user = s.get(User, (scim.org_id, user_id))
        assert user.status == ACTIVE and user.last_login_at is not None
    record = sign_ins(app, scim.org_id)[-1]
    assert (record.outcome, record.user_id, record.protocol) == ("success", user_id, "saml")
    assert record.subject == "alice@example.com" and record.source_ip == "127.0.0.1"
    event = events(app, scim.org_id)[-1]
    assert (event.action, event.resource_id) == ("signin.success", user_id)
    assert event.actor_id == saml_connection.id and event.source_ip == "127.0.0.1"


def test_fully_signed_response_is_accepted(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """Response and assertion both signed (Okta's option) signs in as well."""
    make_person(app, scim)
    request_id = saml_connection.start()
    resp = saml_connection.post(
        fully_signed_response(saml_connection.assertion(request_id), saml_idp)
    )
    assert resp.status_code == 303, resp.get_data(as_text=True)


def test_user_found_by_email_case_insensitively(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """The NameID ALICE@Example.com finds alice@example.com."""
    user_id = make_person(app, scim)
    request_id = saml_connection.start()
    assertion = saml_connection.assertion(request_id, name_id="ALICE@Example.com", attributes={})
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    assert resp.status_code == 303
    assert sign_ins(app, scim.org_id)[-1].user_id == user_id


def test_unknown_user_without_jit_is_refused(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """No account and JIT off: unknown_user, nobody created."""
    request_id = saml_connection.start()
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert_refused(app, scim.org_id, resp, "unknown_user")
    assert "There is no account for you" in resp.get_data(as_text=True)
    with read(app) as s:
        assert s.scalar(select(User).where(User.org_id == scim.org_id)) is None


def test_jit_creates_user_through_identity_services(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """JIT: contact, username and license (organization default, via the rules), then signed in."""
    set_default_license(app, scim.org_id, "Engineer")
    admin.client.patch(
        f"/api/v1/sso/connections/{saml_connection.id}",
        json={"jit_enabled": True},
        headers=admin.headers(),
    )
    request_id = saml_connection.start()
    attributes = {
        WS + "emailaddress": ["carol@example.com"],
        WS + "givenname": ["Carol"],
        WS + "surname": ["Shaw"],
        "department": ["Research"],
    }
    assertion = saml_connection.assertion(
        request_id, name_id="carol@example.com", attributes=attributes
    )
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    assert resp.status_code == 303, resp.get_data(as_text=True)
    with read(app) as s:
        user = s.scalar(select(User).where(User.org_id == scim.org_id))
        contact = s.get(Contact, (scim.org_id, user.contact_id))
        lic = s.get(License, (scim.org_id, user.license_id))
    assert user.user_name == "carol@example.com" and user.status == ACTIVE
    assert (contact.given_name, contact.family_name, contact.email) == (
        "Carol",
        "Shaw",
        "carol@example.com",
    )
    assert contact.department == "Research"
    assert lic.name == "Engineer" and user.license_source == "rule"
    actions = [e.action for e in events(app, scim.org_id, "")]
    assert actions.index("user.create") < actions.index("signin.success")


def _first_jit_sign_in(admin: Scim, connection: SamlConnection, idp: FakeIdp) -> Any:
    """JIT turned on for the connection, then a first sign-in of someone with no account."""
    admin.client.patch(
        f"/api/v1/sso/connections/{connection.id}",
        json={"jit_enabled": True},
        headers=admin.headers(),
    )
    request_id = connection.start()
    return connection.post(valid_response(connection.assertion(request_id), idp))


def test_jit_user_without_license_is_refused(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """JIT creates the account but no rule gives a license: missing_license."""
    resp = _first_jit_sign_in(admin, saml_connection, saml_idp)
    record = assert_refused(app, scim.org_id, resp, "missing_license")
    with read(app) as s:
        user = s.scalar(select(User).where(User.org_id == scim.org_id))
    assert user is not None and record.user_id == user.id


def test_jit_in_strict_seat_mode_without_a_seat_is_a_missing_license(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """Strict seats, the default license full: the first sign-in's account is refused as a
    SCIM create would be (none made), and the person and the record are told it is a
    license (was ``jit_failed``: "Account could not be created")."""
    from tests.support.admin_api import make_license, ok

    make_license(admin, "Engineer", 0)
    ok(admin.put("/api/v1/settings", {"default_license": "Engineer", "strict_seats": True}))
    resp = _first_jit_sign_in(admin, saml_connection, saml_idp)
    record = assert_refused(app, scim.org_id, resp, "missing_license")
    assert "No license" in resp.get_data(as_text=True)
    assert "strict seat mode" in record.detail
    with read(app) as s:
        assert s.scalar(select(User).where(User.org_id == scim.org_id)) is None


def test_inactive_account_is_refused(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """A user the IdP deactivated (SCIM active=false) cannot sign in: inactive_account."""
    user_id = make_person(app, scim)
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}", {"op": "replace", "path": "active", "value": False}
    )
    assert resp.status_code == 200
    with read(app) as s:
        assert s.get(User, (scim.org_id, user_id)).status == DEACTIVATED
    request_id = saml_connection.start()
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert_refused(app, scim.org_id, resp, "inactive_account")
    assert "not active" in resp.get_data(as_text=True)


def test_locked_account_is_refused(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """An admin-locked user: locked."""
    make_person(app, scim, status=LOCKED_BY_ADMIN)
    request_id = saml_connection.start()
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert_refused(app, scim.org_id, resp, "locked")


def test_missing_license_is_refused(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """An active user without a license: missing_license, the status unchanged."""
    user_id = make_person(app, scim, licensed=False)
    request_id = saml_connection.start()
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    record = assert_refused(app, scim.org_id, resp, "missing_license")
    assert record.user_id == user_id
    with read(app) as s:
        assert s.get(User, (scim.org_id, user_id)).last_login_at is None


def test_email_outside_the_domains_is_refused(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """An assertion for an address outside the organization's domains: email_domain_not_allowed."""
    make_person(app, scim, "mallory@evil.test")
    request_id = saml_connection.start()
    assertion = saml_connection.assertion(
        request_id,
        name_id="mallory@evil.test",
        attributes={WS + "emailaddress": ["mallory@evil.test"]},
    )
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    record = assert_refused(app, scim.org_id, resp, "email_domain_not_allowed")
    assert record.email == "mallory@evil.test"


def test_next_must_be_a_local_path(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """?next=https://evil.test is not followed: the login lands on /sso/welcome."""
    make_person(app, scim)
    request_id = saml_connection.start("https://evil.test/")
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert resp.headers["Location"] == "/sso/welcome"


def test_authn_request_is_signed(client: FlaskClient, saml_connection: SamlConnection) -> None:
    """The redirect to the IdP carries a SHA-256 signature over the AuthnRequest."""
    resp = client.get(f"/sso/saml/{saml_connection.id}/start")
    url = urlsplit(resp.headers["Location"])
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://idp.example.test/sso"
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    assert query["Signature"][0]


def test_login_started_in_another_browser_is_refused(
    app: Flask, client: FlaskClient, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """Login CSRF: a response to a request this browser did not start is refused."""
    make_person(app, scim)
    request_id = saml_connection.start()
    for cookie in list(client._cookies.values()):
        if cookie.key.startswith("sso_"):
            client.delete_cookie(cookie.key, path="/sso")
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert_refused(app, scim.org_id, resp, "state_mismatch")


def test_unsolicited_response_is_refused_by_default(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """IdP-initiated (no InResponseTo) is off unless the admin allows it."""
    make_person(app, scim)
    resp = saml_connection.post(valid_response(saml_connection.assertion(None), saml_idp))
    assert_refused(app, scim.org_id, resp, "state_mismatch")


def test_idp_initiated_login_when_allowed(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """With idp_initiated_allowed, an unsolicited response signs in; RelayState stays local."""
    make_person(app, scim)
    resp = admin.client.patch(
        f"/api/v1/sso/connections/{saml_connection.id}",
        json={"idp_initiated_allowed": True},
        headers=admin.headers(),
    )
    assert resp.get_json()["idp_initiated_allowed"] is True
    resp = saml_connection.post(
        valid_response(saml_connection.assertion(None), saml_idp), relay_state="/app/home"
    )
    assert (resp.status_code, resp.headers["Location"]) == (303, "/app/home")
    resp = saml_connection.post(
        valid_response(saml_connection.assertion(None), saml_idp), relay_state="//evil.test/x"
    )
    assert resp.headers["Location"] == "/sso/welcome"


@pytest.mark.parametrize(
    "relay",
    [
        "//evil.com",
        "/\\evil.com",
        "https:evil.com",
        "javascript:alert(1)",
        "\\\\evil.com",
        " //evil.com",
        "/\t/evil.com",
        "https://evil.com",
    ],
)
def test_idp_initiated_relay_state_never_leaves_the_site(
    app: Flask,
    admin: Scim,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    relay: str,
) -> None:
    """A RelayState that a browser would read as another site (or a script): /sso/welcome."""
    make_person(app, scim)
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    assert admin.patch(url, {"idp_initiated_allowed": True}).status_code == 200
    resp = saml_connection.post(
        valid_response(saml_connection.assertion(None), saml_idp), relay_state=relay
    )
    assert (resp.status_code, resp.headers["Location"]) == (303, "/sso/welcome")


def test_disabled_connection_is_refused(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """A disabled connection neither starts nor accepts logins."""
    make_person(app, scim)
    request_id = saml_connection.start()
    admin.client.patch(
        f"/api/v1/sso/connections/{saml_connection.id}",
        json={"enabled": False},
        headers=admin.headers(),
    )
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert_refused(app, scim.org_id, resp, "connection_disabled")
    resp = saml_connection.client.get(f"/sso/saml/{saml_connection.id}/start")
    assert resp.status_code == 403


def test_expired_request_state_is_refused(
    app: Flask, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """An answer to an AuthnRequest older than the time limit: expired."""
    from sqlalchemy import update

    from scim_server.db import utcnow
    from sso.connections.models import SsoState

    make_person(app, scim)
    request_id = saml_connection.start()
    with read(app) as s, s.begin():
        s.execute(
            update(SsoState)
            .where(SsoState.id == request_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert_refused(app, scim.org_id, resp, "expired")


def test_encrypted_assertion(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """With want_encrypted_assertions, an assertion encrypted for our SP key signs in."""
    make_person(app, scim)
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    assert admin.patch(url, {"want_encrypted_assertions": True}).status_code == 200
    request_id = saml_connection.start()
    response = valid_response(saml_connection.assertion(request_id), saml_idp)
    encrypted = encrypt_assertion(response, saml_connection.data["sp_certificate"])
    assert "EncryptedAssertion" in encrypted and "alice@example.com" not in encrypted
    resp = saml_connection.post(encrypted)
    assert resp.status_code == 303, resp.get_data(as_text=True)


def test_plain_assertion_refused_when_encryption_required(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """want_encrypted_assertions: a readable assertion is refused."""
    make_person(app, scim)
    admin.patch(
        f"/api/v1/sso/connections/{saml_connection.id}", {"want_encrypted_assertions": True}
    )
    request_id = saml_connection.start()
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert_refused(app, scim.org_id, resp, "invalid_response")


def test_jit_rules_see_the_assertion_groups(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """JIT: a rule on group membership matches the groups claim of the assertion itself."""
    from tests.support.admin_api import make_license, make_role, ok

    make_license(admin, "Engineer")
    make_role(admin, "Engineer")
    document = {
        "mode": "first-match",
        "rules": [
            {
                "name": "engineering",
                "when": {"member_of": "Engineering"},
                "then": {"license": "Engineer", "roles": ["Engineer"]},
            }
        ],
    }
    stored = ok(admin.post("/api/v1/rulesets", {"name": "main", "document": document}), 201)
    ok(admin.post(f"/api/v1/rulesets/{stored['id']}/activate", {}), 200)
    admin.client.patch(
        f"/api/v1/sso/connections/{saml_connection.id}",
        json={"jit_enabled": True},
        headers=admin.headers(),
    )
    request_id = saml_connection.start()
    attributes = {
        WS + "emailaddress": ["dana@example.com"],
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["Engineering"],
    }
    assertion = saml_connection.assertion(
        request_id, name_id="dana@example.com", attributes=attributes
    )
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    assert resp.status_code == 303, resp.get_data(as_text=True)
    with read(app) as s:
        user = s.scalar(select(User).where(User.org_id == scim.org_id))
        lic = s.get(License, (scim.org_id, user.license_id))
    assert lic.name == "Engineer" and user.license_rule == "engineering"
    created = next(e for e in events(app, scim.org_id, "") if e.action == "user.create")
    assert any(r["rule"] == "engineering" and r["matched"] for r in created.explanation["rules"])


def test_a_first_sign_in_is_a_status_change_event(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """PROVISIONED -> ACTIVE at the first sign-in is audited and is a user.status_changed event."""
    user_id = make_person(app, scim)
    request_id = saml_connection.start()
    resp = saml_connection.post(valid_response(saml_connection.assertion(request_id), saml_idp))
    assert resp.status_code == 303
    feed = admin.get("/api/v1/events", query_string={"types": "user.status_changed"})
    (event,) = feed.get_json()["events"]
    assert event["data"]["resource"] == {"type": "User", "id": user_id}
    assert event["data"]["changes"] == {"status": {"before": "PROVISIONED", "after": "ACTIVE"}}
    assert event["data"]["state"]["status"] == ACTIVE
    assert event["data"]["state"]["lastLogin"] is not None
    assert events(app, scim.org_id, "user.first_sign_in")[0].resource_id == user_id


def test_jit_joins_the_default_groups(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """JIT: the new account joins the settings' default groups, with the member events."""
    from tests.support.admin_api import ok

    set_default_license(app, scim.org_id, "Engineer")
    staff = scim.create_group("Staff")
    settings_doc = ok(admin.get("/api/v1/settings"))
    ok(admin.put("/api/v1/settings", {**settings_doc, "default_groups": [staff["id"]]}))
    admin.client.patch(
        f"/api/v1/sso/connections/{saml_connection.id}",
        json={"jit_enabled": True},
        headers=admin.headers(),
    )
    request_id = saml_connection.start()
    assertion = saml_connection.assertion(
        request_id,
        name_id="erin@example.com",
        attributes={WS + "emailaddress": ["erin@example.com"]},
    )
    resp = saml_connection.post(valid_response(assertion, saml_idp))
    assert resp.status_code == 303, resp.get_data(as_text=True)
    with read(app) as s:
        user = s.scalar(select(User).where(User.org_id == scim.org_id))
    assert user.source == "jit"
    group = ok(scim.get(f"/scim/v2/Groups/{staff['id']}"))
    assert [m["value"] for m in group["members"]] == [user.id]
    added = [e for e in events(app, scim.org_id, "") if e.action == "group.member.add"]
    assert [(e.resource_id, e.detail) for e in added] == [(user.id, "Staff")]


# -- the IdP's bound on the session (SAML Core §2.7.2) --------------------------------------


def _session_bound_response(a: Assertion, idp: FakeIdp, bound: datetime) -> str:
    """``valid_response`` whose AuthnStatement says SessionNotOnOrAfter (ADFS, Shibboleth,
    Okta with a session policy)."""
    xml = a.assertion_xml().replace(
        "<saml:AuthnStatement ",
        f'<saml:AuthnStatement SessionNotOnOrAfter="{bound.strftime("%Y-%m-%dT%H:%M:%SZ")}" ',
        1,
    )
    return a.response_xml(_strip_declaration(sign(xml, idp)))


def _signed_in(client: FlaskClient) -> bool:
    """/sso/welcome shows the signed-in page only while the session speaks for someone."""
    return client.get("/sso/welcome").status_code == 200


@pytest.mark.parametrize(
    ("bound", "open_at", "over_at"),
    [
        # The IdP's policy (10 minutes) ends the session before ours (12 h), at that instant.
        (timedelta(minutes=10), timedelta(minutes=9, seconds=59), timedelta(minutes=10)),
        (timedelta(minutes=10), timedelta(minutes=1), timedelta(hours=1)),
        # A bound later than SCIM_SSO_SESSION_SECONDS does not lengthen our session.
        (timedelta(days=2), timedelta(hours=12), timedelta(hours=12, seconds=1)),
    ],
    ids=["idp-earlier-at-its-instant", "idp-earlier", "ours-earlier"],
)
def test_the_idps_session_not_on_or_after_ends_the_session(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    monkeypatch: pytest.MonkeyPatch,
    bound: timedelta,
    open_at: timedelta,
    over_at: timedelta,
) -> None:
    """SAML Core §2.7.2: SessionNotOnOrAfter bounds the session the assertion starts; the
    earlier of it and SCIM_SSO_SESSION_SECONDS ends it, and the person signs in again."""
    make_person(app, scim)
    extension = sso_extension(app)
    start = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(extension, "clock", lambda: start)
    a = saml_connection.assertion(saml_connection.start())
    resp = saml_connection.post(_session_bound_response(a, saml_idp, start + bound))
    assert resp.status_code == 303, sign_ins(app, scim.org_id)[-1].detail
    assert _signed_in(client)
    monkeypatch.setattr(extension, "clock", lambda: start + open_at)
    assert _signed_in(client)
    monkeypatch.setattr(extension, "clock", lambda: start + over_at)
    page = client.get("/sso/welcome")
    assert (page.status_code, page.headers.get("Location")) == (303, "/sso/login")
    # A new sign-in starts a new session, under the bound of its own assertion.
    a = saml_connection.assertion(saml_connection.start())
    resp = saml_connection.post(valid_response(a, saml_idp))
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert _signed_in(client)


def test_a_session_not_on_or_after_already_past_is_refused(
    app: Flask, client: FlaskClient, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """An assertion whose session bound is already past signs nobody in: expired."""
    make_person(app, scim)
    a = saml_connection.assertion(saml_connection.start())
    past = datetime.now(UTC) - timedelta(minutes=1)
    resp = saml_connection.post(_session_bound_response(a, saml_idp, past))
    assert_refused(app, scim.org_id, resp, "expired")
    assert not _signed_in(client)
