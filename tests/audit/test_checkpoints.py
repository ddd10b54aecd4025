"""Ed25519 checkpoints: published keys, rotation, and a filed checkpoint no rewrite gets past."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from scim_server.audit import chain, offline, statements
from scim_server.audit.checkpoints import compare_filed
from scim_server.audit.recorder import CHECKPOINT_EVERY
from scim_server.audit.signing import new_private_pem, signer_from_pem
from scim_server.cli import main
from scim_server.db import AUDIT_SIGNER_INFO, utcnow
from scim_server.models import AuditCheckpoint, AuditEvent, AuditHead
from tests.support import Scim


def _make_events(scim: Scim, n: int = 3) -> None:
    for i in range(n):
        scim.create_user(f"cp{i}@example.com")


def _keys(client) -> dict[str, offline.PublicKey]:
    return offline.load_public_keys(client.get("/.well-known/audit-keys").get_data(as_text=True))


def _checkpoint(admin: Scim) -> dict:
    resp = admin.post("/api/v1/audit/checkpoints", None)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_a_checkpoint_on_demand_is_signed_and_checks_with_the_published_key(
    scim, admin, client, app
):
    """The admin API returns a signed document of the head; the published key verifies it."""
    _make_events(scim)
    doc = _checkpoint(admin)
    head = admin.get("/api/v1/audit/verify").get_json()
    assert doc["type"] == "scim-server.audit.checkpoint" and doc["kind"] == "manual"
    assert doc["organization"] == scim.org_id and doc["seq"] == head["last_seq"] - 1
    assert doc["key_id"] == app.config["AUDIT_SIGNER"].key_id
    assert offline.check_signature(doc, _keys(client), None) is None
    doc["hash"] = "0" * 64
    assert "does not verify" in offline.check_signature(doc, _keys(client), None)
    listed = admin.get("/api/v1/audit/checkpoints").get_json()["checkpoints"]
    assert listed[0]["seq"] == doc["seq"]
    assert "audit.checkpoint" in [
        e["action"] for e in admin.get("/api/v1/audit").get_json()["events"]
    ]
    assert head["ok"] is True


def test_periodic_checkpoints_are_signed_too(scim, admin, session, client, monkeypatch):
    """Every CHECKPOINT_EVERY events a checkpoint is made; it carries the Ed25519 signature."""
    monkeypatch.setattr("scim_server.audit.recorder.CHECKPOINT_EVERY", 4)
    assert CHECKPOINT_EVERY == 1000
    _make_events(scim, 3)
    rows = list(
        session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.org_id == scim.org_id))
    )
    assert rows and all(r.kind == "periodic" and r.public_signature for r in rows)
    keys = _keys(client)
    assert all(offline.check_signature(statements.document(r), keys, None) is None for r in rows)


def test_a_forged_checkpoint_signature_fails_verify(scim, admin, session):
    """The database's verify checks the Ed25519 signatures of stored checkpoints."""
    _make_events(scim)
    doc = _checkpoint(admin)
    cp = session.get(AuditCheckpoint, (scim.org_id, doc["seq"]))
    cp.public_signature = signer_from_pem(new_private_pem()).sign(statements.statement(cp))[
        "signature"
    ]
    session.commit()
    result = admin.get("/api/v1/audit/verify").get_json()
    assert result["ok"] is False and result["broken_seq"] == doc["seq"]
    assert "does not verify" in result["reason"]


def test_rotating_the_key_keeps_old_checkpoints_verifiable(scim, admin, client, app, session):
    """After a rotation both keys are published (the old one closed); old and new verify."""
    _make_events(scim)
    old = _checkpoint(admin)
    old_signer = app.config["AUDIT_SIGNER"]
    new_signer = signer_from_pem(new_private_pem())
    app.config["AUDIT_SIGNER"] = new_signer
    for factory in (app.extensions["scim_db"].reader, app.extensions["scim_db"].writer):
        factory.kw["info"][AUDIT_SIGNER_INFO] = new_signer
    scim.create_user("after-rotation@example.com")
    new = _checkpoint(admin)
    assert old["key_id"] != new["key_id"] == new_signer.key_id
    published = client.get("/.well-known/audit-keys").get_json()["keys"]
    by_id = {k["key_id"]: k for k in published}
    assert by_id[old["key_id"]]["valid_until"] is not None
    assert by_id[new["key_id"]]["valid_until"] is None
    keys = _keys(client)
    for doc in (old, new):
        assert offline.check_signature(doc, keys, offline.parse_time(doc["created_at"])) is None
    assert admin.get("/api/v1/audit/verify").get_json()["ok"] is True
    # The retired key cannot vouch for anything made after its retirement.
    after = (utcnow() + timedelta(seconds=1)).isoformat(timespec="microseconds")
    late = old_signer.sign({**old, "created_at": after})
    problem = offline.check_signature(late, keys, offline.parse_time(late["created_at"]))
    assert problem and "retired" in problem


def _rewrite_history(session, org_id: str, seq: int) -> None:
    """What an operator holding every server key could do: edit, re-hash, re-sign it all."""
    key = chain.signing_key(session)
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.org_id == org_id, AuditEvent.seq >= seq)
            .order_by(AuditEvent.seq)
        )
    )
    prev = session.get(AuditEvent, (org_id, seq - 1)).hash
    for event in events:
        if event.seq == seq:
            event.user_name = "nobody@example.com"
        event.prev_hash = prev
        event.hash = chain.event_hash(event)
        prev = event.hash
    head = session.get(AuditHead, org_id)
    head.hash = prev
    head.signature = chain.head_signature(
        key, org_id, head.seq, head.hash, head.base_seq, head.base_hash
    )
    for cp in session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.org_id == org_id)):
        if cp.seq >= seq:
            cp.hash = session.get(AuditEvent, (org_id, cp.seq)).hash
            cp.signature = chain.checkpoint_signature(key, org_id, cp.seq, cp.hash, cp.kind)
            statements.seal(session, cp)
    session.commit()


def test_a_rewritten_history_is_caught_by_a_filed_checkpoint(
    scim, admin, client, session, tmp_path
):
    """Re-hashed and re-signed with the server's own keys, the log verifies; the filed copy does not."""
    _make_events(scim)
    filed = _checkpoint(admin)
    scim.create_user("later@example.com")
    victim = session.scalar(
        select(AuditEvent.seq).where(
            AuditEvent.org_id == scim.org_id, AuditEvent.user_name == "cp1@example.com"
        )
    )
    session.rollback()
    _rewrite_history(session, scim.org_id, victim)
    assert admin.get("/api/v1/audit/verify").get_json()["ok"] is True  # the server is fooled
    problem = compare_filed(session, scim.org_id, filed)
    assert problem and "differs from the filed checkpoint" in problem
    # ... and so is an auditor holding an export, the public key and the filed checkpoint.
    export = tmp_path / "export.ndjson"
    export.write_bytes(admin.get("/api/v1/audit/export").get_data())
    keys = tmp_path / "keys.json"
    keys.write_text(client.get("/.well-known/audit-keys").get_data(as_text=True))
    filed_path = tmp_path / "filed.json"
    filed_path.write_text(json.dumps(filed))
    status, text = offline.run(str(export), str(keys), [str(filed_path)])
    assert status == 1
    assert f"event {filed['seq']} differs from the filed checkpoint" in text
    status, text = offline.run(str(export), str(keys), [])
    assert status == 0, text  # without the filed copy, the rewrite is consistent


def _cli_env(tmp_path: Path, monkeypatch, key: Path) -> CliRunner:
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SCIM_AUDIT_SIGNING_KEY", str(key))
    return CliRunner()


def test_the_command_line_prints_keys_and_checkpoints_and_verifies_against_them(
    tmp_path, monkeypatch
):
    """public-key, checkpoint --org, verify --checkpoint and verify-export, end to end."""
    key = tmp_path / "signing.pem"
    key.write_bytes(new_private_pem())
    runner = _cli_env(tmp_path, monkeypatch, key)

    def run(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert run("org", "create", "acme").exit_code == 0
    pem = run("audit", "public-key").output
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert signer_from_pem(key.read_bytes()).public_pem == pem
    made = run("audit", "checkpoint", "--org", "acme")
    assert made.exit_code == 0
    filed = tmp_path / "filed.json"
    filed.write_text(made.output)
    doc = json.loads(made.output)
    keys_doc = json.loads(run("audit", "public-key", "--json").output)
    assert [k["key_id"] for k in keys_doc["keys"]] == [doc["key_id"]]
    verified = run("audit", "verify", "--org", "acme", "--checkpoint", str(filed))
    assert verified.exit_code == 0 and "OK" in verified.output
    export = tmp_path / "export.csv"
    assert (
        run("audit", "export", "--org", "acme", "--format", "csv", "-o", str(export)).exit_code == 0
    )
    pem_file = tmp_path / "public.pem"
    pem_file.write_text(pem)
    checked = runner.invoke(
        main,
        [
            "audit",
            "verify-export",
            str(export),
            "--public-key",
            str(pem_file),
            "--checkpoint",
            str(filed),
        ],
    )
    assert checked.exit_code == 0, checked.output
    assert f"the filed checkpoint at seq {doc['seq']} matches" in checked.output
    script = run("audit", "verifier").output
    assert script == Path(offline.__file__).read_text()


def test_a_signing_key_is_required_outside_development(tmp_path, monkeypatch):
    """SCIM_ENV=production without SCIM_AUDIT_SIGNING_KEY: a clear error; a bad key too."""
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SCIM_ENV", "production")
    monkeypatch.setenv("SCIM_SECRET_KEY", "x" * 32)
    monkeypatch.setenv("SCIM_BASE_URL", "https://id.example.com")
    monkeypatch.delenv("SCIM_AUDIT_SIGNING_KEY", raising=False)
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 1 and "SCIM_AUDIT_SIGNING_KEY" in result.output
    monkeypatch.setenv("SCIM_AUDIT_SIGNING_KEY", str(tmp_path / "missing.pem"))
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 1 and "neither a PEM key nor a readable file" in result.output


def test_a_published_key_row_altered_in_the_database_is_not_served(scim, admin, client, session):
    """The rows carry the server's HMAC: one whose public key is swapped for another's (the
    key id kept) is left out, and the server's own key is served as it is."""
    from scim_server.models import AuditSigningKey

    _make_events(scim)
    _checkpoint(admin)
    mallory = signer_from_pem(new_private_pem())
    (row,) = session.scalars(select(AuditSigningKey)).all()
    genuine = row.public_key
    other = AuditSigningKey(
        key_id="0" * 16,
        algorithm="Ed25519",
        public_key=mallory.public_pem,
        valid_from=row.valid_from,
    )
    other.signature = row.signature  # a signature copied from a genuine row
    session.add(other)
    session.commit()
    served = client.get("/.well-known/audit-keys").get_json()["keys"]
    assert [(k["key_id"], k["public_key"]) for k in served] == [(row.key_id, genuine)]


def test_key_rows_from_before_their_signatures_are_adopted_once(scim, admin, client, session):
    """Migration 0029 leaves the rows it finds unsigned: the server's next registration signs
    them (they are served again); a row added unsigned after that never is."""
    from scim_server.models import AuditSigningKey

    _make_events(scim)
    _checkpoint(admin)
    retired = signer_from_pem(new_private_pem())
    before = utcnow() - timedelta(days=30)
    session.add(
        AuditSigningKey(
            key_id=retired.key_id,
            algorithm="Ed25519",
            public_key=retired.public_pem,
            valid_from=before,
            valid_until=before + timedelta(days=1),
        )
    )
    for row in session.scalars(select(AuditSigningKey)):
        row.signature = None  # as 0029 leaves them
    session.commit()
    assert client.get("/.well-known/audit-keys").get_json()["keys"][0]["key_id"] != retired.key_id
    _checkpoint(admin)  # signs: registers the key
    served = {k["key_id"] for k in client.get("/.well-known/audit-keys").get_json()["keys"]}
    assert retired.key_id in served and len(served) == 2
    late = signer_from_pem(new_private_pem())
    session.add(
        AuditSigningKey(
            key_id=late.key_id, algorithm="Ed25519", public_key=late.public_pem, valid_from=before
        )
    )
    session.commit()
    scim.create_user("after@example.com")
    _checkpoint(admin)
    served = {k["key_id"] for k in client.get("/.well-known/audit-keys").get_json()["keys"]}
    assert late.key_id not in served and retired.key_id in served


# -- a backup put back: the filed checkpoint says what is missing ---------------------------


def _copy_database(source: Path, target: Path) -> None:
    """SQLite's backup API (the WAL and its index stay consistent): a backup taken, or put back."""
    import sqlite3

    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def _restored_cli(tmp_path: Path, monkeypatch) -> Any:
    key = tmp_path / "signing.pem"
    key.write_bytes(new_private_pem())
    runner = _cli_env(tmp_path, monkeypatch, key)

    def run(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def test_a_backup_put_back_is_caught_by_a_checkpoint_filed_after_it(tmp_path, monkeypatch):
    """Backup, more writes, a checkpoint filed, the backup put back: the filed checkpoint
    says history removed; once new writes pass its seq, rewritten."""
    run = _restored_cli(tmp_path, monkeypatch)
    database = tmp_path / "cli.db"
    assert run("org", "create", "acme").exit_code == 0
    assert run("token", "create", "--org", "acme").exit_code == 0
    assert run("audit", "checkpoint", "--org", "acme").exit_code == 0  # the key is registered
    _copy_database(database, tmp_path / "backup.db")
    for i in range(3):
        assert run("token", "create", "--org", "acme", "--name", f"n{i}").exit_code == 0
    filed = tmp_path / "cp.json"
    filed.write_text(run("audit", "checkpoint", "--org", "acme").output)
    _copy_database(tmp_path / "backup.db", database)
    result = run("audit", "verify", "--checkpoint", str(filed))
    assert result.exit_code == 1 and "history removed" in result.output, result.output
    for i in range(5):
        assert run("token", "create", "--org", "acme", "--name", f"m{i}").exit_code == 0
    result = run("audit", "verify", "--checkpoint", str(filed))
    assert result.exit_code == 1 and "rewritten" in result.output, result.output


def test_a_backup_from_before_the_first_checkpoint_is_history_removed(tmp_path, monkeypatch):
    """The same with a backup taken before any checkpoint or export: the database put back
    lists no signing key, and the filed checkpoint was called not authentic ("signed by key
    X, which is not among the public keys given"), X being the server's own current key.
    The server's key is one of its keys: the report is the rollback."""
    run = _restored_cli(tmp_path, monkeypatch)
    database = tmp_path / "cli.db"
    assert run("org", "create", "acme").exit_code == 0
    assert run("token", "create", "--org", "acme").exit_code == 0
    _copy_database(database, tmp_path / "backup.db")
    for i in range(3):
        assert run("token", "create", "--org", "acme", "--name", f"n{i}").exit_code == 0
    filed = tmp_path / "cp.json"
    filed.write_text(run("audit", "checkpoint", "--org", "acme").output)
    seq = json.loads(filed.read_text())["seq"]
    _copy_database(tmp_path / "backup.db", database)
    result = run("audit", "verify", "--checkpoint", str(filed))
    assert result.exit_code == 1
    assert result.output == (
        f"acme: BROKEN at event {seq}: the chain ends before the filed checkpoint's event "
        f"{seq} (history removed)\n"
    )


def test_a_backup_from_before_a_rotated_key_is_history_removed_or_not_ours(tmp_path, monkeypatch):
    """Put back from before the key that signed the filed checkpoint was registered, the
    server since moved to another key: the key is in neither. The chain ending before the
    checkpoint's event is reported with that: rollback, or a checkpoint not of this server."""
    run = _restored_cli(tmp_path, monkeypatch)
    database = tmp_path / "cli.db"
    assert run("org", "create", "acme").exit_code == 0
    _copy_database(database, tmp_path / "backup.db")
    for i in range(3):
        assert run("token", "create", "--org", "acme", "--name", f"n{i}").exit_code == 0
    filed = tmp_path / "cp.json"
    filed.write_text(run("audit", "checkpoint", "--org", "acme").output)
    doc = json.loads(filed.read_text())
    _copy_database(tmp_path / "backup.db", database)
    monkeypatch.setenv("SCIM_AUDIT_SIGNING_KEY", new_private_pem().decode())
    result = run("audit", "verify", "--checkpoint", str(filed))
    assert result.exit_code == 1
    assert result.output == (
        f"acme: BROKEN at event {doc['seq']}: the chain ends before the filed checkpoint's "
        f"event {doc['seq']}, and the key that signed it ({doc['key_id']}) is not one this "
        "database lists (history removed, or the checkpoint is not this server's)\n"
    )


def test_a_forged_checkpoint_within_the_chain_is_not_authentic(tmp_path, monkeypatch):
    """A checkpoint signed by a key the server never had, at a seq the chain holds: not
    authentic, as before (the current key is accepted, no other)."""
    run = _restored_cli(tmp_path, monkeypatch)
    assert run("org", "create", "acme").exit_code == 0
    doc = json.loads(run("audit", "checkpoint", "--org", "acme").output)
    forged = signer_from_pem(new_private_pem()).sign(doc)
    filed = tmp_path / "forged.json"
    filed.write_text(json.dumps(forged))
    result = run("audit", "verify", "--checkpoint", str(filed))
    assert result.exit_code == 1
    assert f"the filed checkpoint is not authentic: it is signed by key {forged['key_id']}" in (
        result.output
    )


def test_exports_and_checkpoints_from_before_a_key_rotation_verify_offline(tmp_path, monkeypatch):
    """After SCIM_AUDIT_SIGNING_KEY is rotated, an export and a checkpoint made before check
    out against the published keys (`public-key --json`) and with `verify --checkpoint`."""
    run = _restored_cli(tmp_path, monkeypatch)
    assert run("org", "create", "acme").exit_code == 0
    assert run("token", "create", "--org", "acme").exit_code == 0
    cp1 = tmp_path / "cp1.json"
    cp1.write_text(run("audit", "checkpoint", "--org", "acme").output)
    old = tmp_path / "old.csv"
    assert run("audit", "export", "--org", "acme", "--format", "csv", "-o", str(old)).exit_code == 0
    monkeypatch.setenv("SCIM_AUDIT_SIGNING_KEY", new_private_pem().decode())
    assert run("token", "create", "--org", "acme", "--name", "x").exit_code == 0
    assert run("audit", "verify", "--checkpoint", str(cp1)).exit_code == 0
    keys = tmp_path / "keys.json"
    keys.write_text(run("audit", "public-key", "--json").output)
    result = CliRunner().invoke(
        main,
        ["audit", "verify-export", str(old), "--public-key", str(keys), "--checkpoint", str(cp1)],
    )
    assert result.exit_code == 0, result.output


def test_the_api_signs_no_checkpoint_over_a_head_the_server_did_not_sign(scim, admin, session):
    """POST /api/v1/audit/checkpoints with the head moved back by someone without the key:
    409 saying why, no checkpoint stored (its refusal is in the log)."""
    _make_events(scim)
    head = session.get(AuditHead, scim.org_id)
    earlier = session.get(AuditEvent, (scim.org_id, head.seq - 1))
    head.seq, head.hash = earlier.seq, earlier.hash
    session.commit()
    resp = admin.post("/api/v1/audit/checkpoints", None)
    assert resp.status_code == 409, resp.get_json()
    assert "not signed by this server" in resp.get_data(as_text=True)
    assert session.scalars(select(AuditCheckpoint)).all() == []
