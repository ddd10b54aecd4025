"""Bearer tokens (RFC 6750) and organization scoping."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from scim_server.models import ScimToken
from scim_server.services.tokens import hash_token, revoke_token
from tests.support import assert_error


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer scim_not-a-real-token", "Bearer x"],
    ids=["missing", "empty-bearer", "blank-token", "basic-auth", "unknown-token", "wrong-format"],
)
def test_missing_or_invalid_token_is_401_with_challenge(client, scim, header):
    """Without a valid token every SCIM endpoint answers 401 with WWW-Authenticate: Bearer."""
    headers = {"Authorization": header} if header else {}
    resp = client.get("/scim/v2/Users", headers=headers)
    assert_error(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_refused_at_once(app, client, scim, session):
    """A revoked token gets 401 on its next request."""
    assert scim.get("/scim/v2/Users").status_code == 200
    token_id = session.scalar(select(ScimToken.id).where(ScimToken.org_id == scim.org_id))
    session.rollback()
    revoke_token(session, scim.org_id, token_id)
    assert_error(scim.get("/scim/v2/Users"), 401)


def test_only_the_token_hash_is_stored(scim, session):
    """The database holds the SHA-256 of the token, never the token."""
    token = session.scalar(select(ScimToken).where(ScimToken.org_id == scim.org_id))
    assert token.token_hash == hash_token(scim.token)
    assert scim.token not in token.token_hash


def test_each_token_sees_only_its_organization(scim, other_scim):
    """Lists and searches are scoped to the token's organization."""
    scim.create_user("mine@example.com")
    scim.create_group("Mine")
    assert other_scim.get("/scim/v2/Users").get_json()["totalResults"] == 0
    assert other_scim.get("/scim/v2/Groups").get_json()["totalResults"] == 0
    found = other_scim.get('/scim/v2/Users?filter=userName eq "mine@example.com"').get_json()
    assert found["totalResults"] == 0


def test_discovery_endpoints_need_no_token(client):
    """ServiceProviderConfig, ResourceTypes and Schemas are public (they hold no tenant data)."""
    for url in ("/scim/v2/ServiceProviderConfig", "/scim/v2/ResourceTypes", "/scim/v2/Schemas"):
        assert client.get(url).status_code == 200


def test_a_write_looks_its_token_up_without_a_transaction(live):
    """The token lookup of a write is one statement with no BEGIN (SQLite: no lock held or
    queued for; PostgreSQL: no transaction), then the write's own transaction; a token
    revoked between two writes is refused by the second."""
    from sqlalchemy import event

    from scim_server.db import db

    app, scim = live
    user = scim.create_user("ann@example.com")
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(" ".join(statement.split()))

    engine = db.engine(app)
    event.listen(engine, "before_cursor_execute", count)
    try:
        resp = scim.patch_ops(
            f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "title", "value": "x"}
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    lookup = next(i for i, s in enumerate(seen) if "FROM scim_tokens" in s)
    assert not any(s.startswith("BEGIN") for s in seen[:lookup]), seen
    # SQLite: the early read of the stored document is one statement without BEGIN too;
    # the write's BEGIN IMMEDIATE comes after it, and is the only BEGIN of the request.
    assert [s for s in seen if s.startswith("BEGIN")] in ([], ["BEGIN IMMEDIATE"]), seen
    with db.reader(app)() as s:
        token_id = s.scalar(select(ScimToken.id).where(ScimToken.org_id == scim.org_id))
    with db.writer(app)() as s:
        revoke_token(s, scim.org_id, token_id)
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "title", "value": "y"}
    )
    assert resp.status_code == 401
