"""Just-in-time accounts: the names an IdP gives a new account (sso.signin.jit).

A JIT account's userName and externalId are what later fallbacks of every connection
compare with, and the IdP chose them (OIDC's ``preferred_username`` is often the
person's own): an address among them must be one this connection may assert, as an
asserted e-mail must, else a partner's user could be named ``ceo@example.org`` and
receive the real CEO's first sign-in through the employees' IdP.

A JIT account is linked to its creating subject in the creation's transaction, even when
the first sign-in is then refused: it is that connection's account, which another
connection's fallbacks may not select (``sso.signin.binding``).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import User
from tests.sso.oidc_op.provider import LocalOP
from tests.sso.saml_idp import FakeIdp
from tests.sso.signin.test_binding import (
    EMPLOYEE_NUMBER,
    PERSISTENT,
    TRANSIENT,
    enable_jit,
    entra_with_example_org,
    links,
    saml_as,
    session_user,
)
from tests.support import Scim
from tests.support.admin_api import make_license, ok
from tests.support.dns_server import add_verified_domain
from tests.support.sso import (
    SamlConnection,
    assert_refused,
    events,
    oidc_login,
    read,
    set_default_license,
)


def _accounts(app: Flask, org_id: str) -> list[tuple[str, str | None]]:
    with read(app) as s:
        rows = s.execute(select(User.user_name, User.external_id).where(User.org_id == org_id))
        return sorted((name, external_id) for name, external_id in rows)


def _two_connections(app: Flask, admin: Scim, scim: Scim, oidc_conn: dict[str, Any]) -> str:
    """Employees' Entra (SAML) with example.org bound to it; the partner's OIDC connection
    (the fixture's: example.com bound to none) creates accounts just in time."""
    resp = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Entra ID", "metadata_xml": FakeIdp().metadata_xml()},
    )
    assert resp.status_code == 201, resp.get_json()
    entra = resp.get_json()["id"]
    add_verified_domain(admin, "example.org", entra)
    set_default_license(app, scim.org_id)
    resp = admin.patch(f"/api/v1/sso/connections/{oidc_conn['id']}", {"jit_enabled": True})
    assert resp.status_code == 200, resp.get_json()
    return str(entra)


@pytest.mark.parametrize(
    "claims",
    [
        {"preferred_username": "ceo@example.org"},  # bound to Entra
        {"preferred_username": "ceo@unverified.example"},  # no verified domain
        {"external_id": "ceo@example.org"},
    ],
    ids=["user-name-bound-elsewhere", "user-name-unverified", "external-id-bound-elsewhere"],
)
def test_oidc_jit_refuses_an_address_the_connection_may_not_assert(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    claims: dict[str, str],
) -> None:
    """A partner's user (verified mallory@example.com) naming herself ceo@example.org: no
    account is created (email_domain_not_allowed), the name stays free for the real CEO."""
    _two_connections(app, admin, scim, oidc_conn)
    local_op.user.update(
        sub="partner-mallory", email="mallory@example.com", email_verified=True, **claims
    )
    record = assert_refused(
        app, scim.org_id, oidc_login(client, oidc_conn), "email_domain_not_allowed"
    )
    assert record.user_id is None
    assert next(iter(claims.values())) in (record.detail or "")
    assert _accounts(app, scim.org_id) == []
    with client.session_transaction() as sess:
        assert not sess.get("sso")


@pytest.mark.parametrize(
    ("claims", "account"),
    [
        ({"preferred_username": "mallory@example.com"}, ("mallory@example.com", "partner-m")),
        ({"preferred_username": "mallory"}, ("mallory", "partner-m")),
        ({"external_id": "emp-1042"}, ("mallory@example.com", "emp-1042")),
    ],
    ids=["user-name-allowed-domain", "user-name-no-address", "external-id-no-address"],
)
def test_oidc_jit_keeps_names_the_connection_may_give(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    claims: dict[str, str],
    account: tuple[str, str],
) -> None:
    """An address in a domain the connection may assert, or no address: created as before."""
    _two_connections(app, admin, scim, oidc_conn)
    local_op.user.update(sub="partner-m", email="mallory@example.com", **claims)
    resp = oidc_login(client, oidc_conn)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert _accounts(app, scim.org_id) == [account]


def test_a_refused_jit_sign_in_still_links_the_new_account(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
) -> None:
    """The partner's JIT account gets no license (missing_license) but is linked to its sub
    all the same; once an admin gives it a license, Entra's NameID equal to its externalId
    is refused (subject_mismatch) and the partner's own sub signs in."""
    saml_idp = FakeIdp()
    entra = entra_with_example_org(admin, saml_idp)
    make_license(admin, "Engineer")  # no default: a JIT account waits for an admin's license
    enable_jit(admin, oidc_conn["id"])
    local_op.user.update(
        sub="partner-7",
        email="mallory@example.com",
        email_verified=True,
        external_id=EMPLOYEE_NUMBER,
    )
    record = assert_refused(app, scim.org_id, oidc_login(client, oidc_conn), "missing_license")
    mallory = record.user_id
    assert _accounts(app, scim.org_id) == [("mallory@example.com", EMPLOYEE_NUMBER)]
    assert links(app, scim.org_id) == [(oidc_conn["id"], "partner-7", mallory)]
    (linked,) = events(app, scim.org_id, "sso.identity_linked")
    assert (linked.resource_id, linked.explanation["matched_by"]) == (mallory, "jit")
    resp = admin.put(f"/api/v1/users/{mallory}/license", {"license": "Engineer"})
    assert resp.status_code == 200, resp.get_json()

    employee = app.test_client()
    resp = saml_as(entra, saml_idp, employee, EMPLOYEE_NUMBER, "e.smith@example.org")
    record = assert_refused(app, scim.org_id, resp, "subject_mismatch")
    assert (record.connection_id, record.user_id) == (entra.id, mallory)
    assert session_user(employee) is None
    assert links(app, scim.org_id) == [(oidc_conn["id"], "partner-7", mallory)]

    again = app.test_client()
    assert oidc_login(again, oidc_conn).status_code == 303
    assert session_user(again) == mallory


@pytest.mark.parametrize(
    ("name_id_format", "external_id", "stored"),
    [
        (TRANSIENT, None, None),
        (TRANSIENT, "emp-1042", "emp-1042"),
        (PERSISTENT, None, "_7b1f0c0e9d3a4b7f"),
    ],
    ids=["transient", "transient-with-attribute", "persistent"],
)
def test_a_transient_name_id_is_never_the_accounts_external_id(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    name_id_format: str,
    external_id: str | None,
    stored: str | None,
) -> None:
    """SAML Core §8.3.8: a transient NameID is a one-time value. JIT keeps no externalId
    from it (the IdP's own externalId attribute, if sent), as it links nothing: SCIM
    clients would read it as the IdP's key of the user, and later fallbacks compare with
    it. A persistent NameID stays the externalId. Found by a probe."""
    set_default_license(app, scim.org_id)
    enable_jit(admin, saml_connection.id)
    extra = {"externalId": [external_id]} if external_id else {}
    resp = saml_as(
        saml_connection,
        saml_idp,
        client,
        "_7b1f0c0e9d3a4b7f",
        "carol@example.com",
        name_id_format,
        **extra,
    )
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert _accounts(app, scim.org_id) == [("carol@example.com", stored)]
    user = ok(scim.get(f"/scim/v2/Users/{session_user(client)}"))
    assert user.get("externalId") == stored
