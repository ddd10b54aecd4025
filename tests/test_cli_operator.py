"""The ``scim-server`` command line as an operator runs it from the README (found by a
probe): bad settings and dates are one line naming them, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from scim_server.cli import main


@pytest.fixture
def lenient_cli(tmp_path, monkeypatch):
    """``scim-server`` on a fresh SQLite file; an exception is kept in the result."""
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SCIM_MAIL_DIR", str(tmp_path / "mail"))
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=True)

    assert run("org", "create", "acme").exit_code == 0
    assert run("token", "create", "--org", "acme").exit_code == 0  # a few audit events
    return run


@pytest.mark.parametrize(
    "args",
    [
        ("audit", "export", "--org", "acme", "--since", "9999-12-31T23:59:59-05:00"),
        ("audit", "export", "--org", "acme", "--until", "0001-01-01T00:00:00+05:00"),
        ("audit", "purge", "--org", "acme", "--before", "0001-01-01T00:00:00+05:00"),
    ],
    ids=["export-since-past-year-9999", "export-until-before-year-1", "purge-before-year-1"],
)
def test_an_audit_date_outside_the_calendar_is_a_usage_error(lenient_cli, args):
    """README: ``audit export`` takes ``--since``/``--until`` (ISO 8601) and ``audit purge
    --before DATE``. A valid ISO 8601 value whose UTC instant falls outside year 1..9999
    (``9999-12-31T23:59:59-05:00`` is 10000-01-01 in UTC) is an OverflowError traceback
    from SQLAlchemy's bind (``date value out of range``), exit 1. It must be a usage error
    naming the option (exit 2), as ``notadate`` already is, never a traceback."""
    result = lenient_cli(*args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert args[-2] in result.output, result.output


@pytest.mark.parametrize(
    ("name", "value"),
    [("SCIM_WORKERS", "abc"), ("SCIM_TIMEOUT", "-5"), ("SCIM_ACCEPT_HOLD_MS", "x")],
)
def test_serve_production_refuses_a_bad_gunicorn_setting_in_one_line(tmp_path, name, value):
    """The README's production command, ``scim-server serve --production``, with a gunicorn
    setting that is not a number (or negative): README "Configuration": "a bad one stops the
    server ... with one line naming it (exit 1)". It imported
    ``scim_server.gunicorn_conf`` whose module body calls ``server_config()``: the
    ConfigError escaped click as a full Python traceback."""
    env = dict(
        os.environ,
        SCIM_DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
        SCIM_MAIL_DIR=str(tmp_path / "mail"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        **{name: value},
    )
    env.pop("SCIM_TEST_DATABASE_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scim_server",
            "serve",
            "--production",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # it started a server: the setting was not refused
        proc.terminate()
        proc.communicate(timeout=30)
        pytest.fail(f"serve --production started with {name}={value!r}")
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and name in errors[0], err


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCIM_AUDIT_RETENTION_DAYS", "abc"),
        ("SCIM_AUDIT_RETENTION_DAYS", "-5"),
        ("SCIM_WORKERS", "abc"),
        ("SCIM_KEEPALIVE", "-5"),
    ],
)
def test_a_bad_documented_setting_stops_every_command(tmp_path, monkeypatch, name, value):
    """README "Configuration": "Every setting is checked at start; a bad one stops the
    server, the worker and every command with one line naming it (exit 1)", and the table
    lists SCIM_AUDIT_RETENTION_DAYS (1 to 36500) and the gunicorn settings. Before,
    ``org list`` (and ``worker``, and ``serve`` without --production) run with them
    unchecked: SCIM_AUDIT_RETENTION_DAYS is read only by ``audit purge`` (as click's
    envvar, reported there as '--retention-days', exit 2), the gunicorn ones only by
    ``serve --production``. An operator learns of the typo at the next purge or deploy."""
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cfg.db'}")
    monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["org", "list"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and name in result.output, result.output
