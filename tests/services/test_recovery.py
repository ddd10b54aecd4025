"""services.recovery: which accounts a forgot-password request mails, across organizations.

An address may name accounts in several organizations; what one organization stores
(its own users' addresses) must never decide whether another organization's person
gets a reset link, and the accounts mailed are those the password sign-in could reach
with the same address (``sso.local.accounts.find_account``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect, select, update

from scim_server.db import db, utcnow
from scim_server.models import CredentialToken, MailOutbox, Organization, User
from scim_server.services import recovery, settings
from sso.connections.models import SsoEmailDomain
from sso.local.accounts import domain_org
from tests.support import Scim
from tests.support.admin_api import admin_of
from tests.support.credentials import employee, set_settings
from tests.support.dns_server import add_verified_domain
from tests.support.local import forgot, person_with_password, sign_in

VICTIM = "victim@b.example"


def _reset_links(app, org_id: str) -> list[str]:
    """The user ids of the organization's queued reset-link mails, in order."""
    with db.reader(app)() as s:
        return list(
            s.scalars(
                select(MailOutbox.user_id)
                .where(MailOutbox.org_id == org_id, MailOutbox.kind == "reset_link")
                .order_by(MailOutbox.user_id)
            )
        )


def _decoys(org: Scim, count: int, address: str = VICTIM) -> list[str]:
    """``count`` accounts of ``org`` whose (primary SCIM, so contact) e-mail is ``address``."""
    return [
        str(
            org.create_user(
                f"decoy{n}@x.example",
                emails=[{"type": "work", "value": address, "primary": True}],
            )["id"]
        )
        for n in range(count)
    ]


def _first_and_second(scim: Scim, other_scim: Scim) -> tuple[Scim, Scim]:
    """The organization whose id sorts first (the one an ``ORDER BY org_id`` favours), then
    the other."""
    first, second = sorted((scim, other_scim), key=lambda o: o.org_id)
    return first, second


def test_another_organizations_accounts_do_not_crowd_out_a_persons_reset_link(
    app, client, scim: Scim, other_scim: Scim
) -> None:
    """Organization X (id sorting first) gives more than MAX_ACCOUNTS of its accounts V's
    person's address: V's person still gets their link; X's accounts are capped per
    organization (no verified domain: the sign-in could reach them too)."""
    attacker, victim_org = _first_and_second(scim, other_scim)
    victim = employee(victim_org, VICTIM, password="Original-pass-phrase-31")
    decoys = _decoys(attacker, recovery.MAX_ACCOUNTS + 2)
    assert forgot(client, VICTIM).status_code == 200
    assert _reset_links(app, victim_org.org_id) == [victim["id"]]
    mailed = _reset_links(app, attacker.org_id)
    assert len(mailed) == recovery.MAX_ACCOUNTS and set(mailed) <= set(decoys)


def test_only_the_verified_domain_owners_accounts_get_reset_links(
    app, client, scim: Scim, other_scim: Scim
) -> None:
    """V holds b.example verified: a sign-in with victim@b.example reaches only V's accounts,
    so X's accounts carrying that address get no reset link (no mail to V's person's box)."""
    attacker, victim_org = _first_and_second(scim, other_scim)
    add_verified_domain(admin_of(victim_org), "b.example")
    victim = employee(victim_org, VICTIM, password="Original-pass-phrase-31")
    _decoys(attacker, 3)
    assert forgot(client, "Victim@B.example").status_code == 200
    assert _reset_links(app, victim_org.org_id) == [victim["id"]]
    assert _reset_links(app, attacker.org_id) == []


def test_a_verified_domain_owner_without_passwords_mails_nobody(
    app, client, scim: Scim, other_scim: Scim
) -> None:
    """The owner of the domain signs in through SSO only: nobody is mailed, not even
    another organization's accounts with that address (the sign-in reaches none of them)."""
    attacker, owner = _first_and_second(scim, other_scim)
    owner_admin = admin_of(owner)
    add_verified_domain(owner_admin, "b.example")
    set_settings(owner_admin, sign_in_methods="sso_only")
    employee(owner, VICTIM)
    _decoys(attacker, 2)
    assert forgot(client, VICTIM).status_code == 200
    assert _reset_links(app, owner.org_id) == []
    assert _reset_links(app, attacker.org_id) == []


def test_an_sso_only_organizations_accounts_take_no_place(
    app, client, scim: Scim, other_scim: Scim
) -> None:
    """Accounts of an organization without passwords are left out before any limit: the
    other organization's person is mailed, the SSO-only accounts are not."""
    sso_only, victim_org = _first_and_second(scim, other_scim)
    set_settings(admin_of(sso_only), sign_in_methods="sso_only")
    _decoys(sso_only, recovery.MAX_ACCOUNTS + 1)
    victim = employee(victim_org, VICTIM)
    assert forgot(client, VICTIM).status_code == 200
    assert _reset_links(app, victim_org.org_id) == [victim["id"]]
    assert _reset_links(app, sso_only.org_id) == []


def test_the_forgot_page_answers_the_same_whoever_is_mailed(
    app, client, scim: Scim, other_scim: Scim
) -> None:
    """Crowded, owned by another organization, or unknown: the same page, byte for byte."""
    attacker, victim_org = _first_and_second(scim, other_scim)
    add_verified_domain(admin_of(victim_org), "b.example")
    _decoys(attacker, 2)
    owned_elsewhere = forgot(client, VICTIM, ip="10.0.0.8")
    employee(victim_org, VICTIM)
    known = forgot(client, VICTIM, ip="10.0.0.9")
    unknown = forgot(client, "nobody@b.example", ip="10.0.0.10")
    assert owned_elsewhere.status_code == known.status_code == unknown.status_code == 200
    assert owned_elsewhere.data == known.data == unknown.data


def test_the_domains_table_names_match_the_sso_model() -> None:
    """recovery reads sso_email_domains without importing sso: the names must agree."""
    mapper = inspect(SsoEmailDomain)
    assert SsoEmailDomain.__tablename__ == recovery.SSO_EMAIL_DOMAINS.name
    for col in recovery.SSO_EMAIL_DOMAINS.c:
        assert col.name in mapper.columns


@pytest.mark.parametrize(
    "typed",
    [
        "victim@b.example",
        "VICTIM@B.EXAMPLE",
        " victim@b.example. ",
        "victim@B.Example.",
        "victim@other.example",
        "victim",
        "@b.example",
        "a@b@b.example",
        "victim@",
        "victim@bücher.example",
        "victim@xn--bcher-kva.example",
        "victim@b..example",
    ],
)
def test_the_domain_owner_is_the_one_the_sign_in_finds(
    app, scim: Scim, other_scim: Scim, typed: str
) -> None:
    """recovery's domain owner agrees with the password sign-in's (``domain_org``) for every
    spelling, so a reset link goes only where a sign-in with that address could go."""
    add_verified_domain(admin_of(other_scim), "b.example")
    add_verified_domain(admin_of(scim), "bücher.example")
    with db.reader(app)() as s:
        assert recovery.domain_owner(s, typed.strip()) == domain_org(s, typed.strip())
        assert recovery.domain_owner(s, typed.strip()) == domain_org(s, typed)


@pytest.mark.parametrize("methods", [None, "sso_only", "password_allowed", "password_only"])
@pytest.mark.parametrize("sso_connection", [None, "enabled", "disabled"])
def test_the_lookups_passwords_rule_is_the_settings_rule(
    app, scim: Scim, methods: str | None, sso_connection: str | None
) -> None:
    """The lookup's SQL copy of ``settings.passwords_allowed`` agrees with it for every
    sign_in_methods and SSO connection state, so no organization whose people may use a
    password is left out of the lookup."""
    admin = admin_of(scim)
    set_settings(admin, sign_in_methods=methods)
    if sso_connection is not None:
        conn = admin.post("/api/v1/sso/connections", {"protocol": "saml"}).get_json()
        enabled = {"enabled": sso_connection == "enabled"}
        assert admin.patch(f"/api/v1/sso/connections/{conn['id']}", enabled).status_code == 200
    with db.reader(app)() as s:
        current = settings.get_settings(s, scim.org_id)
        expected = settings.passwords_allowed(s, scim.org_id, current)
        selected = s.scalar(
            select(Organization.id).where(
                Organization.id == scim.org_id,
                recovery._passwords_allowed(),
            )
        )
    assert (selected is not None) is expected


# -- an admin's "require a new password" through a stranger's reset request -------------------


def _reset_token(app, org_id: str) -> str:
    """The newest reset link's token, from its queued mail."""
    with db.reader(app)() as s:
        body = s.scalars(
            select(MailOutbox.body_text)
            .where(MailOutbox.org_id == org_id, MailOutbox.kind == "reset_link")
            .order_by(MailOutbox.created_at.desc())
        ).first()
    assert body is not None
    return str(body.split("/sso/reset/")[1].split()[0])


def _user_status(app, org_id: str, user_id: str) -> str:
    with db.reader(app)() as s:
        user = s.get(User, (org_id, user_id))
        assert user is not None
        return user.status


def test_a_strangers_forgot_request_does_not_lift_an_admins_require_new_password(
    app, scim: Scim, admin: Scim
) -> None:
    """After require_new_password, anyone's /sso/forgot mails a link but the account stays
    AWAITING_NEW_PASSWORD: the old password leads to "Choose a new password" (no RECOVERY,
    which may sign in), and the link expiring unused changes nothing."""
    login = "alice@example.com"
    user_id = person_with_password(app, scim, login)
    resp = admin.post(f"/api/v1/users/{user_id}/actions/require_new_password", None)
    assert resp.status_code == 200, resp.get_json()
    assert forgot(app.test_client(), login).status_code == 200
    assert _reset_token(app, scim.org_id)
    assert _user_status(app, scim.org_id, user_id) == "AWAITING_NEW_PASSWORD"
    resp = sign_in(app.test_client(), login)
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith("/sso/password/change"), resp.headers["Location"]
    with db.writer(app)() as s, s.begin():
        s.execute(update(CredentialToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert recovery.end_expired_recoveries(db.writer(app), utcnow()) == 1
    assert _user_status(app, scim.org_id, user_id) == "AWAITING_NEW_PASSWORD"


def test_the_reset_link_sets_the_new_password_the_admin_required(
    app, client, scim: Scim, admin: Scim
) -> None:
    """The reset link used after require_new_password sets a new password: that satisfies the
    requirement (PROVISIONED), and the new password signs in with no change asked."""
    login = "alice@example.com"
    new = "Saffron-glacier-window-64"
    user_id = person_with_password(app, scim, login)
    resp = admin.post(f"/api/v1/users/{user_id}/actions/require_new_password", None)
    assert resp.status_code == 200, resp.get_json()
    assert forgot(client, login).status_code == 200
    token = _reset_token(app, scim.org_id)
    done = client.post(f"/sso/reset/{token}", data={"password": new, "confirm": new})
    assert done.status_code == 200, done.data
    assert _user_status(app, scim.org_id, user_id) == "PROVISIONED"
    with db.reader(app)() as s:
        user = s.get(User, (scim.org_id, user_id))
        assert user is not None and not user.new_password_required
    resp = sign_in(app.test_client(), login, new)
    assert resp.status_code == 303 and not resp.headers["Location"].endswith("/change")
