"""TOTP secrets after SCIM_SECRET_KEY changed: sealed again with the current secret by
``scim-server sso encrypt-secrets`` (``sso.local.totp_secrets``), as the other secrets are."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import AuditEvent, MfaFactor, User
from sso.local import keys
from sso.local.totp_secrets import reseal_factors
from tests.sso.local.conftest import LOGIN
from tests.sso.local.test_mfa import _enrol, _require_mfa, _second_step, _sign_out
from tests.support import Clock, Scim
from tests.support.local import code_now, sign_in
from tests.support.sso import events, read

OLD = "a" * 64
NEW = "b" * 64
SECRET = "JBSWY3DPEHPK3PXP"


def test_a_totp_factor_works_after_the_secret_key_changed(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, person: str, clock: Clock
) -> None:
    """The factor's secret is sealed with a key derived from SCIM_SECRET_KEY; the README's
    key change re-sealed connection and webhook secrets only, and every person with an
    authenticator app was locked out (the factor no longer opened). Sealed again, it opens:
    the code signs in; the change is in the person's log."""
    app.config["OAUTH_KEY_SECRET"] = OLD
    _require_mfa(admin)
    secret, _codes = _enrol(client, clock)
    _sign_out(client)

    app.config["OAUTH_KEY_SECRET"] = NEW
    with read(app) as s:
        [state] = reseal_factors(s, NEW.encode(), OLD.encode())
    assert (state.org_id, state.status) == (scim.org_id, "resealed")
    [event] = events(app, scim.org_id, "user.mfa.secrets")
    assert (event.resource_id, event.changes) == (person, {"mfa.totp": "(resealed)"})
    assert event.detail == "totp: Authenticator app (encrypted again with the current secret)"

    clock.advance(60)
    resp = sign_in(client, LOGIN, next_path="/app")
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/mfa"
    resp = _second_step(client, code_now(secret, clock.now))
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    with read(app) as s:  # again: already current, nothing written
        assert [x.status for x in reseal_factors(s, NEW.encode(), OLD.encode())] == ["current"]
    assert len(events(app, scim.org_id, "user.mfa.secrets")) == 1


def _factor(db_file: Path, org_id: str, key: str) -> str:
    """A TOTP factor sealed with ``key`` for a new person of ``org_id``: its id."""
    from scim_server import create_app
    from scim_server.db import db
    from scim_server.services.users import create_user
    from sso.local.factors import enrol_totp

    app = create_app()
    now = datetime.now(UTC)
    try:
        with db.writer(app)() as s:
            user_id = create_user(s, org_id, {"userName": f"{key[:4]}@example.com"}).id
        with db.writer(app)() as s, s.begin():
            user = s.get(User, (org_id, user_id))
            assert user is not None
            factor = enrol_totp(s, key.encode(), user, SECRET, code_now(SECRET, now), now)
            assert factor is not None
            return factor.id
    finally:
        db.engine(app).dispose()


def test_the_command_lists_the_factors_it_seals_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sso encrypt-secrets` with SCIM_PREVIOUS_SECRET_KEY: a line per factor sealed again
    (mfa.totp); one that opens with neither secret is listed unreadable, left as it is,
    exit 1 and what to do. Again: nothing left to do but that one."""
    from scim_server.cli import main

    db_file = tmp_path / "cli.db"
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{db_file}")
    monkeypatch.setenv("SCIM_SECRET_KEY", OLD)
    monkeypatch.setenv("SCIM_AUDIT_KEY", "c" * 64)
    monkeypatch.delenv("SCIM_PREVIOUS_SECRET_KEY", raising=False)
    runner = CliRunner()
    org_id = runner.invoke(main, ["org", "create", "acme"], catch_exceptions=False).output.strip()
    sealed = _factor(db_file, org_id, OLD)
    stranger = _factor(db_file, org_id, "d" * 64)
    with sqlite3.connect(db_file) as conn:
        before = dict(conn.execute("SELECT id, secret FROM mfa_factors").fetchall())

    monkeypatch.setenv("SCIM_SECRET_KEY", NEW)
    monkeypatch.setenv("SCIM_PREVIOUS_SECRET_KEY", OLD)
    out = runner.invoke(main, ["sso", "encrypt-secrets"])
    assert out.exit_code == 1
    assert f"{org_id}\t{sealed}\tmfa.totp\tresealed" in out.output
    assert f"{org_id}\t{stranger}\tmfa.totp\tunreadable" in out.output
    assert "1 secret(s) re-encrypted with the current secret" in out.output
    assert "reset those people's second factors" in out.output
    with sqlite3.connect(db_file) as conn:
        after = dict(conn.execute("SELECT id, secret FROM mfa_factors").fetchall())
    assert after[stranger] == before[stranger] and after[sealed] != before[sealed]
    assert keys.open_totp(NEW.encode(), org_id, sealed, after[sealed]) == SECRET

    again = runner.invoke(main, ["sso", "encrypt-secrets"])
    assert again.exit_code == 1 and "resealed" not in again.output
    assert f"{org_id}\t{stranger}\tmfa.totp\tunreadable" in again.output
    with sqlite3.connect(db_file) as conn:
        actions = [a for (a,) in conn.execute("SELECT action FROM audit_events")]
    assert actions.count("user.mfa.secrets") == 1


def test_a_clear_value_is_never_sealed(app: Flask, scim: Scim) -> None:
    """A TOTP secret is sealed from its enrolment: a clear value in the column was put
    there by someone else, and sealing it would make their factor work. Left unreadable."""
    app.config["OAUTH_KEY_SECRET"] = NEW
    user_id = scim.create_user("bob@example.com")["id"]
    with read(app) as s, s.begin():
        s.add(
            MfaFactor(
                org_id=scim.org_id,
                id="f-clear",
                user_id=user_id,
                kind="totp",
                label="planted",
                secret=SECRET,
            )
        )
    with read(app) as s:
        [state] = reseal_factors(s, NEW.encode(), OLD.encode())
    assert state.status == "unreadable"
    with read(app) as s:
        assert s.scalar(select(MfaFactor.secret).where(MfaFactor.id == "f-clear")) == SECRET
        assert not s.scalars(
            select(AuditEvent).where(AuditEvent.action == "user.mfa.secrets")
        ).all()
