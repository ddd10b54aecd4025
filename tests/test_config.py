"""Configuration from the environment: the mail settings and their clear errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from scim_server.config import ConfigError, SmtpSettings, load_config, parse_smtp_url


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
