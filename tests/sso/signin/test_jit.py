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

import threading
import uuid
from functools import partial
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import User
from scim_server.services.tokens import create_token
from sso.connections.models import SsoIdentityLink
from tests.sso.oidc_op.provider import LocalOP
from tests.sso.saml_idp import WS, FakeIdp, valid_response
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
from tests.support.holds import Hold, main_thread_only, postgresql_only
from tests.support.sso import (
    SamlConnection,
    assert_refused,
    events,
    oidc_login,
    read,
    set_default_license,
    sign_ins,
)
from tests.support.threads import run_together


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
    [{"external_id": "ceo@example.org"}],
    ids=["external-id-bound-elsewhere"],
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
        # OIDC Core §5.7: an address-shaped preferred_username that is not the person's
        # verified e-mail names nothing; the verified e-mail names the account.
        ({"preferred_username": "ceo@example.org"}, ("mallory@example.com", "partner-m")),
        ({"preferred_username": "ceo@unverified.example"}, ("mallory@example.com", "partner-m")),
    ],
    ids=[
        "user-name-allowed-domain",
        "user-name-no-address",
        "external-id-no-address",
        "user-name-bound-elsewhere",
        "user-name-unverified",
    ],
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
    """An address in a domain the connection may assert, or no address: created as before;
    another address as preferred_username: named by the verified e-mail instead."""
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


# -- two first sign-ins of one new person at once (PostgreSQL) ---------------------------------


def _racing_jit(live: Any) -> tuple[Flask, Scim, dict[str, Any], list[str]]:
    """A SAML connection creating accounts just in time (a default license), and two valid
    responses for one new person (new@<domain>): two browsers signing in at once."""
    app, scim = live
    postgresql_only(app)
    with read(app) as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    admin = Scim(app.test_client(), secret, scim.org_id)
    idp = FakeIdp()
    domain = f"jit-{uuid.uuid4().hex[:8]}.example"
    conn = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "metadata_xml": idp.metadata_xml(), "idp_initiated_allowed": True},
    ).get_json()
    add_verified_domain(admin, domain)
    set_default_license(app, scim.org_id)
    enable_jit(admin, conn["id"])
    saml = SamlConnection(conn, app.test_client())
    person = f"new@{domain}"
    responses = [
        valid_response(
            saml.assertion(None, name_id=person, attributes={WS + "emailaddress": [person]}), idp
        )
        for _ in range(2)
    ]
    return app, scim, conn, responses


def _one_account_both_in(app: Flask, scim: Scim, statuses: list[int]) -> None:
    """One account and one link; both sign-ins succeeded (303) and are recorded so."""
    with read(app) as s:
        users_now = s.scalars(select(User.id).where(User.org_id == scim.org_id)).all()
        linked = s.scalars(
            select(SsoIdentityLink.user_id).where(SsoIdentityLink.org_id == scim.org_id)
        ).all()
    records = [(r.outcome, r.reason_code, r.user_id) for r in sign_ins(app, scim.org_id)]
    assert len(users_now) == 1 and linked == users_now, (users_now, linked, records)
    assert statuses == [303, 303], records
    assert records == [("success", None, users_now[0])] * 2


def test_two_jit_sign_ins_of_one_new_person_make_one_account(live: Any) -> None:
    """Both responses posted at once: one account; the sign-in that loses the creation signs
    in to the account the other created (it is linked to this very subject), not 403."""
    app, scim, conn, responses = _racing_jit(live)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post(response: str) -> None:
        client = SamlConnection(conn, app.test_client())
        barrier.wait()
        statuses.append(client.post(response).status_code)

    run_together(*(partial(post, r) for r in responses))
    _one_account_both_in(app, scim, sorted(statuses))


def test_a_jit_sign_in_losing_the_insert_signs_in_to_the_winners_account(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first sign-in is held after inserting the account (not committed) while the
    second creates the same person: its insert waits for the first's userName, then fails
    (a lost race); the subject is linked by then, so it signs in to that account (303)."""
    from scim_server.services import users

    app, scim, conn, responses = _racing_jit(live)
    second = SamlConnection(conn, app.test_client())
    hold = Hold(
        monkeypatch,
        app,
        users,
        "insert_user",
        lambda: second.post(responses[1]).status_code,
        when=main_thread_only(),
    )
    first = SamlConnection(conn, app.test_client()).post(responses[0])
    hold.join()
    assert hold.waited == [True]
    _one_account_both_in(app, scim, [first.status_code, *hold.results])


def test_a_jit_sign_in_finding_its_name_taken_signs_in_to_the_winners_account(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first sign-in, having found no account, is held while the second creates the
    person and signs in; the first's create then finds the userName taken (409 inside),
    and as the account is linked to this very subject, signs in to it (303)."""
    from sso.signin import decision

    app, scim, conn, responses = _racing_jit(live)
    second = SamlConnection(conn, app.test_client())
    hold = Hold(
        monkeypatch,
        app,
        decision,
        "find_user",
        lambda: second.post(responses[1]).status_code,
        when=main_thread_only(),
    )
    first = SamlConnection(conn, app.test_client()).post(responses[0])
    hold.join()
    assert hold.waited == [False]
    _one_account_both_in(app, scim, [first.status_code, *hold.results])
