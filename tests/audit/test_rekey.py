"""The log's HMACs after SCIM_SECRET_KEY changed (``audit.rekey``, run by ``scim-server sso
encrypt-secrets``): what verified under the previous key is signed again, nothing else is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from scim_server.audit.signing import new_private_pem
from scim_server.cli import main
from scim_server.models import AuditEvent

OLD_SECRET = "a" * 64
NEW_SECRET = "b" * 64


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An installation on a SQLite file as the README sets one up: SCIM_SECRET_KEY and an
    Ed25519 signing key, no SCIM_AUDIT_KEY (the log's HMAC key is then SCIM_SECRET_KEY)."""
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'ops.db'}")
    monkeypatch.setenv("SCIM_SECRET_KEY", OLD_SECRET)
    monkeypatch.setenv("SCIM_AUDIT_SIGNING_KEY", new_private_pem().decode())
    monkeypatch.setenv("SCIM_MAIL_DIR", str(tmp_path / "mail"))
    for name in ("SCIM_AUDIT_KEY", "SCIM_PREVIOUS_SECRET_KEY", "SCIM_ENV"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False)

    cli.tmp = tmp_path  # type: ignore[attr-defined]
    cli.monkeypatch = monkeypatch  # type: ignore[attr-defined]
    return cli


def _change_secret_key(cli: Any) -> Any:
    """README, "Changing SCIM_SECRET_KEY": the new key, the old one as
    SCIM_PREVIOUS_SECRET_KEY, `sso encrypt-secrets`, `oauth keys rotate`. The first's result."""
    cli.monkeypatch.setenv("SCIM_PREVIOUS_SECRET_KEY", OLD_SECRET)
    cli.monkeypatch.setenv("SCIM_SECRET_KEY", NEW_SECRET)
    result = cli("sso", "encrypt-secrets")
    assert cli("oauth", "keys", "rotate").exit_code == 0
    return result


def _sql(cli: Any, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(f"sqlite:///{cli.tmp / 'ops.db'}")
    try:
        with engine.begin() as c:
            result = c.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def _rekey_events(cli: Any) -> list[AuditEvent]:
    engine = create_engine(f"sqlite:///{cli.tmp / 'ops.db'}")
    try:
        with Session(engine) as s:
            stmt = select(AuditEvent).where(AuditEvent.action == "audit.rekey")
            return list(s.scalars(stmt.order_by(AuditEvent.seq)))
    finally:
        engine.dispose()


def test_changing_the_secret_key_as_documented_keeps_the_log_verifying(install):
    """Without SCIM_AUDIT_KEY the head and checkpoints are HMAC-signed with SCIM_SECRET_KEY:
    after the README's key change `audit verify` said BROKEN ("the chain head's signature
    does not match", then "checkpoint at N has a bad signature") for good. encrypt-secrets
    signs them again, lists them, and says so in each organization's log; the log verifies,
    a checkpoint filed before still agrees with it."""
    cli = install
    org_id = cli("org", "create", "acme").output.strip()
    for name in ("entra", "okta", "backup"):
        assert cli("token", "create", "--org", "acme", "--name", name).exit_code == 0
    filed = cli.tmp / "cp.json"
    filed.write_text(cli("audit", "checkpoint", "--org", "acme").output)
    seq = json.loads(filed.read_text())["seq"]
    assert cli("audit", "verify").exit_code == 0

    result = _change_secret_key(cli)
    assert result.exit_code == 0, result.output
    assert f"{org_id}\tseq {seq + 1}\taudit.head\tresigned" in result.output
    assert f"{org_id}\t{seq}\taudit.checkpoint\tresigned" in result.output
    assert "\taudit.signing_key\tresigned" in result.output
    assert "audit signature(s) signed again with the current secret" in result.output
    [event] = _rekey_events(cli)
    assert (event.org_id, event.actor_type, event.actor_name) == (
        org_id,
        "cli",
        "scim-server sso encrypt-secrets",
    )
    assert (
        event.detail == "signed again with the current key: the head, 1 checkpoint(s), "
        "1 published signing key(s)"
    )

    assert cli("token", "create", "--org", "acme", "--name", "after").exit_code == 0
    result = cli("audit", "verify")
    assert result.exit_code == 0 and "acme: OK" in result.output, result.output
    result = cli("audit", "verify", "--checkpoint", str(filed))
    assert result.exit_code == 0, result.output
    again = cli("sso", "encrypt-secrets")  # idempotent: nothing left to sign again
    assert again.exit_code == 0 and "\t" not in again.output
    assert len(_rekey_events(cli)) == 1


def test_earlier_audit_signing_keys_stay_published_after_a_secret_change(install):
    """Each published key's row carries the server's HMAC: after a secret change the rows
    signed with the old one were "not the server's: left out", and once the Ed25519 key was
    rotated every export made before failed the auditor's check ("signed by key ..., which
    is not among the public keys given"). The rows are signed again with the rest."""
    cli = install
    assert cli("org", "create", "acme").exit_code == 0
    assert cli("token", "create", "--org", "acme").exit_code == 0
    old_export = cli.tmp / "q1.ndjson"
    assert cli("audit", "export", "--org", "acme", "-o", str(old_export)).exit_code == 0

    assert _change_secret_key(cli).exit_code == 0
    assert cli("token", "create", "--org", "acme", "--name", "after").exit_code == 0
    cli.monkeypatch.setenv("SCIM_AUDIT_SIGNING_KEY", new_private_pem().decode())
    assert cli("audit", "checkpoint", "--org", "acme").exit_code == 0
    keys = cli.tmp / "keys.json"
    keys.write_text(cli("audit", "public-key", "--json").output)
    published = json.loads(keys.read_text())["keys"]
    assert len(published) == 2 and published[0]["valid_until"] is not None
    result = cli("audit", "verify-export", str(old_export), "--public-key", str(keys))
    assert result.exit_code == 0, result.output


def test_rows_that_verify_under_neither_key_are_left_and_reported(install):
    """Re-signing launders nothing: a checkpoint whose hash was altered, a key row someone
    added and a head moved back verify under neither key. They are listed as unverified and
    left as they are (the head's organization untouched: no event, which would sign its head
    again), exit 1; `audit verify` still says what is wrong."""
    cli = install
    acme = cli("org", "create", "acme").output.strip()
    beta = cli("org", "create", "beta").output.strip()
    for org in ("acme", "beta"):
        assert cli("token", "create", "--org", org).exit_code == 0
        assert cli("audit", "checkpoint", "--org", org).exit_code == 0
    [(acme_cp,)] = _sql(cli, "SELECT seq FROM audit_checkpoints WHERE org_id = :o", o=acme)
    _sql(
        cli,
        "UPDATE audit_checkpoints SET hash = :h WHERE org_id = :o",
        h="0" * 64,
        o=acme,
    )
    _sql(
        cli,
        "INSERT INTO audit_signing_keys (key_id, algorithm, public_key, valid_from, signature) "
        "VALUES ('forged0000000000', 'Ed25519', 'x', '2026-01-01 00:00:00', :s)",
        s="1" * 64,
    )
    _sql(cli, "UPDATE audit_heads SET seq = seq - 1 WHERE org_id = :o", o=beta)
    [(beta_seq, beta_sig)] = _sql(
        cli, "SELECT seq, signature FROM audit_heads WHERE org_id = :o", o=beta
    )

    result = _change_secret_key(cli)
    assert result.exit_code == 1
    assert f"{acme}\t{acme_cp}\taudit.checkpoint\tunverified" in result.output
    assert "-\tforged0000000000\taudit.signing_key\tunverified" in result.output
    assert f"{beta}\tseq {beta_seq}\taudit.head\tunverified" in result.output
    assert "valid with neither SCIM_SECRET_KEY nor SCIM_PREVIOUS_SECRET_KEY" in result.output
    assert "3 audit signature(s) valid with neither secret: left as they are" in result.output
    assert _sql(cli, "SELECT seq, signature FROM audit_heads WHERE org_id = :o", o=beta) == [
        (beta_seq, beta_sig)
    ]
    assert [e.org_id for e in _rekey_events(cli)] == [acme]
    verified = cli("audit", "verify")
    assert f"acme: BROKEN at event {acme_cp}: checkpoint at {acme_cp} has a bad signature" in (
        verified.output
    )
    assert "beta: BROKEN" in verified.output and "head altered" in verified.output
    keys = json.loads(cli("audit", "public-key", "--json").output)["keys"]
    assert "forged0000000000" not in [k["key_id"] for k in keys]


def test_a_separate_audit_key_is_left_alone(install):
    """With SCIM_AUDIT_KEY set the log is not signed with SCIM_SECRET_KEY: changing the
    latter re-signs nothing, lists nothing, records nothing."""
    cli = install
    cli.monkeypatch.setenv("SCIM_AUDIT_KEY", "c" * 64)
    assert cli("org", "create", "acme").exit_code == 0
    assert cli("audit", "checkpoint", "--org", "acme").exit_code == 0
    result = _change_secret_key(cli)
    assert result.exit_code == 0 and "audit." not in result.output, result.output
    assert _rekey_events(cli) == []
    assert cli("audit", "verify").exit_code == 0


def test_resign_on_each_database(app, engine, connection, scim, admin):
    """The service itself, on SQLite and PostgreSQL: the log and a checkpoint signed with
    the old key verify after ``resign`` under the new one, the key stays published, and a
    second run finds everything current."""
    from scim_server.audit import rekey, signing
    from scim_server.audit.queries import verify
    from scim_server.db import db
    from tests.support import bind_to_connection

    old = app.config["AUDIT_KEY"]
    scim.create_user("ann@example.com")
    assert admin.post("/api/v1/audit/checkpoints", None).status_code == 201
    app.config["AUDIT_KEY"] = b"another audit key"
    bind_to_connection(app, engine, connection)
    with db.reader(app)() as s:
        assert "head altered" in (verify(s, scim.org_id).reason or "")
        assert signing.published_keys(s)["keys"] == []
    with db.writer(app)() as s:
        states = rekey.resign(s, old)
    mine = {(x.field, x.status) for x in states if x.org_id in (scim.org_id, None)}
    assert mine == {
        ("audit.signing_key", "resigned"),
        ("audit.head", "resigned"),
        ("audit.checkpoint", "resigned"),
    }
    with db.reader(app)() as s:
        result = verify(s, scim.org_id)
        assert result.ok, result.reason
        assert len(signing.published_keys(s)["keys"]) == 1
    with db.writer(app)() as s:
        again = rekey.resign(s, old)
    assert {x.status for x in again if x.org_id in (scim.org_id, None)} == {"current"}


def test_writes_between_the_key_change_and_encrypt_secrets_are_signed_again(install):
    """The nodes restarted with the new SCIM_SECRET_KEY write before `sso encrypt-secrets`
    runs: each write finds the head signed with the old key, not with its own, and signs
    nothing over it (a marker, verify BROKEN). encrypt-secrets, given the old key, finds
    the head each marker records signed with it: the head is signed again, verify says OK
    and lists the settled marker."""
    cli = install
    assert cli("org", "create", "acme").exit_code == 0
    assert cli("token", "create", "--org", "acme").exit_code == 0
    cli.monkeypatch.setenv("SCIM_SECRET_KEY", NEW_SECRET)
    for name in ("during1", "during2"):
        assert cli("token", "create", "--org", "acme", "--name", name).exit_code == 0
    assert "acme: BROKEN" in cli("audit", "verify").output
    cli.monkeypatch.setenv("SCIM_PREVIOUS_SECRET_KEY", OLD_SECRET)
    result = cli("sso", "encrypt-secrets")
    assert result.exit_code == 0, result.output
    assert "\taudit.head\tresigned" in result.output, result.output
    verified = cli("audit", "verify")
    assert verified.exit_code == 0 and "acme: OK" in verified.output, verified.output


def test_resign_signs_a_head_marked_after_the_key_change_and_no_head_altered_before(
    app, engine, connection, scim, other_scim, admin, session
):
    """On each database: a write after the key change marks the head the old key signed;
    ``resign`` with the old key signs it again (verify OK, the marker listed as settled).
    A head moved back before the change, then written onto: its marker records a head the
    old key did not sign either, and the head stays marked (verify BROKEN at the marker)."""
    from scim_server.audit import rekey
    from scim_server.audit.queries import verify
    from scim_server.db import db
    from tests.support import bind_to_connection

    old = app.config["AUDIT_KEY"]
    for org in (scim, other_scim):
        for i in range(3):
            org.create_user(f"u{i}@example.com")
    [(keep,)] = session.execute(
        text("SELECT seq - 1 FROM audit_heads WHERE org_id = :o"), {"o": other_scim.org_id}
    ).all()
    session.execute(
        text("DELETE FROM audit_events WHERE org_id = :o AND seq > :k"),
        {"o": other_scim.org_id, "k": keep},
    )
    session.execute(
        text(
            "UPDATE audit_heads SET seq = :k, hash = (SELECT hash FROM audit_events "
            "WHERE org_id = :o AND seq = :k) WHERE org_id = :o"
        ),
        {"o": other_scim.org_id, "k": keep},
    )
    session.commit()
    app.config["AUDIT_KEY"] = b"another audit key"
    bind_to_connection(app, engine, connection)
    scim.create_user("during@example.com")
    other_scim.create_user("during@example.com")
    with db.reader(app)() as s:
        for org in (scim, other_scim):
            result = verify(s, org.org_id)
            assert not result.ok and "not carry the server's signature" in (result.reason or "")
    with db.writer(app)() as s:
        states = rekey.resign(s, old)
    heads = {x.org_id: x.status for x in states if x.field == "audit.head"}
    assert heads[scim.org_id] == "resigned" and heads[other_scim.org_id] == "unverified"
    with db.reader(app)() as s:
        result = verify(s, scim.org_id)
        assert result.ok, result.reason
        assert len(result.problems) == 1 and "accepted at event" in result.problems[0]
        result = verify(s, other_scim.org_id)
        assert not result.ok and result.broken_seq == keep + 1, result


def test_a_node_still_on_the_old_key_after_the_rekey_is_settled_by_a_second_run(
    app, engine, connection, scim
):
    """The rekey ran while a node still wrote with the old key: that node found the head
    signed with the new key and marked it, then a node on the new key found that mark not
    its own and marked it again. Both markers record heads the server signed, at the log's
    end: running the rekey again once every node has the new key signs the head again."""
    from scim_server.audit import rekey
    from scim_server.audit.queries import verify
    from scim_server.db import db
    from tests.support import bind_to_connection

    old, new = app.config["AUDIT_KEY"], b"another audit key"

    def keyed(key: bytes) -> None:
        app.config["AUDIT_KEY"] = key
        bind_to_connection(app, engine, connection)

    scim.create_user("ann@example.com")
    keyed(new)
    with db.writer(app)() as s:
        rekey.resign(s, old)
    keyed(old)  # a node not restarted yet
    scim.create_user("bob@example.com")
    keyed(new)
    scim.create_user("cy@example.com")
    with db.reader(app)() as s:
        result = verify(s, scim.org_id)
    assert not result.ok and "not carry the server's signature" in (result.reason or "")
    with db.writer(app)() as s:
        states = rekey.resign(s, old)
    assert [x.status for x in states if x.field == "audit.head"] == ["resigned"]
    with db.reader(app)() as s:
        result = verify(s, scim.org_id)
    assert result.ok, result.reason
    assert len(result.problems) == 2
