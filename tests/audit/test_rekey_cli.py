"""``scim-server audit rekey``: the log's HMACs after SCIM_AUDIT_KEY changed (a suspected leak,
a routine rotation), as README's "Changing `SCIM_AUDIT_KEY`" does it, on a fresh database of
each kind. What verified under SCIM_PREVIOUS_AUDIT_KEY is signed again, nothing else is."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, make_url, select, text
from sqlalchemy.orm import Session

from scim_server import create_app
from scim_server.audit.signing import new_private_pem
from scim_server.cli import main
from scim_server.db import db, make_engine
from scim_server.models import AuditEvent
from tests.support import PG_URL

SECRET = "s" * 64
KEY_A = "audit key A " + "a" * 52
KEY_B = "audit key B " + "b" * 52


@pytest.fixture
def install(engine: Engine, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An installation as the README sets one up, with an audit key of its own (A), on a
    database of its own of ``engine``'s kind (a SQLite file, a PostgreSQL schema): the
    commands commit, so not the suite's shared one."""
    schema = None
    if engine.dialect.name == "postgresql":
        assert PG_URL is not None
        schema = f"scim_rekey_{uuid.uuid4().hex[:12]}"
        with engine.begin() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        database_url = url.render_as_string(False)
    else:
        database_url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("SCIM_DATABASE_URL", database_url)
    monkeypatch.setenv("SCIM_SECRET_KEY", SECRET)
    monkeypatch.setenv("SCIM_AUDIT_KEY", KEY_A)
    monkeypatch.setenv("SCIM_AUDIT_SIGNING_KEY", new_private_pem().decode())
    monkeypatch.setenv("SCIM_MAIL_DIR", str(tmp_path / "mail"))
    for name in ("SCIM_PREVIOUS_AUDIT_KEY", "SCIM_PREVIOUS_SECRET_KEY", "SCIM_ENV"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    own = make_engine(database_url)

    def cli(*args: str) -> Any:
        result = runner.invoke(main, list(args), catch_exceptions=True)
        exc = result.exception
        # A refusal is click's own error (SystemExit), never a traceback.
        assert exc is None or isinstance(exc, SystemExit), f"traceback: {exc!r}\n{result.output}"
        return result

    def sql(statement: str, **params: Any) -> list[Any]:
        with own.begin() as c:
            result = c.execute(text(statement), params)
            return list(result) if result.returns_rows else []

    def rekey_events() -> list[AuditEvent]:
        with Session(own) as s:
            stmt = select(AuditEvent).where(AuditEvent.action == "audit.rekey")
            return list(s.scalars(stmt.order_by(AuditEvent.org_id, AuditEvent.seq)))

    def api_verify(token: str) -> tuple[int, dict[str, Any]]:
        """``GET /api/v1/audit/verify`` of a server started with the environment now."""
        app = create_app()
        try:
            resp = app.test_client().get(
                "/api/v1/audit/verify", headers={"Authorization": f"Bearer {token}"}
            )
            return resp.status_code, resp.get_json()
        finally:
            db.engine(app).dispose()

    cli.tmp = tmp_path  # type: ignore[attr-defined]
    cli.env = monkeypatch  # type: ignore[attr-defined]
    cli.sql = sql  # type: ignore[attr-defined]
    cli.rekey_events = rekey_events  # type: ignore[attr-defined]
    cli.api_verify = api_verify  # type: ignore[attr-defined]
    yield cli
    own.dispose()
    if schema is not None:
        with engine.begin() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def _rotate(cli: Any, new: str = KEY_B) -> None:
    """Every process's configuration gets the new SCIM_AUDIT_KEY (README, step 1)."""
    cli.env.setenv("SCIM_AUDIT_KEY", new)


def _rekey(cli: Any, previous: str = KEY_A) -> Any:
    """``SCIM_PREVIOUS_AUDIT_KEY=<old> scim-server audit rekey`` (README, step 2)."""
    cli.env.setenv("SCIM_PREVIOUS_AUDIT_KEY", previous)
    try:
        return cli("audit", "rekey")
    finally:
        cli.env.delenv("SCIM_PREVIOUS_AUDIT_KEY")


def test_changing_the_audit_key_as_documented_keeps_the_log_verifying(install):
    """After SCIM_AUDIT_KEY changed `audit verify` (and the admin API) said BROKEN for good,
    and nothing could sign the log again: `sso encrypt-secrets` leaves a log with a key of
    its own alone. `audit rekey` signs the head, the checkpoint and the published key again,
    lists them, and says so in the organization's log; the log verifies, a checkpoint filed
    before still agrees with it, and a second run finds nothing to do."""
    cli = install
    org_id = cli("org", "create", "acme").output.strip()
    for name in ("entra", "okta"):
        assert cli("token", "create", "--org", "acme", "--name", name).exit_code == 0
    admin = cli("token", "create", "--org", "acme", "--admin").output.strip()
    filed = cli.tmp / "cp.json"
    filed.write_text(cli("audit", "checkpoint", "--org", "acme").output)
    seq = json.loads(filed.read_text())["seq"]
    assert cli("audit", "verify").exit_code == 0
    assert cli.api_verify(admin)[0] == 200

    _rotate(cli)
    broken = cli("audit", "verify")
    assert broken.exit_code == 1 and "acme: BROKEN" in broken.output, broken.output
    assert cli.api_verify(admin)[0] == 409

    result = _rekey(cli)
    assert result.exit_code == 0, result.output
    assert f"{org_id}\tseq {seq + 1}\taudit.head\tresigned" in result.output
    assert f"{org_id}\t{seq}\taudit.checkpoint\tresigned" in result.output
    assert "\taudit.signing_key\tresigned" in result.output
    assert "3 audit signature(s) signed again with the current audit key" in result.output
    [event] = cli.rekey_events()
    assert (event.org_id, event.actor_type, event.actor_name) == (
        org_id,
        "cli",
        "scim-server audit rekey",
    )
    assert (
        event.detail == "signed again with the current key: the head, 1 checkpoint(s), "
        "1 published signing key(s)"
    )

    verified = cli("audit", "verify")
    assert verified.exit_code == 0 and "acme: OK" in verified.output, verified.output
    status, body = cli.api_verify(admin)
    assert status == 200 and body["ok"] is True, body
    assert cli("audit", "verify", "--checkpoint", str(filed)).exit_code == 0
    assert cli("token", "create", "--org", "acme", "--name", "after").exit_code == 0
    assert cli("audit", "verify").exit_code == 0

    again = _rekey(cli)  # idempotent: nothing left to sign again
    assert again.exit_code == 0, again.output
    assert "\t" not in again.output and "nothing to sign again" in again.output
    assert len(cli.rekey_events()) == 1


def test_a_separate_audit_key_introduced_later(install):
    """A log signed with SCIM_SECRET_KEY (no SCIM_AUDIT_KEY) given a key of its own: the
    previous audit key is SCIM_SECRET_KEY's value."""
    cli = install
    cli.env.delenv("SCIM_AUDIT_KEY")
    assert cli("org", "create", "acme").exit_code == 0
    assert cli("audit", "checkpoint", "--org", "acme").exit_code == 0
    _rotate(cli)
    assert cli("audit", "verify").exit_code == 1
    result = _rekey(cli, SECRET)
    assert result.exit_code == 0, result.output
    assert "\taudit.checkpoint\tresigned" in result.output
    assert cli("audit", "verify").exit_code == 0


def test_rows_tampered_before_the_rotation_stay_reported(install):
    """Re-signing launders nothing: a checkpoint whose hash was altered and a head moved back
    before the change verify under neither key. They are listed as unverified and left as
    they are (the head's organization untouched: no event, which would sign its head
    again), exit 1 as `sso encrypt-secrets` does; `audit verify` still says what is wrong."""
    cli = install
    acme = cli("org", "create", "acme").output.strip()
    beta = cli("org", "create", "beta").output.strip()
    for org in ("acme", "beta"):
        assert cli("token", "create", "--org", org).exit_code == 0
        assert cli("audit", "checkpoint", "--org", org).exit_code == 0
    [(acme_cp,)] = cli.sql("SELECT seq FROM audit_checkpoints WHERE org_id = :o", o=acme)
    cli.sql("UPDATE audit_checkpoints SET hash = :h WHERE org_id = :o", h="0" * 64, o=acme)
    cli.sql("UPDATE audit_heads SET seq = seq - 1 WHERE org_id = :o", o=beta)
    beta_head = cli.sql("SELECT seq, signature FROM audit_heads WHERE org_id = :o", o=beta)
    [(beta_seq, _sig)] = beta_head

    _rotate(cli)
    result = _rekey(cli)
    assert result.exit_code == 1, result.output
    assert f"{acme}\t{acme_cp}\taudit.checkpoint\tunverified" in result.output
    assert f"{beta}\tseq {beta_seq}\taudit.head\tunverified" in result.output
    assert f"{acme}\tseq " in result.output and "audit.head\tresigned" in result.output
    assert "2 audit signature(s) valid with neither key: left as they are" in result.output
    assert "neither SCIM_AUDIT_KEY nor SCIM_PREVIOUS_AUDIT_KEY" in result.output
    assert "Traceback" not in result.output
    assert cli.sql("SELECT seq, signature FROM audit_heads WHERE org_id = :o", o=beta) == (
        beta_head
    )
    assert [e.org_id for e in cli.rekey_events()] == [acme]
    verified = cli("audit", "verify")
    assert verified.exit_code == 1
    assert f"acme: BROKEN at event {acme_cp}" in verified.output, verified.output
    assert "beta: BROKEN" in verified.output, verified.output

    again = _rekey(cli)  # still refused, still nothing signed
    assert again.exit_code == 1 and "\tunverified" in again.output
    assert len(cli.rekey_events()) == 1


def test_a_wrong_previous_key_signs_nothing_again(install):
    """A previous key the log was never signed with verifies nothing: nothing is signed
    again, no event is written, the command says so (exit 1); the right key then works."""
    cli = install
    org_id = cli("org", "create", "acme").output.strip()
    assert cli("audit", "checkpoint", "--org", "acme").exit_code == 0
    _rotate(cli)
    before = cli.sql(
        "SELECT signature FROM audit_heads UNION ALL SELECT signature FROM audit_checkpoints"
    )

    result = _rekey(cli, "not the key it was " + "x" * 45)
    assert result.exit_code == 1, result.output
    assert f"{org_id}\tseq " in result.output and "audit.head\tunverified" in result.output
    assert "resigned" not in result.output
    assert "nothing was signed again" in result.output
    assert "SCIM_PREVIOUS_AUDIT_KEY" in result.output
    assert cli.rekey_events() == []
    after = cli.sql(
        "SELECT signature FROM audit_heads UNION ALL SELECT signature FROM audit_checkpoints"
    )
    assert sorted(after) == sorted(before)
    assert cli("audit", "verify").exit_code == 1

    assert _rekey(cli).exit_code == 0
    assert cli("audit", "verify").exit_code == 0


def test_a_missing_or_unchanged_previous_key_is_refused(install):
    """Without SCIM_PREVIOUS_AUDIT_KEY, or with the current key as the previous one (the new
    key not configured yet): a usage error naming the setting, no traceback, nothing done.
    The key is never an option: a command line is visible to other users."""
    cli = install
    assert cli("org", "create", "acme").exit_code == 0
    missing = cli("audit", "rekey")
    assert missing.exit_code == 2, missing.output
    assert "SCIM_PREVIOUS_AUDIT_KEY is not set" in missing.output

    same = _rekey(cli, KEY_A)  # SCIM_AUDIT_KEY is still A
    assert same.exit_code == 2, same.output
    assert "SCIM_PREVIOUS_AUDIT_KEY is the current audit key" in same.output
    assert cli.rekey_events() == []

    as_option = cli("audit", "rekey", "--previous-key", KEY_A)
    assert as_option.exit_code == 2 and "No such option" in as_option.output
    assert "SCIM_PREVIOUS_AUDIT_KEY" in cli("audit", "rekey", "--help").output


def test_exports_signed_before_the_rotation_still_verify_offline(install):
    """Each published key's row carries the audit key's HMAC: after the change the rows
    signed with the old one were "not the server's: left out", and once the Ed25519 key was
    rotated every export made before failed the auditor's check. `audit rekey` signs them
    again with the rest."""
    cli = install
    assert cli("org", "create", "acme").exit_code == 0
    assert cli("token", "create", "--org", "acme").exit_code == 0
    old_export = cli.tmp / "q1.ndjson"
    assert cli("audit", "export", "--org", "acme", "-o", str(old_export)).exit_code == 0

    _rotate(cli)
    assert _rekey(cli).exit_code == 0
    assert cli("token", "create", "--org", "acme", "--name", "after").exit_code == 0
    cli.env.setenv("SCIM_AUDIT_SIGNING_KEY", new_private_pem().decode())
    assert cli("audit", "checkpoint", "--org", "acme").exit_code == 0
    keys = cli.tmp / "keys.json"
    keys.write_text(cli("audit", "public-key", "--json").output)
    published = json.loads(keys.read_text())["keys"]
    assert len(published) == 2 and published[0]["valid_until"] is not None
    result = cli("audit", "verify-export", str(old_export), "--public-key", str(keys))
    assert result.exit_code == 0, result.output
