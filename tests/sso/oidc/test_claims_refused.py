"""Claims an OIDC identity provider sends that must not name or reach an account as they
are: an address-shaped ``preferred_username`` that is not the person's (OIDC Core §5.7),
and text no column can hold (NUL, a lone surrogate: a 500 before)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jws, jwt
from sqlalchemy import select

from scim_server.models import User
from tests.sso.oidc_op.provider import LocalOP
from tests.support import Scim
from tests.support.sso import oidc_login, read, session_user, set_default_license, sign_ins


def _jit(app: Flask, admin: Scim, scim: Scim, conn: dict[str, Any]) -> None:
    set_default_license(app, scim.org_id)
    resp = admin.patch(f"/api/v1/sso/connections/{conn['id']}", {"jit_enabled": True})
    assert resp.status_code == 200


def test_a_jit_account_is_not_named_after_a_colleagues_address(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
) -> None:
    """Mallory (verified mallory@example.com) says preferred_username=ceo@example.com: her
    account is named by her verified e-mail, and the real CEO's first sign-in makes the
    CEO's own account (it was refused: subject_mismatch against Mallory's)."""
    _jit(app, admin, scim, oidc_conn)
    local_op.user.update(
        sub="mallory-sub",
        email="mallory@example.com",
        email_verified=True,
        preferred_username="ceo@example.com",
    )
    assert oidc_login(client, oidc_conn).status_code == 303
    mallory = session_user(client)
    local_op.user.update(
        sub="ceo-sub", email="ceo@example.com", preferred_username="CEO@example.com"
    )
    ceo_browser = app.test_client()
    resp = oidc_login(ceo_browser, oidc_conn)
    assert resp.status_code == 303, sign_ins(app, scim.org_id)[-1].detail
    assert session_user(ceo_browser) not in (None, mallory)
    with read(app) as s:
        names = sorted(s.scalars(select(User.user_name).where(User.org_id == scim.org_id)))
    # The CEO's own address as preferred_username (in another case) names the CEO's account.
    assert names == ["CEO@example.com", "mallory@example.com"]


def _resign_with(op: LocalOP, **changes: Any) -> None:
    """Serve the provider's id_token with ``changes``, signed by hand (``json.dumps``
    escapes a lone surrogate as ``\\ud800``, which any JSON parser reads back)."""

    def hook(body: dict[str, Any]) -> dict[str, Any]:
        assert op.signing_key is not None
        claims = jwt.decode(body["id_token"], op.signing_key).claims
        claims.update(changes)
        header = {"alg": "RS256", "kid": op.signing_key.kid}
        body["id_token"] = jws.serialize_compact(
            header, json.dumps(claims).encode(), op.signing_key
        )
        return body

    op.token_hook = hook


@pytest.mark.parametrize(
    "changes",
    [{"sub": "user-\ud800"}, {"given_name": "Al\ud800ce"}, {"family_name": "Nul\u0000"}],
    ids=["sub", "given-name", "nul"],
)
def test_a_claim_no_column_can_hold_is_a_named_refusal(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    oidc_conn: dict[str, Any],
    local_op: LocalOP,
    changes: dict[str, str],
) -> None:
    """A signed ID token whose claim holds a lone surrogate or NUL: the refusal page and a
    failure record naming the claim; no account made."""
    _jit(app, admin, scim, oidc_conn)
    if "sub" in changes:
        local_op.userinfo_overrides["sub"] = changes["sub"]
    _resign_with(local_op, **changes)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # what a browser gets, not the traceback
    resp = oidc_login(client, oidc_conn)
    assert resp.status_code in (400, 403), resp.status_code
    record = sign_ins(app, scim.org_id)[-1]
    assert record.outcome == "failure" and record.reason_code == "invalid_claims"
    assert next(iter(changes)) in (record.detail or "")
    with read(app) as s:
        assert s.scalars(select(User.id).where(User.org_id == scim.org_id)).first() is None
