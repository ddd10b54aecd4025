"""Configuration from the environment: the mail settings, the proxies in front, their clear
errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy.engine import Connection, Engine

from scim_server import ratelimit
from scim_server.config import ConfigError, SmtpSettings, load_config, parse_smtp_url
from tests.support import Scim, bind_to_connection, make_org
from tests.support.local import person_with_password, sign_in
from tests.support.sso import events


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com:25", SmtpSettings("mail.example.com", 25, "plain")),
        ("smtp://127.0.0.1", SmtpSettings("127.0.0.1", 25, "plain")),
        (
            "smtp+starttls://user:pass@mail.example.com:587",
            SmtpSettings("mail.example.com", 587, "starttls", "user", "pass"),
        ),
        (
            "smtps://me%40example.com:p%3Ass%2Fw@smtp.example.com",
            SmtpSettings("smtp.example.com", 465, "ssl", "me@example.com", "p:ss/w"),
        ),
        ("", None),
        (None, None),
    ],
)
def test_smtp_urls_that_work(url, expected):
    """Each scheme's security and default port; user and password percent-decoded."""
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example.com", "must start with one of smtp://, smtp\\+starttls://, smtps://"),
        ("mail.example.com:25", "must start with one of"),
        ("smtp://", "has no host"),
        ("smtp://mail.example.com:99999", "not a valid URL"),
        ("smtp://mail.example.com:port", "not a valid URL"),
        ("smtp://user@mail.example.com", "both a user and a password"),
        ("smtp://mail.example.com/inbox", "no path, query or fragment"),
    ],
)
def test_bad_smtp_urls_are_clear_errors(url, message):
    """A bad SCIM_SMTP_URL says what is wrong and what is expected."""
    with pytest.raises(ConfigError, match=message):
        parse_smtp_url(url)


def test_the_password_is_not_in_the_settings_repr():
    """SMTP settings in a log line or a traceback never show the password."""
    settings = parse_smtp_url("smtps://me:hunter2@smtp.example.com")
    assert "hunter2" not in repr(settings) and "me@smtp.example.com:465" in repr(settings)


def test_mail_settings_from_the_environment(monkeypatch, tmp_path):
    """SCIM_SMTP_URL, SCIM_MAIL_FROM, SCIM_MAIL_DIR; unset: no SMTP, instance/mail."""
    for name in ("SCIM_SMTP_URL", "SCIM_MAIL_FROM", "SCIM_MAIL_DIR"):
        monkeypatch.delenv(name, raising=False)
    config = load_config(str(tmp_path))
    assert config["SMTP"] is None and config["MAIL_DIR"] == str(tmp_path / "mail")
    assert config["MAIL_FROM"] == "scim-server@localhost"
    monkeypatch.setenv("SCIM_SMTP_URL", "smtp://127.0.0.1:2525")
    monkeypatch.setenv("SCIM_MAIL_FROM", "Acme IT <it@acme.example>")
    monkeypatch.setenv("SCIM_MAIL_DIR", str(tmp_path / "out"))
    config = load_config(str(tmp_path))
    assert config["SMTP"] == SmtpSettings("127.0.0.1", 2525, "plain")
    assert config["MAIL_FROM"] == "Acme IT <it@acme.example>"
    assert config["MAIL_DIR"] == str(tmp_path / "out")


@pytest.mark.parametrize("sender", ["nobody", "it@acme.example\r\nBcc: eve@evil.example"])
def test_a_bad_mail_from_is_a_clear_error(monkeypatch, tmp_path, sender):
    """SCIM_MAIL_FROM must be one address, with no line break to inject headers."""
    monkeypatch.setenv("SCIM_MAIL_FROM", sender)
    with pytest.raises(ConfigError, match="SCIM_MAIL_FROM must be one e-mail address"):
        load_config(str(tmp_path))


def test_the_worker_command_stops_on_a_bad_smtp_url(monkeypatch, tmp_path):
    """``scim-server worker`` with a bad SCIM_SMTP_URL: exit 1 and the reason, no traceback."""
    from scim_server.cli import main

    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    monkeypatch.setenv("SCIM_SMTP_URL", "smtp+tls://mail.example.com")
    result = CliRunner().invoke(main, ["worker", "--once"])
    assert result.exit_code == 1
    assert "Error: SCIM_SMTP_URL must start with one of" in result.output
    assert "Traceback" not in result.output


def test_the_public_address_is_required_outside_development(monkeypatch, tmp_path):
    """Every mailed link starts with SCIM_BASE_URL (never the Host a request names)."""
    monkeypatch.setenv("SCIM_ENV", "production")
    monkeypatch.setenv("SCIM_SECRET_KEY", "x" * 32)
    monkeypatch.delenv("SCIM_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="SCIM_BASE_URL is required"):
        load_config(str(tmp_path))
    monkeypatch.setenv("SCIM_BASE_URL", "id.example.com")
    with pytest.raises(ConfigError, match="must be an http"):
        load_config(str(tmp_path))
    monkeypatch.setenv("SCIM_BASE_URL", "https://id.example.com/")
    assert load_config(str(tmp_path))["BASE_URL"] == "https://id.example.com"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("", True), ("false", False), ("0", False), ("Off", False), ("true", True)],
)
def test_hsts_setting(monkeypatch, tmp_path, value, expected):
    """SCIM_HSTS: on unless turned off (false, 0, no, off)."""
    if value is None:
        monkeypatch.delenv("SCIM_HSTS", raising=False)
    else:
        monkeypatch.setenv("SCIM_HSTS", value)
    assert load_config(str(tmp_path))["HSTS"] is expected


def test_a_bad_hsts_setting_is_a_clear_error(monkeypatch, tmp_path):
    """A value that is neither on nor off stops the start, saying what is expected."""
    monkeypatch.setenv("SCIM_HSTS", "sometimes")
    with pytest.raises(ConfigError, match="SCIM_HSTS must be true or false"):
        load_config(str(tmp_path))


def test_flask_wtf_asks_no_referer(monkeypatch, tmp_path):
    """WTF_CSRF_SSL_STRICT off: the console's origin check (``csrf``) stands in for the
    Referer Flask-WTF would demand on https, which no browser sends under no-referrer."""
    assert load_config(str(tmp_path))["WTF_CSRF_SSL_STRICT"] is False


@pytest.mark.parametrize("value", ["0", "-1", "36501", "99999999999"])
def test_an_events_retention_out_of_range_stops_the_start(monkeypatch, tmp_path, value):
    """SCIM_EVENTS_RETENTION_DAYS of 0 or less had the worker delete the whole feed; one
    past a hundred years no date holds (an OverflowError): a clear error at start."""
    monkeypatch.setenv("SCIM_EVENTS_RETENTION_DAYS", value)
    with pytest.raises(
        ConfigError,
        match=f"SCIM_EVENTS_RETENTION_DAYS must be a number of days from 1 to 36500, got {value}",
    ):
        load_config(str(tmp_path))


@pytest.mark.parametrize(("value", "expected"), [(None, 30), ("", 30), ("1", 1), ("36500", 36500)])
def test_events_retention_setting(monkeypatch, tmp_path, value, expected):
    """SCIM_EVENTS_RETENTION_DAYS: 30 unless set, 1 to 36500 days."""
    if value is None:
        monkeypatch.delenv("SCIM_EVENTS_RETENTION_DAYS", raising=False)
    else:
        monkeypatch.setenv("SCIM_EVENTS_RETENTION_DAYS", value)
    assert load_config(str(tmp_path))["EVENTS_RETENTION_DAYS"] == expected


# -- SCIM_TRUSTED_PROXIES: the client's address behind a load balancer ----------------------


@pytest.mark.parametrize(("value", "expected"), [(None, 0), ("", 0), ("0", 0), ("2", 2)])
def test_trusted_proxies_setting(monkeypatch, tmp_path, value, expected):
    """SCIM_TRUSTED_PROXIES: how many proxies stand in front; unset, none is trusted."""
    if value is None:
        monkeypatch.delenv("SCIM_TRUSTED_PROXIES", raising=False)
    else:
        monkeypatch.setenv("SCIM_TRUSTED_PROXIES", value)
    assert load_config(str(tmp_path))["TRUSTED_PROXIES"] == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("one", "must be an integer, got 'one'"),
        ("1.5", "must be an integer"),
        ("-1", "must be 0 or more, got -1"),
    ],
)
def test_a_bad_trusted_proxies_setting_stops_the_start(monkeypatch, tmp_path, value, message):
    """A count that is no count stops the start with the setting's name and what it wants."""
    monkeypatch.setenv("SCIM_TRUSTED_PROXIES", value)
    with pytest.raises(ConfigError, match=f"SCIM_TRUSTED_PROXIES {message}"):
        load_config(str(tmp_path))


@pytest.mark.parametrize("value", ["1", -1, True, 1.0])
def test_create_app_refuses_a_trusted_proxies_that_is_no_count(tmp_path, value):
    """The same check when the value comes as configuration (``create_app``'s mapping)."""
    from scim_server import create_app

    with pytest.raises(ConfigError, match="SCIM_TRUSTED_PROXIES must be"):
        create_app({"TESTING": True, "TRUSTED_PROXIES": value})


BALANCER = "10.0.0.2"  # what every request's REMOTE_ADDR is behind the load balancer


@pytest.fixture
def behind_one_proxy(engine: Engine, connection: Connection) -> Iterator[Flask]:
    """An app told that one proxy (the load balancer) stands in front of it."""
    from scim_server import create_app
    from tests.conftest import TEST_CONFIG

    app = create_app(
        {**TEST_CONFIG, "DATABASE_URL": engine.url.render_as_string(False), "TRUSTED_PROXIES": 1}
    )
    yield bind_to_connection(app, engine, connection)


def _password_attempt(app: Flask, client_address: str, spoofed: str | None = None) -> Any:
    """A wrong password from ``client_address``, through the balancer (which appends the
    address it saw to X-Forwarded-For, after whatever the client sent: ``spoofed``)."""
    forwarded = f"{spoofed}, {client_address}" if spoofed else client_address
    browser = app.test_client()
    browser.environ_base.update({"REMOTE_ADDR": BALANCER, "HTTP_X_FORWARDED_FOR": forwarded})
    return sign_in(browser, "alice@example.com", "not the password at all")


@pytest.fixture
def still_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sign-in throttle counts per minute of the clock: one minute for the whole test."""
    now = time.time()
    monkeypatch.setattr(ratelimit, "clock", lambda: now)


def _with_alice(app: Flask) -> str:
    """An organization with alice@example.com, who has a password: its id."""
    org_id, secret = make_org(app, "acme")
    person_with_password(app, Scim(app.test_client(), secret, org_id), "alice@example.com")
    return org_id


def _failures(app: Flask, org_id: str) -> list[str | None]:
    return [e.source_ip for e in events(app, org_id, "signin.failure")]


def test_behind_one_proxy_the_client_is_the_forwarded_address(behind_one_proxy, still_minute):
    """TRUSTED_PROXIES=1: the last X-Forwarded-For hop (the one the balancer added) is the
    client. The sign-in throttle counts per client, not for everyone behind the balancer,
    and the audit event names the client (a value the client put before it is ignored)."""
    app = behind_one_proxy
    org_id = _with_alice(app)
    app.config["SIGNIN_ATTEMPTS_PER_MINUTE"] = 2
    for _ in range(2):
        assert _password_attempt(app, "198.51.100.1", spoofed="192.0.2.77").status_code == 401
    assert _password_attempt(app, "198.51.100.1").status_code == 429
    assert _password_attempt(app, "198.51.100.2").status_code == 401  # another client
    assert _failures(app, org_id)[-3:] == ["198.51.100.1", "198.51.100.1", "198.51.100.2"]


def test_without_trusted_proxies_a_forwarded_header_changes_nothing(app, still_minute):
    """TRUSTED_PROXIES=0 (the default): X-Forwarded-For is the client's to forge, so it is
    ignored: the connection's address is counted and recorded."""
    org_id = _with_alice(app)
    app.config["SIGNIN_ATTEMPTS_PER_MINUTE"] = 2
    for client_address in ("198.51.100.1", "198.51.100.2"):
        assert _password_attempt(app, client_address).status_code == 401
    assert _password_attempt(app, "198.51.100.3").status_code == 429
    assert _failures(app, org_id)[-2:] == [BALANCER, BALANCER]
