"""Tamper evidence against someone with the database but not the keys, and the log's completeness.

Each test is an attack (or a normal operation) that the provisioning log must
either detect or survive: an auditor's ``verify`` or offline export check must
never say OK over a history the server itself knows is broken, nor say broken
over an untouched one.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import select

from scim_server.audit import chain, offline, queries
from scim_server.audit.signing import new_private_pem, signer_from_pem
from scim_server.models import AuditEvent, AuditHead, AuditSigningKey
from tests.support import Scim


def _make_events(scim: Scim, n: int = 4) -> None:
    for i in range(n):
        scim.create_user(f"tamper{i}@example.com")


def _keys(client) -> dict[str, offline.PublicKey]:
    return offline.load_public_keys(client.get("/.well-known/audit-keys").get_data(as_text=True))


def _export(admin: Scim, **params: str) -> bytes:
    resp = admin.get("/api/v1/audit/export", query_string=params)
    assert resp.status_code == 200
    return resp.get_data()


def _rehash_from(session, org_id: str, seq: int, edit) -> None:
    """What anyone who can write the database can do without a key: edit an event, then
    recompute the plain SHA-256 links after it and point the head at the new last hash
    (the head's HMAC cannot be redone: it is left as it was)."""
    rows = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.org_id == org_id, AuditEvent.seq >= seq)
            .order_by(AuditEvent.seq)
        )
    )
    prev = session.get(AuditEvent, (org_id, seq - 1)).hash
    for event in rows:
        if event.seq == seq:
            edit(event)
        event.prev_hash = prev
        event.hash = chain.event_hash(event)
        prev = event.hash
    session.get(AuditHead, org_id).hash = prev
    session.commit()


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_the_server_does_not_sign_an_export_of_a_chain_its_own_verify_rejects(
    scim, admin, client, session, fmt
):
    """An event rewritten in the database (hashes recomputed, no key used): the server's
    verify sees the head no longer matches its signature, yet the export signs that history
    with the Ed25519 key and the offline verifier, given the published keys, says OK."""
    _make_events(scim)
    victim = session.scalar(
        select(AuditEvent.seq).where(
            AuditEvent.org_id == scim.org_id, AuditEvent.user_name == "tamper1@example.com"
        )
    )
    session.rollback()

    def edit(event: AuditEvent) -> None:
        event.user_name = "somebody-else@example.com"
        event.actor_name = "nobody"

    _rehash_from(session, scim.org_id, victim, edit)
    server = admin.get("/api/v1/audit/verify")
    assert server.status_code == 409, server.get_json()  # the server knows
    report = offline.verify_export(_export(admin, format=fmt), _keys(client))
    assert not report.ok, report.text()


def test_a_key_added_to_the_database_is_not_published_as_the_servers(scim, admin, client, session):
    """The published keys are the auditors' trust root. Someone who can write the database
    (and holds no server key) inserts a key of their own: it is served at
    /.well-known/audit-keys, and an export they forge and sign with it verifies offline."""
    _make_events(scim)
    mallory = signer_from_pem(new_private_pem())
    genuine = _export(admin)
    served = client.get("/.well-known/audit-keys").get_json()["keys"]
    session.add(
        AuditSigningKey(
            key_id=mallory.key_id,
            algorithm="Ed25519",
            public_key=mallory.public_pem,
            valid_from=offline.parse_time(served[0]["valid_from"]),
            valid_until=None,
        )
    )
    session.commit()
    # The forgery: the genuine events, the last one dropped, the manifest redone and signed.
    lines = genuine.decode().splitlines(keepends=True)
    manifest = json.loads(lines[-1])["manifest"]
    events = [json.loads(line) for line in lines[:-2]]
    manifest.update(
        count=len(events),
        last_seq=events[-1]["seq"],
        last_hash=events[-1]["hash"],
        events_digest=hashlib.sha256(
            b"".join(offline.digest_line(e["seq"], e["hash"]) for e in events)
        ).hexdigest(),
    )
    forged = "".join(lines[:-2]) + json.dumps({"manifest": mallory.sign(manifest)}) + "\n"
    report = offline.verify_export(forged.encode(), _keys(client))
    assert not report.ok, report.text()


@pytest.mark.parametrize("number", [1e16, 1.5e300, -0.0], ids=["1e16", "1.5e300", "minus-zero"])
def test_a_rule_set_with_a_number_operand_keeps_the_chain_verifiable(admin, number):
    """A rule condition may compare with a number (the rules engine takes it as text); the
    ``ruleset.create`` event carries the document. Stored and read back (on PostgreSQL,
    JSONB writes 1e16 as 10000000000000000, an integer, and -0.0 as 0.0), the untouched
    event must still match its hash."""
    document = {
        "mode": "first-match",
        "rules": [{"name": "r", "when": {"attribute": "department", "equals": number}, "then": {}}],
    }
    resp = admin.post("/api/v1/rulesets", {"name": "numbers", "document": document})
    assert resp.status_code == 201, resp.get_json()
    result = admin.get("/api/v1/audit/verify").get_json()
    assert result["ok"] is True, (result["broken_seq"], result["reason"])


def test_verify_while_a_write_commits_is_not_a_truncated_tail(live, monkeypatch):
    """Verification reads the signed head, then walks the events. A provisioning write that
    commits in between (normal operation on a busy organization) must not be reported as
    tampering."""
    from scim_server.db import db

    app, scim = live
    _make_events(scim, 2)
    stream = queries.stream
    wrote = []

    def stream_after_a_write(*args, **kwargs):
        if not wrote:
            wrote.append(scim.create_user("meanwhile@example.com"))
        return stream(*args, **kwargs)

    monkeypatch.setattr(queries, "stream", stream_after_a_write)
    with db.reader(app)() as session:
        result = queries.verify(session, scim.org_id)
    assert wrote
    assert result.ok, result


def test_a_csv_export_whose_last_event_holds_a_line_starting_with_hash_verifies(
    scim, admin, client
):
    """SCIM accepts a userName with a line break. When such a user's event is the last of a
    CSV export and a line of the value starts with "# ", the verifier takes that line for a
    trailer (manifest/error comment) and calls the untouched export altered."""
    _make_events(scim, 2)
    scim.create_user("leaver\n# see ticket 42@example.com")
    report = offline.verify_export(_export(admin, format="csv"), _keys(client))
    assert report.ok, report.text()


def test_a_filtered_export_does_not_verify_as_the_whole_log(scim, admin, client):
    """A refused create is the newest event; an export with ``outcome=success`` leaves it out.
    Its events happen to be consecutive, so the verifier's answer is word for word that of
    a complete export made a moment earlier: nothing says a filter hid events (the
    manifest's ``parameters`` and ``chain_head`` say so, but are never reported)."""
    _make_events(scim, 2)
    refused = scim.post(
        "/scim/v2/Users",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "tamper0@example.com",
        },
    )
    assert refused.status_code == 409
    report = offline.verify_export(_export(admin, outcome="success"), _keys(client))
    assert report.ok, report.text()
    assert "outcome" in report.text(), report.text()
