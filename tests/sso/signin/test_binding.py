"""Which account a sign-in lands on: links by connection and subject, fallbacks, look-alikes.

Issue 15 items 7-9: a look-alike identity (fullwidth, dotless/dotted i,
ligatures, combining marks) must not reach an account that only matches under
the NFKC + case fold of SCIM uniqueness; an e-mail must not override the
subject an account is bound to ("nOAuth"); ``preferred_username`` and other
unverified claims must never select an account.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import License, User
from scim_server.services import licenses
from sso.connections.models import SsoIdentityLink
from tests.sso.oidc_op.provider import LocalOP
from tests.sso.saml_idp import EMAIL_FORMAT, WS, FakeIdp, valid_response
from tests.support import Scim
from tests.support.dns_server import add_verified_domain
from tests.support.sso import (
    PERSISTENT,
    SamlConnection,
    assert_refused,
    events,
    make_person,
    oidc_login,
    read,
    saml_as,
    session_user,
    set_default_license,
    sign_ins,
)

TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"

# (account userName, what the IdP asserts, the refusal expected)
LOOKALIKES = [
    pytest.param(
        "alice@example.com", "\uff41lice@example.com", "lookalike_identity", id="fullwidth"
    ),
    pytest.param("jeff@example.com", "je\ufb00@example.com", "lookalike_identity", id="ligature"),
    pytest.param("kate@example.com", "\u212aate@example.com", "lookalike_identity", id="kelvin"),
    # U+0130 (capital I with dot) folds to i + COMBINING DOT ABOVE: different letters.
    pytest.param(
        "al\u0130ce@example.com", "ali\u0307ce@example.com", "lookalike_identity", id="dotted-i"
    ),
    # U+0131 (dotless i) has no case fold to i: never even a candidate.
    pytest.param("alice@example.com", "al\u0131ce@example.com", "unknown_user", id="dotless-i"),
]


def links(app: Flask, org_id: str) -> list[tuple[str, str, str]]:
    """(connection id, subject, user id) of every link of the organization."""
    with read(app) as s:
        rows = s.scalars(select(SsoIdentityLink).where(SsoIdentityLink.org_id == org_id))
        return sorted((r.connection_id, r.subject, r.user_id) for r in rows)


def enable_jit(admin: Scim, conn_id: str) -> None:
    resp = admin.patch(f"/api/v1/sso/connections/{conn_id}", {"jit_enabled": True})
    assert resp.status_code == 200, resp.get_json()


# -- look-alikes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("account", "asserted", "reason"), LOOKALIKES)
def test_saml_lookalike_identity_is_refused(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    account: str,
    asserted: str,
    reason: str,
) -> None:
    """A NameID and e-mail equal to an account only under the full fold: refused, nothing linked."""
    make_person(app, scim, account)
    resp = saml_as(saml_connection, saml_idp, client, asserted, asserted, EMAIL_FORMAT)
    record = assert_refused(app, scim.org_id, resp, reason)
    assert record.subject == asserted
    assert session_user(client) is None
    assert links(app, scim.org_id) == []


@pytest.mark.parametrize(("account", "asserted", "reason"), LOOKALIKES)
def test_oidc_lookalike_email_is_refused(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    account: str,
    asserted: str,
    reason: str,
) -> None:
    """A verified id_token e-mail equal to an account only under the full fold: refused."""
    make_person(app, scim, account)
    local_op.user.update(sub="00u-lookalike", email=asserted, email_verified=True)
    record = assert_refused(app, scim.org_id, oidc_login(client, oidc_conn), reason)
    assert record.subject == "00u-lookalike"
    assert session_user(client) is None
    assert links(app, scim.org_id) == []


def test_saml_decomposed_name_id_binds_to_the_precomposed_account(
    app: Flask, client: FlaskClient, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """e + COMBINING ACUTE is the same text as é (NFC): signs in, and the subject is linked."""
    user_id = make_person(app, scim, "jos\u00e9@example.com")
    resp = saml_as(saml_connection, saml_idp, client, "jose\u0301@example.com", None, EMAIL_FORMAT)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert session_user(client) == user_id
    assert links(app, scim.org_id) == [(saml_connection.id, "jos\u00e9@example.com", user_id)]


def test_saml_ascii_case_still_matches(
    app: Flask, client: FlaskClient, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """ALICE@Example.COM is alice@example.com: ASCII case is not a look-alike."""
    user_id = make_person(app, scim)
    resp = saml_as(saml_connection, saml_idp, client, "ALICE@Example.COM", None, EMAIL_FORMAT)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert session_user(client) == user_id


# -- two subjects, one e-mail ("nOAuth") -------------------------------------------------------


def test_saml_second_subject_with_a_bound_email_is_refused(
    app: Flask, client: FlaskClient, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """00u-carol binds by e-mail; 00u-mallory asserting carol's e-mail: subject_mismatch."""
    carol = make_person(app, scim, "carol@example.com")
    first = saml_as(saml_connection, saml_idp, client, "00u-carol", "carol@example.com")
    assert first.status_code == 303, first.get_data(as_text=True)
    assert links(app, scim.org_id) == [(saml_connection.id, "00u-carol", carol)]
    (linked,) = events(app, scim.org_id, "sso.identity_linked")
    assert linked.resource_id == carol and linked.actor_id == saml_connection.id
    assert linked.explanation["connection_id"] == saml_connection.id
    assert linked.explanation["subject"] == "00u-carol"
    assert linked.explanation["matched_by"] == "userName"

    mallory = app.test_client()
    resp = saml_as(saml_connection, saml_idp, mallory, "00u-mallory", "carol@example.com")
    record = assert_refused(app, scim.org_id, resp, "subject_mismatch")
    assert (record.subject, record.user_id) == ("00u-mallory", carol)
    assert "00u-carol" not in resp.get_data(as_text=True)
    assert session_user(mallory) is None
    assert links(app, scim.org_id) == [(saml_connection.id, "00u-carol", carol)]


def test_oidc_second_subject_with_a_bound_email_is_refused(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
) -> None:
    """sub 00u-carol binds by verified e-mail; sub 00u-mallory with that e-mail: subject_mismatch."""
    carol = make_person(app, scim, "carol@example.com")
    local_op.user.update(sub="00u-carol", email="carol@example.com")
    assert oidc_login(client, oidc_conn).status_code == 303
    assert links(app, scim.org_id) == [(oidc_conn["id"], "00u-carol", carol)]
    (linked,) = events(app, scim.org_id, "sso.identity_linked")
    assert linked.explanation["subject"] == "00u-carol"

    mallory = app.test_client()
    local_op.user.update(sub="00u-mallory")
    record = assert_refused(app, scim.org_id, oidc_login(mallory, oidc_conn), "subject_mismatch")
    assert (record.subject, record.user_id) == ("00u-mallory", carol)
    failure = events(app, scim.org_id)[-1]
    assert failure.explanation["subject"] == "00u-mallory"
    assert session_user(mallory) is None
    assert links(app, scim.org_id) == [(oidc_conn["id"], "00u-carol", carol)]


def test_oidc_linked_subject_signs_in_after_its_email_changes(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
) -> None:
    """The link decides, not the e-mail: a new address at the IdP still reaches the account."""
    alice = make_person(app, scim)
    assert oidc_login(client, oidc_conn).status_code == 303
    local_op.user.update(email="alice.liddell@example.com")
    other = app.test_client()
    resp = oidc_login(other, oidc_conn)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert session_user(other) == alice
    assert len(events(app, scim.org_id, "sso.identity_linked")) == 1


def test_saml_linked_subject_signs_in_after_its_email_changes(
    app: Flask, client: FlaskClient, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """A persistent NameID, once linked, signs in whatever e-mail the assertion carries next."""
    alice = make_person(app, scim)
    first = saml_as(saml_connection, saml_idp, client, "pid-alice", "alice@example.com")
    assert first.status_code == 303, first.get_data(as_text=True)
    other = app.test_client()
    resp = saml_as(saml_connection, saml_idp, other, "pid-alice", "a.liddell@example.com")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert session_user(other) == alice


def test_saml_transient_name_id_is_never_linked(
    app: Flask, client: FlaskClient, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """A transient NameID changes at every login: matched by e-mail each time, never linked."""
    alice = make_person(app, scim)
    for name_id in ("_t1", "_t2"):
        resp = saml_as(
            saml_connection, saml_idp, app.test_client(), name_id, "alice@example.com", TRANSIENT
        )
        assert resp.status_code == 303, resp.get_data(as_text=True)
    assert [r.user_id for r in sign_ins(app, scim.org_id)] == [alice, alice]
    assert links(app, scim.org_id) == []


# -- unverified claims -------------------------------------------------------------------------


def test_oidc_preferred_username_never_selects_an_account(
    app: Flask, client: FlaskClient, scim: Scim, oidc_conn: dict[str, Any], local_op: LocalOP
) -> None:
    """Verified mallory@ with preferred_username alice@: not alice (no account: unknown_user)."""
    make_person(app, scim)
    local_op.user.update(
        sub="00u-mallory", email="mallory@example.com", preferred_username="alice@example.com"
    )
    assert_refused(app, scim.org_id, oidc_login(client, oidc_conn), "unknown_user")
    assert session_user(client) is None
    assert links(app, scim.org_id) == []


@pytest.mark.parametrize("verified", [False, "false", None], ids=["false", "string", "absent"])
def test_oidc_unverified_email_is_no_fallback(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    verified: Any,
) -> None:
    """email_verified false or absent: the address selects nothing and nothing is linked."""
    make_person(app, scim)
    local_op.user.update(sub="00u-mallory", email_verified=verified)
    if verified is None:
        del local_op.user["email_verified"]
    resp = oidc_login(client, oidc_conn)
    assert resp.status_code == 403
    assert sign_ins(app, scim.org_id)[-1].outcome == "failure"
    assert session_user(client) is None
    assert links(app, scim.org_id) == []


# -- just in time, deletion ------------------------------------------------------------------


def test_saml_jit_account_is_linked(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """JIT creates the account and links the subject in the same sign-in, audited."""
    set_default_license(app, scim.org_id)
    enable_jit(admin, saml_connection.id)
    resp = saml_as(saml_connection, saml_idp, client, "pid-dana", "dana@example.com")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    with read(app) as s:
        user = s.scalar(select(User).where(User.org_id == scim.org_id))
    assert links(app, scim.org_id) == [(saml_connection.id, "pid-dana", user.id)]
    (linked,) = events(app, scim.org_id, "sso.identity_linked")
    assert (linked.resource_id, linked.explanation["matched_by"]) == (user.id, "jit")


def test_oidc_jit_account_is_linked(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
) -> None:
    """OIDC JIT: the new account is linked to the sub, and the sub alone finds it next time."""
    set_default_license(app, scim.org_id)
    enable_jit(admin, oidc_conn["id"])
    local_op.user.update(sub="00u-erin", email="erin@example.com")
    assert oidc_login(client, oidc_conn).status_code == 303
    user_id = session_user(client)
    assert links(app, scim.org_id) == [(oidc_conn["id"], "00u-erin", user_id)]
    local_op.user.update(email="erin.new@example.com")
    other = app.test_client()
    assert oidc_login(other, oidc_conn).status_code == 303
    assert session_user(other) == user_id


def test_deleting_the_user_removes_its_links(
    app: Flask, client: FlaskClient, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """A user deleted over SCIM takes its links along; the subject is free again."""
    alice = make_person(app, scim)
    assert (
        saml_as(saml_connection, saml_idp, client, "pid-alice", "alice@example.com").status_code
        == 303
    )
    assert len(links(app, scim.org_id)) == 1
    assert scim.client.delete(f"/scim/v2/Users/{alice}", headers=scim.headers()).status_code == 204
    assert links(app, scim.org_id) == []


def test_admin_unlinks_a_changed_name_id(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """A renamed e-mail NameID: subject_mismatch until the admin removes the old link, audited."""
    carol = make_person(app, scim, "carol@example.com")
    ok = saml_as(saml_connection, saml_idp, client, "carol@example.com", None, EMAIL_FORMAT)
    assert ok.status_code == 303
    resp = scim.patch_ops(
        f"/scim/v2/Users/{carol}",
        {"op": "replace", "path": "userName", "value": "carol.shaw@example.com"},
    )
    assert resp.status_code == 200
    renamed = saml_as(
        saml_connection, saml_idp, app.test_client(), "carol.shaw@example.com", None, EMAIL_FORMAT
    )
    assert_refused(app, scim.org_id, renamed, "subject_mismatch")

    url = f"/api/v1/sso/connections/{saml_connection.id}/links"
    assert admin.get(url).status_code == 400
    found = admin.get(f"{url}?user_id={carol}").get_json()["links"]
    assert [(x["subject"], x["user_id"]) for x in found] == [("carol@example.com", carol)]
    assert admin.delete(f"{url}/{carol}").status_code == 204
    assert admin.delete(f"{url}/{carol}").status_code == 404
    unlinked, refused = events(app, scim.org_id, "sso.identity_unlinked")
    assert (refused.outcome, refused.status) == ("failure", 404)  # the second delete
    assert unlinked.resource_id == carol
    assert unlinked.explanation["subject"] == "carol@example.com"

    other = app.test_client()
    again = saml_as(saml_connection, saml_idp, other, "carol.shaw@example.com", None, EMAIL_FORMAT)
    assert again.status_code == 303, again.get_data(as_text=True)
    assert session_user(other) == carol
    assert links(app, scim.org_id) == [(saml_connection.id, "carol.shaw@example.com", carol)]


# -- an account of a domain bound to another connection ---------------------------------------

PARTNER = FakeIdp(
    entity_id="https://partner.example.test/metadata",
    sso_url="https://partner.example.test/sso",
    key_name="partner",
)
CEO_OBJECT_ID = "6f1c0a2e-entra-object-id"


def entra_with_example_org(admin: Scim, saml_idp: FakeIdp) -> SamlConnection:
    """The employees' Entra (SAML) connection, example.org (verified) bound to it."""
    resp = admin.post(
        "/api/v1/sso/connections",
        {
            "protocol": "saml",
            "name": "Entra ID (employees)",
            "metadata_xml": saml_idp.metadata_xml(),
        },
    )
    assert resp.status_code == 201, resp.get_json()
    conn = resp.get_json()
    add_verified_domain(admin, "example.org", conn["id"])
    return SamlConnection(conn, admin.client)


def make_ceo(app: Flask, scim: Scim, user_name: str, **attributes: Any) -> str:
    """A licensed SCIM account whose e-mail ceo@example.org is in the Entra-bound domain."""
    doc = scim.create_user(
        user_name, emails=[{"value": "ceo@example.org", "primary": True}], **attributes
    )
    set_default_license(app, scim.org_id)
    with read(app) as s, s.begin():
        user = s.get(User, (scim.org_id, doc["id"]))
        lic = s.scalar(select(License).where(License.org_id == scim.org_id))
        licenses.assign(s, scim.org_id, user, lic, source="manual")
    return str(doc["id"])


@pytest.mark.parametrize(
    ("user_name", "sub"),
    [
        ("ceo@example.org", CEO_OBJECT_ID),  # the externalId fallback
        ("ceo.boss", "ceo.boss"),  # the userName fallback, a userName that is no address
    ],
    ids=["sub-is-external-id", "sub-is-user-name"],
)
def test_oidc_partner_cannot_reach_an_account_of_a_domain_bound_elsewhere(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    saml_idp: FakeIdp,
    user_name: str,
    sub: str,
) -> None:
    """README: the partner's IdP cannot sign anyone in as ceo@example.org. Its sub equal to
    the CEO's externalId or non-address userName selects the CEO's account by a fallback:
    refused (subject_mismatch, the record names the account reached for), nothing linked."""
    entra_with_example_org(admin, saml_idp)
    ceo = make_ceo(app, scim, user_name, externalId=CEO_OBJECT_ID)
    local_op.user.update(sub=sub, email="mallory@example.com", email_verified=True)
    record = assert_refused(app, scim.org_id, oidc_login(client, oidc_conn), "subject_mismatch")
    assert (record.connection_id, record.subject, record.user_id) == (oidc_conn["id"], sub, ceo)
    assert "ceo@example.org" in (record.detail or "")
    assert session_user(client) is None
    assert links(app, scim.org_id) == []


def test_saml_partner_cannot_reach_an_account_of_a_domain_bound_elsewhere(
    app: Flask, admin: Scim, client: FlaskClient, scim: Scim, saml_idp: FakeIdp
) -> None:
    """The same through a partner's SAML connection: its NameID equal to the CEO's externalId,
    with its own allowed address, is refused; the CEO's own Entra sign-in with that NameID
    (its persistent object id) still reaches and links the CEO's account."""
    entra = entra_with_example_org(admin, saml_idp)
    ceo = make_ceo(app, scim, "ceo@example.org", externalId=CEO_OBJECT_ID)
    resp = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Partner Okta", "metadata_xml": PARTNER.metadata_xml()},
    )
    partner = SamlConnection(resp.get_json(), client)
    add_verified_domain(admin, "partner.test", partner.id)
    browser = SamlConnection(partner.data, client)
    assertion = browser.assertion(
        browser.start(),
        name_id=CEO_OBJECT_ID,
        name_id_format=PERSISTENT,
        issuer=PARTNER.entity_id,
        attributes={WS + "emailaddress": ["mallory@partner.test"]},
    )
    record = assert_refused(
        app, scim.org_id, browser.post(valid_response(assertion, PARTNER)), "subject_mismatch"
    )
    assert (record.connection_id, record.user_id) == (partner.id, ceo)
    assert session_user(client) is None and links(app, scim.org_id) == []

    employee = app.test_client()
    resp = saml_as(entra, saml_idp, employee, CEO_OBJECT_ID, "ceo@example.org")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert session_user(employee) == ceo
    assert links(app, scim.org_id) == [(entra.id, CEO_OBJECT_ID, ceo)]


def test_a_sole_connection_reaches_accounts_by_external_id(
    app: Flask, client: FlaskClient, scim: Scim, oidc_conn: dict[str, Any], local_op: LocalOP
) -> None:
    """One connection (example.com bound to none): sub equal to an externalId still signs in."""
    bob = make_ceo(app, scim, "bob.jones", externalId="00u-bob")
    local_op.user.update(sub="00u-bob", email="bob@example.com", email_verified=True)
    assert oidc_login(client, oidc_conn).status_code == 303
    assert session_user(client) == bob
    assert links(app, scim.org_id) == [(oidc_conn["id"], "00u-bob", bob)]


def test_partner_reaches_an_account_with_no_address_of_a_domain_bound_elsewhere(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    saml_idp: FakeIdp,
) -> None:
    """The documented model: with example.org bound to Entra, the partner's IdP still reaches
    by externalId an account whose addresses are all of example.com (bound to none)."""
    entra_with_example_org(admin, saml_idp)
    guest = make_person(app, scim, "guest@example.com")
    assert (
        scim.patch_ops(
            f"/scim/v2/Users/{guest}", {"op": "replace", "path": "externalId", "value": "00u-guest"}
        ).status_code
        == 200
    )
    local_op.user.update(sub="00u-guest", email="someone@example.com", email_verified=True)
    assert oidc_login(client, oidc_conn).status_code == 303
    assert session_user(client) == guest


# -- an account created just in time by another connection ------------------------------------

EMPLOYEE_NUMBER = "E1234"


def partner_oidc_jit(
    app: Flask, admin: Scim, scim: Scim, oidc_conn: dict[str, Any], saml_idp: FakeIdp
) -> SamlConnection:
    """The employees' Entra (SAML, example.org bound to it) beside the partner's OIDC
    connection (the fixture's, example.com bound to none), both creating accounts just in
    time; returns Entra."""
    entra = entra_with_example_org(admin, saml_idp)
    set_default_license(app, scim.org_id)
    enable_jit(admin, oidc_conn["id"])
    enable_jit(admin, entra.id)
    return entra


def user_of(app: Flask, org_id: str, user_name: str) -> User:
    with read(app) as s:
        return s.scalars(
            select(User).where(User.org_id == org_id, User.user_name == user_name)
        ).one()


@pytest.mark.parametrize(
    ("claims", "name_id"),
    [
        ({"external_id": EMPLOYEE_NUMBER}, EMPLOYEE_NUMBER),  # the externalId fallback
        ({"preferred_username": "e.smith"}, "e.smith"),  # the userName fallback
    ],
    ids=["name-id-is-external-id", "name-id-is-user-name"],
)
def test_saml_employee_cannot_enter_an_account_the_partner_created_just_in_time(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    saml_idp: FakeIdp,
    claims: dict[str, str],
    name_id: str,
) -> None:
    """The partner's OIDC IdP creates mallory's account just in time (its externalId or
    userName an employee number); an Entra NameID equal to it selects that account by a
    fallback: refused (subject_mismatch, the record names the account), nothing linked on
    Entra; the partner's own sub still signs in to it."""
    entra = partner_oidc_jit(app, admin, scim, oidc_conn, saml_idp)
    local_op.user.update(
        sub="partner-7", email="mallory@example.com", email_verified=True, **claims
    )
    created = oidc_login(client, oidc_conn)
    assert created.status_code == 303, created.get_data(as_text=True)
    mallory = user_of(app, scim.org_id, claims.get("preferred_username", "mallory@example.com"))
    assert mallory.source == "jit"
    assert links(app, scim.org_id) == [(oidc_conn["id"], "partner-7", mallory.id)]

    employee = app.test_client()
    resp = saml_as(entra, saml_idp, employee, name_id, "e.smith@example.org")
    record = assert_refused(app, scim.org_id, resp, "subject_mismatch")
    assert (record.connection_id, record.subject, record.user_id) == (entra.id, name_id, mallory.id)
    assert "created just in time by another connection" in (record.detail or "")
    assert session_user(employee) is None
    assert links(app, scim.org_id) == [(oidc_conn["id"], "partner-7", mallory.id)]

    again = app.test_client()
    assert oidc_login(again, oidc_conn).status_code == 303
    assert session_user(again) == mallory.id


def test_oidc_partner_cannot_enter_an_account_the_employees_idp_created_just_in_time(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    saml_idp: FakeIdp,
) -> None:
    """The symmetric case: Entra creates an employee's account just in time (persistent
    NameID E1234, an address of example.com, bound to no connection); the partner's sub
    E1234 selects it by externalId: refused, nothing linked on the partner's connection;
    the employee still signs in."""
    entra = partner_oidc_jit(app, admin, scim, oidc_conn, saml_idp)
    created = saml_as(entra, saml_idp, client, EMPLOYEE_NUMBER, "e.smith@example.com")
    assert created.status_code == 303, created.get_data(as_text=True)
    smith = user_of(app, scim.org_id, "e.smith@example.com")
    assert (smith.source, smith.external_id) == ("jit", EMPLOYEE_NUMBER)

    partner = app.test_client()
    local_op.user.update(sub=EMPLOYEE_NUMBER, email="mallory@example.com", email_verified=True)
    record = assert_refused(app, scim.org_id, oidc_login(partner, oidc_conn), "subject_mismatch")
    assert (record.connection_id, record.user_id) == (oidc_conn["id"], smith.id)
    assert "created just in time by another connection" in (record.detail or "")
    assert session_user(partner) is None
    assert links(app, scim.org_id) == [(entra.id, EMPLOYEE_NUMBER, smith.id)]

    employee = app.test_client()
    resp = saml_as(entra, saml_idp, employee, EMPLOYEE_NUMBER, "e.smith@example.com")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert session_user(employee) == smith.id


def test_an_unlinked_just_in_time_account_is_bound_by_the_fallbacks(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    saml_idp: FakeIdp,
) -> None:
    """An admin removed the partner's link of its just-in-time account (the admin API):
    nothing ties it to a connection any more, so Entra's NameID equal to its externalId
    signs in to it and links it, the admin's decision."""
    entra = partner_oidc_jit(app, admin, scim, oidc_conn, saml_idp)
    local_op.user.update(
        sub="partner-7",
        email="mallory@example.com",
        email_verified=True,
        external_id=EMPLOYEE_NUMBER,
    )
    assert oidc_login(client, oidc_conn).status_code == 303
    mallory = session_user(client)
    url = f"/api/v1/sso/connections/{oidc_conn['id']}/links/{mallory}"
    assert admin.delete(url).status_code == 204
    assert links(app, scim.org_id) == []

    employee = app.test_client()
    resp = saml_as(entra, saml_idp, employee, EMPLOYEE_NUMBER, "e.smith@example.org")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert session_user(employee) == mallory
    assert links(app, scim.org_id) == [(entra.id, EMPLOYEE_NUMBER, mallory)]


def test_a_scim_account_linked_on_one_connection_signs_in_through_another(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    saml_idp: FakeIdp,
) -> None:
    """Moving IdPs: an account made by SCIM and linked on the OIDC connection is still
    reached and linked by the SAML connection's fallback (only JIT accounts are another
    connection's)."""
    entra = partner_oidc_jit(app, admin, scim, oidc_conn, saml_idp)
    alice = make_person(app, scim)
    local_op.user.update(sub="00u-alice")
    assert oidc_login(client, oidc_conn).status_code == 303
    assert session_user(client) == alice

    moved = app.test_client()
    resp = saml_as(entra, saml_idp, moved, "pid-alice", "alice@example.com")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert session_user(moved) == alice
    assert links(app, scim.org_id) == sorted(
        [(oidc_conn["id"], "00u-alice", alice), (entra.id, "pid-alice", alice)]
    )
