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


# -- numbers, each by its meaning; settings that are no setting ------------------------------

# Sizes, lifetimes and costs for which 0 (or less) means nothing sensible: 1 or more.
POSITIVE = [
    "SCIM_MAX_PAGE_SIZE",
    "SCIM_DEFAULT_PAGE_SIZE",
    "SCIM_MAX_INLINE_MEMBERS",
    "SCIM_MAX_BODY_BYTES",
    "SCIM_BULK_MAX_OPERATIONS",
    "SCIM_BULK_MAX_PAYLOAD_BYTES",
    "SCIM_DB_POOL_SIZE",
    "SCIM_DB_CONNECT_TIMEOUT",
    "SCIM_OAUTH_CODE_SECONDS",
    "SCIM_OAUTH_ACCESS_TOKEN_SECONDS",
    "SCIM_OAUTH_ID_TOKEN_SECONDS",
    "SCIM_SSO_SESSION_SECONDS",
    "SCIM_SECURITY_REAUTH_SECONDS",
    "SCIM_SIGNIN_PENDING_SECONDS",
    "SCIM_CONSOLE_IDLE_SECONDS",
    "SCIM_ARGON2_TIME_COST",
    "SCIM_ARGON2_PARALLELISM",
    "SCIM_WEBHOOK_TIMEOUT_SECONDS",
    "SCIM_DNS_TIMEOUT_SECONDS",
]
# Counts and waits for which 0 means off, none or at once (README): 0 or more.
COUNTS = [
    "SCIM_DB_MAX_OVERFLOW",
    "SCIM_DB_POOL_TIMEOUT",
    "SCIM_RATE_LIMIT_PER_MINUTE",
    "SCIM_RATE_LIMIT_CACHE_SECONDS",
    "SCIM_OAUTH_KEY_GRACE_SECONDS",
    "SCIM_SIGNIN_ATTEMPTS_PER_MINUTE",
]


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name in POSITIVE for value in ("0", "-1")]
    + [(name, "-1") for name in COUNTS],
)
def test_a_number_out_of_its_range_stops_the_start(monkeypatch, tmp_path, name, value):
    """Each size, lifetime or count is checked by its meaning: SCIM_MAX_PAGE_SIZE=0 served
    pages that count users and list none, SCIM_MAX_BODY_BYTES=-1 answered every POST 413,
    a negative lifetime ended every session at once. The start stops, naming the setting."""
    monkeypatch.setenv(name, value)
    wanted = "0 or more" if name in COUNTS else "1 or more"
    with pytest.raises(ConfigError, match=f"^{name} must be {wanted}, got {value}$"):
        load_config(str(tmp_path))


@pytest.mark.parametrize("name", COUNTS)
def test_a_count_may_be_zero(monkeypatch, tmp_path, name):
    """0 is a count's "off" or "none" (no rate limit, no overflow, no wait): taken."""
    monkeypatch.setenv(name, "0")
    key = name.removeprefix("SCIM_")
    assert load_config(str(tmp_path))[key] == 0


def test_argon2_memory_must_hold_its_lanes(monkeypatch, tmp_path):
    """argon2 needs 8 KiB per lane: a smaller SCIM_ARGON2_MEMORY_KIB failed every password
    check with a traceback; it stops the start."""
    monkeypatch.setenv("SCIM_ARGON2_PARALLELISM", "4")
    monkeypatch.setenv("SCIM_ARGON2_MEMORY_KIB", "16")
    with pytest.raises(ConfigError, match=r"^SCIM_ARGON2_MEMORY_KIB must be at least 32 "):
        load_config(str(tmp_path))
    monkeypatch.setenv("SCIM_ARGON2_MEMORY_KIB", "32")
    assert load_config(str(tmp_path))["ARGON2_MEMORY_KIB"] == 32


@pytest.mark.parametrize(
    ("name", "value", "wanted"),
    [
        ("SCIM_WORKERS", "0", "1 or more"),
        ("SCIM_WORKERS", "-2", "1 or more"),
        ("SCIM_THREADS", "-1", "1 or more"),
        ("SCIM_TIMEOUT", "-1", "0 or more"),
        ("SCIM_GRACEFUL_TIMEOUT", "-1", "0 or more"),
        ("SCIM_KEEPALIVE", "-1", "0 or more"),
    ],
)
def test_a_bad_gunicorn_number_stops_the_start(monkeypatch, name, value, wanted):
    """``serve --production``'s settings: no worker or thread is no server; gunicorn's own
    0 (no timeout, no keep-alive) stays allowed."""
    from scim_server.config import server_config

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^{name} must be {wanted}, got {value}$"):
        server_config()


def test_a_zero_page_size_stops_the_cli_and_touches_no_database(monkeypatch, tmp_path):
    """Through the command line: exit 1, one line naming the setting, no traceback, and no
    database made."""
    from scim_server.cli import main

    database = tmp_path / "cfg.db"
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("SCIM_MAX_PAGE_SIZE", "0")
    result = CliRunner().invoke(main, ["org", "list"])
    assert result.exit_code == 1
    assert result.output == "Error: SCIM_MAX_PAGE_SIZE must be 1 or more, got 0\n"
    assert not database.exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("", True), ("0", False), ("false", False), ("1", True), ("on", True)],
)
def test_session_cookie_secure_setting(monkeypatch, tmp_path, value, expected):
    """SCIM_SESSION_COOKIE_SECURE: on behind https unless turned off."""
    monkeypatch.setenv("SCIM_BASE_URL", "https://id.example.com")
    if value is None:
        monkeypatch.delenv("SCIM_SESSION_COOKIE_SECURE", raising=False)
    else:
        monkeypatch.setenv("SCIM_SESSION_COOKIE_SECURE", value)
    assert load_config(str(tmp_path))["SESSION_COOKIE_SECURE"] is expected


def test_a_session_cookie_secure_typo_stops_the_start(monkeypatch, tmp_path):
    """SCIM_SESSION_COOKIE_SECURE=ture (true mistyped) turned the Secure flag off behind
    https: the session cookie went out over plain http. Refused, as SCIM_HSTS=ture is."""
    monkeypatch.setenv("SCIM_BASE_URL", "https://id.example.com")
    monkeypatch.setenv("SCIM_SESSION_COOKIE_SECURE", "ture")
    with pytest.raises(ConfigError, match=r"^SCIM_SESSION_COOKIE_SECURE must be true or false"):
        load_config(str(tmp_path))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SCIM_LOG_LEVEL", "LOUD", "SCIM_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, "),
        ("SCIM_LOG_FORMAT", "jsno", "SCIM_LOG_FORMAT must be text or json, got 'jsno'"),
        ("SCIM_DATABASE_URL", "instance/scim.db", "SCIM_DATABASE_URL is not a database URL"),
        ("SCIM_DATABASE_URL", "sqlite:/x.db", "SCIM_DATABASE_URL is not a database URL"),
        (
            "SCIM_DATABASE_URL",
            "postgres://scim:pw@db/scim",
            "SCIM_DATABASE_URL: for PostgreSQL write postgresql\\+psycopg://",
        ),
        (
            "SCIM_DATABASE_URL",
            "postgresql://scim@db/scim",
            "SCIM_DATABASE_URL: for PostgreSQL write postgresql\\+psycopg://",
        ),
        ("SCIM_DATABASE_URL", "mysql://scim@db/scim", "SCIM_DATABASE_URL must be a SQLite or "),
    ],
)
def test_a_bad_setting_is_a_clear_error(monkeypatch, tmp_path, name, value, message):
    """A log level logging does not know, a database URL that is a path or names another
    driver (Heroku's postgres://): tracebacks from logging or SQLAlchemy before; a clear
    error now, which never repeats the URL's password."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^{message}") as raised:
        load_config(str(tmp_path))
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(("value", "expected"), [("debug", "DEBUG"), (" Warning ", "WARNING")])
def test_log_level_in_any_case(monkeypatch, tmp_path, value, expected):
    """The level's name in any case, as logging names it."""
    monkeypatch.setenv("SCIM_LOG_LEVEL", value)
    assert load_config(str(tmp_path))["LOG_LEVEL"] == expected


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///instance/scim.db",
        "sqlite+pysqlite:////var/lib/scim.db",
        "postgresql+psycopg://scim@db.internal/scim",
    ],
)
def test_database_urls_that_work(monkeypatch, tmp_path, url):
    """SQLite files and PostgreSQL through psycopg, as given."""
    monkeypatch.setenv("SCIM_DATABASE_URL", url)
    assert load_config(str(tmp_path))["DATABASE_URL"] == url


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCIM_LOG_LEVEL", "LOUD"),
        ("SCIM_DATABASE_URL", "instance/scim.db"),
        ("SCIM_DATABASE_URL", "postgres://scim@db/scim"),
    ],
)
def test_a_bad_setting_stops_the_command_line_in_one_line(monkeypatch, tmp_path, name, value):
    """``scim-server``: exit 1 and "Error: NAME ...", no traceback (as SCIM_SMTP_URL)."""
    from scim_server.cli import main

    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cfg.db'}")
    monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["org", "list"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {name}") and result.output.count("\n") == 1
