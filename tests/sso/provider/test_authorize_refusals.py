"""The authorization endpoint refuses what it does not honour and tells another organization's
client nothing of the person's account. Each failed before its fix (found by a probe of the
OIDC provider)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from sso.provider.clients import create_client
from tests.sso.provider.test_endpoints import (
    REDIRECT,
    authorize,
    error_from,
    pkce,
    sign_in,
)
from tests.sso.provider.test_endpoints import app as app  # the provider's fixtures
from tests.sso.provider.test_endpoints import person as person
from tests.sso.provider.test_endpoints import product as product
from tests.support import Scim

SECOND = "https://product.example.com/other-callback"


def _page(resp: Any) -> None:
    """Refused on our page: never a redirect."""
    assert resp.status_code == 400, (resp.status_code, resp.headers.get("Location"))
    assert "Location" not in resp.headers


# -- redirect_uri exact matching -----------------------------------------------------------


@pytest.fixture
def product2(app: Flask) -> tuple[str, str]:
    with db.reader(app)() as s:
        c, secret = create_client(s, "Product2", [REDIRECT, SECOND])
    assert secret is not None
    return c.client_id, secret


ALLOWED_DESC = {chr(c) for c in range(0x20, 0x7F)} - {'"', "\\"}


@pytest.mark.parametrize("prompt", ["create", "unknown-value"])
def test_a_prompt_value_discovery_does_not_offer_is_refused(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    product: tuple[str, str],
    person: dict,
    prompt: str,
) -> None:
    """Discovery: prompt_values_supported ["none", "login"]; checks.HonouredOnly: "what
    discovery does not offer is refused to the client ..., never silently ignored".
    consent and select_account are refused; any other value (``create``, OIDC Initiating
    User Registration §4.1: "SHOULD respond with ... invalid_request") issues a code."""
    sign_in(app, client, scim.org_id, person["id"])
    q = error_from(authorize(client, product[0], pkce()[1], prompt=prompt))
    assert q["error"] == "invalid_request"


def test_a_client_of_another_organization_learns_nothing_of_the_account(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, other_scim: Scim, person: dict
) -> None:
    """Cross-organization isolation: a client bound to globex, opened by an acme person whose
    account holds no license, is told that acme's account holds no license (the status
    checks come before the organization check in ``endpoints.authorize``) instead of only
    "not available to this organization"."""
    with db.reader(app)() as s:
        bound, _ = create_client(s, "Globex portal", [REDIRECT], org_id=other_scim.org_id)
    sign_in(app, client, scim.org_id, person["id"])
    # the acme admin takes the license away; the person signs in again (a fresh session)
    r = admin.put(f"/api/v1/users/{person['id']}/license", {"license": None})
    assert r.status_code == 200
    sign_in(app, client, scim.org_id, person["id"])
    q = error_from(authorize(client, bound.client_id, pkce()[1]))
    assert q["error"] == "access_denied"
    assert q["error_description"] == "This application is not available to this organization."


@pytest.mark.parametrize("state_len", [100, 1900])
def test_a_request_too_long_to_come_back_from_the_sign_in_is_refused_to_the_client(
    app: Flask, client: FlaskClient, scim: Scim, product: tuple[str, str], state_len: int
) -> None:
    """Without a session the request rides through the sign-in (its forms, its cookie) as
    its ``next``, which holds 2,000 characters: a longer one was dropped there and the
    person landed on the signed-in page, the client never hearing back. It is refused to
    the client now, before the sign-in, with its state; a shorter one goes to the login."""
    from urllib.parse import parse_qs, urlsplit

    state = "s" * state_len
    resp = authorize(client, product[0], pkce()[1], state=state)
    where = urlsplit(resp.headers["Location"])
    if state_len < 1000:
        assert where.path == "/sso/login"
        return
    assert f"{where.scheme}://{where.netloc}{where.path}" == REDIRECT
    answer = parse_qs(where.query)
    assert answer["error"] == ["invalid_request"] and answer["state"] == [state]
    assert "too long" in answer["error_description"][0]


def test_an_id_token_hint_of_another_person_is_never_a_silent_switch(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    admin: Scim,
    product: tuple[str, str],
    person: dict,
) -> None:
    """OIDC Core §3.1.2.1: the hint was ignored, and a silent renewal (prompt=none) got a
    code for whoever held the session. Now: another person signed in is login_required with
    prompt=none, a new sign-in without it; the same person gets a code; a hint this
    provider did not issue is invalid_request."""
    from urllib.parse import parse_qs, urlsplit

    from tests.sso.provider.test_endpoints import login_flow

    other = scim.create_user("other@example.com")
    hint = login_flow(app, client, product, person)["id_token"]
    assert (
        admin.put(f"/api/v1/users/{other['id']}/license", {"license": "Engineer"}).status_code
        == 200
    )
    sign_in(app, client, scim.org_id, other["id"])
    silent = authorize(client, product[0], pkce()[1], prompt="none", id_token_hint=hint)
    answer = parse_qs(urlsplit(silent.headers["Location"]).query)
    assert "code" not in answer and answer["error"] == ["login_required"]
    again = authorize(client, product[0], pkce()[1], id_token_hint=hint)
    assert urlsplit(again.headers["Location"]).path == "/sso/login"
    forged = hint[:-4] + ("AAAA" if not hint.endswith("AAAA") else "BBBB")
    bad = authorize(client, product[0], pkce()[1], id_token_hint=forged)
    assert parse_qs(urlsplit(bad.headers["Location"]).query)["error"] == ["invalid_request"]
    sign_in(app, client, scim.org_id, person["id"])
    same = authorize(client, product[0], pkce()[1], prompt="none", id_token_hint=hint)
    assert "code" in parse_qs(urlsplit(same.headers["Location"]).query)
