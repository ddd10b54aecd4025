"""Registering OAuth clients (``sso.provider.clients``): the names and redirect URIs an
operator gives, and revoking a client."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from scim_server.cli import main
from scim_server.db import db
from scim_server.errors import InvalidValueError
from sso.provider.clients import create_client, list_clients, revoke_client
from tests.sso.provider.test_endpoints import REDIRECT, authorize, login_flow, pkce, userinfo
from tests.sso.provider.test_endpoints import app as app  # the provider's fixtures
from tests.sso.provider.test_endpoints import person as person
from tests.support import Scim


@pytest.mark.parametrize("name", ["Product\nForged", "Product\t", "\x1b[31mProduct", "P\x85"])
def test_a_client_name_with_a_control_character_is_refused(session, name):
    """Client names go into lists, the consent page and the log: no control characters,
    as organization, token, license and role names."""
    session.rollback()
    with pytest.raises(InvalidValueError, match="cannot hold control characters"):
        create_client(session, name, [REDIRECT])
    session.rollback()
    assert [c.name for c in list_clients(session)] == []


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("https://app.example.com/cb#", "fragment"),
        ("https://app.example.com/cb#x", "fragment"),
        ("https://app.example.com/c\tb", "whitespace or a control character"),
        ("https://app.example.com/c b", "whitespace or a control character"),
        ("https://app.example.com/cb\n", "whitespace or a control character"),
        ("https://app.example.com/c\x7fb", "whitespace or a control character"),
        ("https://app.example.com/c\x85b", "whitespace or a control character"),
        ("https://app.example.com/c\u3000b", "whitespace or a control character"),
        ("https://:443/cb", "no host"),
        ("https:///cb", "no host"),
        ("https://user@/cb", "no host"),
        ("https://app.example.com:x/cb", "port"),
        ("https://app.example.com:99999/cb", "port"),
        ("https://[::1/cb", "not a valid URI"),
    ],
)
def test_a_redirect_uri_that_is_not_a_clean_absolute_uri_is_refused(
    session, uri: str, reason: str
) -> None:
    """RFC 6749 §3.1.2: absolute, no fragment component (even an empty one). A URI with a tab
    or a space was matched exactly but the browser went to another (authlib re-parses it;
    browsers drop a tab), and one without a host sent nobody anywhere: each is refused with
    its reason, nothing registered."""
    session.rollback()
    with pytest.raises(InvalidValueError, match=reason):
        create_client(session, "App", [REDIRECT, uri])
    session.rollback()
    assert list_clients(session) == []


def test_the_command_line_says_why_a_redirect_uri_is_refused(tmp_path, monkeypatch) -> None:
    """``scim-server oauth client create`` with a fragment in a redirect URI: exit 1 and the
    reason, no client."""
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SCIM_SECRET_KEY", "cli-test-secret")
    runner = CliRunner()
    made = runner.invoke(
        main, ["oauth", "client", "create", "--name", "App", "--redirect-uri", REDIRECT + "#"]
    )
    assert made.exit_code == 1 and "fragment" in made.output
    assert runner.invoke(main, ["oauth", "client", "list"]).output == ""


def test_a_revoked_clients_tokens_stop(
    app: Flask, client: FlaskClient, scim: Scim, person: dict
) -> None:
    """An organization's client revoked: the access tokens it was given are 401 at userinfo
    at once, and it gets no more codes (its client_id is unknown: a page)."""
    with db.reader(app)() as s:
        bound, secret = create_client(s, "Bound", [REDIRECT], org_id=scim.org_id)
    assert secret is not None
    body = login_flow(app, client, (bound.client_id, secret), person)
    assert userinfo(client, body["access_token"]).status_code == 200
    with db.reader(app)() as s:
        revoke_client(s, scim.org_id, bound.client_id)
    assert userinfo(client, body["access_token"]).status_code == 401
    resp = authorize(client, bound.client_id, pkce()[1])
    assert resp.status_code == 400 and "Location" not in resp.headers
