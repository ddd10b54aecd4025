"""Several nodes, one database: races between sign-ins have one winner."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from scim_server.db import db, utcnow
from scim_server.services.tokens import create_token
from sso import state
from sso.connections.models import SsoIdentityLink, SsoReplay, SsoState
from tests.sso.saml_idp import WS, FakeIdp, valid_response
from tests.support import Scim
from tests.support.dns_server import add_verified_domain
from tests.support.pg_locks import backend_pid, ended_or_waiting
from tests.support.sso import SamlConnection, make_person, sign_ins


def test_racing_replay_has_one_winner(live: Any) -> None:
    """The same IdP-initiated response posted twice at once: one sign-in, one replay refusal."""
    app, scim = live
    with db.reader(app)() as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    admin = Scim(app.test_client(), secret, scim.org_id)
    idp = FakeIdp()
    domain = f"race-{uuid.uuid4().hex[:8]}.example"
    conn = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "metadata_xml": idp.metadata_xml(), "idp_initiated_allowed": True},
    ).get_json()
    add_verified_domain(admin, domain)
    make_person(app, scim, f"alice@{domain}")
    saml = SamlConnection(conn, app.test_client())
    response = valid_response(saml.assertion(None, name_id=f"alice@{domain}", attributes={}), idp)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post() -> None:
        client = SamlConnection(conn, app.test_client())
        barrier.wait()
        statuses.append(client.post(response).status_code)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [303, 400]
    records = sign_ins(app, scim.org_id)
    assert sorted((r.outcome, r.reason_code or "") for r in records) == [
        ("failure", "replay"),
        ("success", ""),
    ]


def test_two_subjects_racing_for_one_account_have_one_winner(live: Any) -> None:
    """Two NameIDs with one e-mail at once: one is linked and signed in, the other subject_mismatch."""
    app, scim = live
    with db.reader(app)() as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    admin = Scim(app.test_client(), secret, scim.org_id)
    idp = FakeIdp()
    domain = f"race-{uuid.uuid4().hex[:8]}.example"
    conn = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "metadata_xml": idp.metadata_xml(), "idp_initiated_allowed": True},
    ).get_json()
    add_verified_domain(admin, domain)
    alice = make_person(app, scim, f"alice@{domain}")
    saml = SamlConnection(conn, app.test_client())
    responses = [
        valid_response(
            saml.assertion(
                None,
                name_id=name_id,
                name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
                attributes={WS + "emailaddress": [f"alice@{domain}"]},
            ),
            idp,
        )
        for name_id in ("pid-one", "pid-two")
    ]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post(response: str) -> None:
        client = SamlConnection(conn, app.test_client())
        barrier.wait()
        statuses.append(client.post(response).status_code)

    threads = [threading.Thread(target=post, args=(r,)) for r in responses]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [303, 403]
    records = sign_ins(app, scim.org_id)
    assert sorted((r.outcome, r.reason_code or "", r.user_id) for r in records) == [
        ("failure", "subject_mismatch", alice),
        ("success", "", alice),
    ]
    winner = next(r.subject for r in records if r.outcome == "success")
    with db.reader(app)() as s:
        rows = s.scalars(select(SsoIdentityLink).where(SsoIdentityLink.org_id == scim.org_id))
        assert [(r.subject, r.user_id) for r in rows] == [(winner, alice)]


@pytest.mark.parametrize("purge", ["remember_assertion", "save_state"])
def test_sign_ins_do_not_queue_on_the_expired_rows_another_one_purges(
    live: Any, monkeypatch: pytest.MonkeyPatch, purge: str
) -> None:
    """Each sign-in deletes expired flow state and replay marks in its transaction. On
    PostgreSQL a second sign-in waited for the first one's commit to delete the same
    expired rows; now it leaves the rows another transaction holds to that one (SKIP
    LOCKED): held inside the first one's transaction, the second completes."""
    app, scim = live
    if db.engine(app).dialect.name != "postgresql":
        pytest.skip("SQLite's writers take the database lock at BEGIN: no write between")
    with db.reader(app)() as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    admin = Scim(app.test_client(), secret, scim.org_id)
    idp = FakeIdp()
    domain = f"purge-{uuid.uuid4().hex[:8]}.example"
    conn = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "metadata_xml": idp.metadata_xml(), "idp_initiated_allowed": True},
    ).get_json()
    add_verified_domain(admin, domain)
    make_person(app, scim, f"alice@{domain}")
    make_person(app, scim, f"bob@{domain}")
    past = utcnow() - timedelta(minutes=1)
    with db.reader(app)() as s, s.begin():
        s.add(
            SsoReplay(
                org_id=scim.org_id, connection_id=conn["id"], assertion_id="_old", expires_at=past
            )
        )
        s.add(
            SsoState(
                id=f"_old-{uuid.uuid4().hex}",
                org_id=scim.org_id,
                connection_id=conn["id"],
                kind="saml_request",
                data={},
                expires_at=past,
            )
        )
    saml = SamlConnection(conn, app.test_client())

    def sign_in(name: str) -> int:
        browser = SamlConnection(conn, app.test_client())
        if purge == "save_state":
            return int(browser.client.get(f"/sso/saml/{conn['id']}/start").status_code)
        assertion = saml.assertion(None, name_id=f"{name}@{domain}", attributes={})
        return int(browser.post(valid_response(assertion, idp)).status_code)

    real = getattr(state, purge)
    raced: list[int] = []
    waited: list[bool] = []
    racers: list[threading.Thread] = []

    def purged_then_raced(session: Any, *args: Any, **kwargs: Any) -> Any:
        result = real(session, *args, **kwargs)
        if not racers:  # the first sign-in's purge, not the racer's
            racer = threading.Thread(target=lambda: raced.append(sign_in("bob")))
            racers.append(racer)
            racer.start()
            waited.append(
                ended_or_waiting(racer, db.engine(app), backend_pid(session.connection()))
            )
        return result

    monkeypatch.setattr(state, purge, purged_then_raced)
    first = sign_in("alice")
    for racer in racers:
        racer.join()
    expected = 302 if purge == "save_state" else 303
    assert (first, raced) == (expected, [expected])
    assert waited == [False]  # the second did not wait for the first's commit
