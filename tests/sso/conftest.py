"""Fixtures for the SSO tests: a local SAML IdP, a local OpenID provider, connections."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.sso.oidc_op import provider as op_module
from tests.sso.oidc_op.provider import CLIENT_ID, CLIENT_SECRET, LocalOP, running_op
from tests.sso.saml_idp import FakeIdp
from tests.support import Scim
from tests.support.dns_server import add_verified_domain
from tests.support.sso import (
    OIDC_BASE,
    SamlConnection,
)


@pytest.fixture
def saml_idp() -> FakeIdp:
    return FakeIdp()


@pytest.fixture
def saml_connection(admin: Scim, client: FlaskClient, saml_idp: FakeIdp) -> SamlConnection:
    """A SAML connection made from the IdP's metadata, with example.com as its (verified) domain."""
    resp = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Entra ID", "metadata_xml": saml_idp.metadata_xml()},
    )
    assert resp.status_code == 201, resp.get_json()
    conn = resp.get_json()
    add_verified_domain(admin, "example.com", conn["id"])
    return SamlConnection(conn, client)


@pytest.fixture(scope="module")
def local_op() -> Iterator[LocalOP]:
    with running_op() as op:
        yield op


@pytest.fixture
def oidc_conn(
    app: Flask, admin: Scim, local_op: LocalOP, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """An OIDC connection to the local provider, example.com (verified) routed to it."""
    local_op.reset()
    app.config["BASE_URL"] = OIDC_BASE
    resp = admin.post(
        "/api/v1/sso/connections",
        {
            "protocol": "oidc",
            "name": "Local OP",
            "issuer": local_op.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert resp.status_code == 201, resp.get_json()
    conn = resp.get_json()
    monkeypatch.setattr(op_module, "REDIRECT_URI", conn["redirect_uri"])
    add_verified_domain(admin, "example.com")
    return conn
