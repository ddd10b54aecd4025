"""Configuration: safe defaults, overridden by ``SCIM_``-prefixed environment variables.

Every setting a deployer may need is read from the environment so that the
same image runs on a laptop (SQLite under ``instance/``) and behind a load
balancer (PostgreSQL), with nothing else to change.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import tempfile
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from scim_server.slots import default_concurrency


class ConfigError(RuntimeError):
    """Raised when the configuration cannot be used (e.g. a missing secret)."""


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment; empty or unset gives ``default``."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def env_count(name: str, default: int) -> int:
    """A non-negative integer setting (a count, a duration); see ``env_int``."""
    value = env_int(name, default)
    if value < 0:
        raise ConfigError(f"{name} must be 0 or more, got {value}")
    return value


def env_positive(name: str, default: int) -> int:
    """An integer setting of 1 or more: a size, a lifetime or a cost for which 0 (or less)
    means nothing sensible (``SCIM_MAX_PAGE_SIZE=0`` served pages that count users and
    list none; a negative lifetime ended every session at once); see ``env_int``."""
    value = env_int(name, default)
    if value < 1:
        raise ConfigError(f"{name} must be 1 or more, got {value}")
    return value


# The longest retention a setting or option takes: a hundred years. A date that far back
# is still a date (``timedelta`` holds no more than 999,999,999 days: a larger value was an
# OverflowError traceback).
MAX_RETENTION_DAYS = 36500


def env_days(name: str, default: int) -> int:
    """A retention period in days, 1 to ``MAX_RETENTION_DAYS``; see ``env_int``.

    0 is not "off" here: a cutoff of now (or ahead of it, a negative value) deletes
    everything kept, so it stops the start as ``audit purge --retention-days`` refuses it."""
    value = env_int(name, default)
    if not 1 <= value <= MAX_RETENTION_DAYS:
        raise ConfigError(
            f"{name} must be a number of days from 1 to {MAX_RETENTION_DAYS}, got {value}"
        )
    return value


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_bool(name: str, default: bool) -> bool:
    """An on/off setting from the environment; empty or unset gives ``default``, anything
    but 1/0, true/false, yes/no, on/off stops the start (a typo must not turn a guard off)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false (1/0, yes/no, on/off), got {raw!r}")


def default_database_url(instance_path: str) -> str:
    """The embedded default: one SQLite file under the instance folder."""
    return f"sqlite:///{Path(instance_path, 'scim.db')}"


def _secure_cookie(base_url: str | None) -> bool:
    """Secure cookies behind https (SCIM_BASE_URL); SCIM_SESSION_COOKIE_SECURE=0/1 decides.

    ``env_bool``: a typo (``ture``) stops the start; it turned the flag off, and the
    session cookie went out over plain http."""
    return env_bool("SCIM_SESSION_COOKIE_SECURE", (base_url or "").lower().startswith("https://"))


def argon2_memory(parallelism: int) -> int:
    """``SCIM_ARGON2_MEMORY_KIB``: argon2 needs 8 KiB per lane (RFC 9106 §3.1); less failed
    every password check with a traceback instead of stopping the start."""
    least = 8 * parallelism
    value = env_positive("SCIM_ARGON2_MEMORY_KIB", 19 * 1024)
    if value < least:
        raise ConfigError(
            f"SCIM_ARGON2_MEMORY_KIB must be at least {least} (8 per lane of "
            f"SCIM_ARGON2_PARALLELISM={parallelism}), got {value}"
        )
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


def log_level(value: str | None) -> str:
    """``SCIM_LOG_LEVEL``: a level logging knows, in any case (an unknown one was a
    ValueError traceback from logging at start)."""
    level = (value or "").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise ConfigError(f"SCIM_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def log_format(value: str | None) -> str:
    """``SCIM_LOG_FORMAT``: text or json (a typo silently gave text lines to a JSON reader)."""
    name = (value or "").strip().lower() or "text"
    if name not in LOG_FORMATS:
        raise ConfigError(f"SCIM_LOG_FORMAT must be text or json, got {value!r}")
    return name


# The drivers the server speaks: SQLite's own module, PostgreSQL through psycopg 3
# (``db.make_engine`` gives psycopg's connections their cursor class).
DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


def database_url(value: str | None, instance_path: str) -> str:
    """``SCIM_DATABASE_URL`` as given, checked at start: a path (``instance/scim.db``) or a
    URL naming another driver (Heroku's ``postgres://``) was a SQLAlchemy traceback.
    Errors never repeat the URL: it may hold a password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not value:
        return default_database_url(instance_path)
    examples = "sqlite:///path/to/scim.db or postgresql+psycopg://user@host/db"
    try:
        driver = make_url(value).drivername
    except (ArgumentError, ValueError):
        raise ConfigError(f"SCIM_DATABASE_URL is not a database URL; e.g. {examples}") from None
    if driver in DATABASE_DRIVERS:
        return value
    if driver.split("+")[0] in ("postgres", "postgresql"):
        raise ConfigError(
            f"SCIM_DATABASE_URL: for PostgreSQL write postgresql+psycopg://... (got {driver}://)"
        )
    raise ConfigError(
        f"SCIM_DATABASE_URL must be a SQLite or PostgreSQL URL ({examples}), got {driver}://"
    )


def base_url(value: str | None, env: str) -> str | None:
    """``SCIM_BASE_URL``: an http(s) root, required outside development. Every link we mail
    starts with it (``urls.link_root``): built from the Host a request names, a stranger's
    forgot request could mail a person a reset link to the stranger's site."""
    text = (value or "").strip().rstrip("/")
    if not text:
        if env != "development":
            raise ConfigError(
                "SCIM_BASE_URL is required when SCIM_ENV is not 'development': the public "
                "address people and IdPs reach this server at (e.g. https://id.example.com); "
                "mailed links, SAML and OIDC addresses start with it"
            )
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"SCIM_BASE_URL must be an http(s) address, got {value!r}")
    return text


def trusted_proxies(value: Any) -> int:
    """``SCIM_TRUSTED_PROXIES`` as the app takes it: a count, 0 or more (``create_app``
    checks the value it is given, from the environment or its own mapping)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            "SCIM_TRUSTED_PROXIES must be an integer (the number of proxies in front, 0 for "
            f"none), got {value!r}"
        )
    if value < 0:
        raise ConfigError(f"SCIM_TRUSTED_PROXIES must be 0 or more, got {value}")
    return value


def check_other_settings() -> None:
    """The settings the app's config does not hold, checked at every start too (README:
    "a bad one stops the server, the worker and every command"): the server's
    (``server_config``, read by ``serve --production`` only) and the retention that
    ``audit purge`` reads as its option's default. A typo was found at the next deploy,
    or the next purge named the option, not the variable."""
    server_config()
    if os.environ.get("SCIM_AUDIT_RETENTION_DAYS"):
        env_days("SCIM_AUDIT_RETENTION_DAYS", 1)


def load_config(instance_path: str) -> dict[str, Any]:
    """Build the Flask config mapping from defaults and the environment."""
    check_other_settings()
    env = os.environ.get("SCIM_ENV", "development")
    secret = os.environ.get("SCIM_SECRET_KEY")
    if not secret:
        if env != "development":
            raise ConfigError(
                "SCIM_SECRET_KEY is required when SCIM_ENV is not 'development'; "
                "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        secret = secrets.token_hex(32)
    return {
        "SCIM_ENV": env,
        "SECRET_KEY": secret,
        "DATABASE_URL": database_url(os.environ.get("SCIM_DATABASE_URL"), instance_path),
        "BASE_URL": base_url(os.environ.get("SCIM_BASE_URL"), env),
        # RFC 7644 §3.4.2.4: the server's maximum page size, advertised in
        # ServiceProviderConfig as filter.maxResults.
        "MAX_PAGE_SIZE": env_positive("SCIM_MAX_PAGE_SIZE", 1000),
        "DEFAULT_PAGE_SIZE": env_positive("SCIM_DEFAULT_PAGE_SIZE", 100),
        # Group members returned inline by GET /Groups/{id}; larger groups are
        # read with excludedAttributes=members and filtered member lookups.
        "MAX_INLINE_MEMBERS": env_positive("SCIM_MAX_INLINE_MEMBERS", 10000),
        # Memory per worker process for users kept rendered for list pages
        # (``scim.user_fragments``); 0 keeps none.
        "PAGE_CACHE_MB": env_count("SCIM_PAGE_CACHE_MB", 32),
        "MAX_CONTENT_LENGTH": env_positive("SCIM_MAX_BODY_BYTES", 1024 * 1024),
        # At most this many SCIM requests at once in a worker process (``scim.admission``;
        # 0: no bound; unset: 1 on SQLite, no bound on PostgreSQL);
        # one waits at most SCIM_API_WAIT_SECONDS, then gets 503.
        "SCIM_API_CONCURRENCY": (
            env_count("SCIM_API_CONCURRENCY", 0) if os.environ.get("SCIM_API_CONCURRENCY") else None
        ),
        "SCIM_API_WAIT_SECONDS": env_count("SCIM_API_WAIT_SECONDS", 30),
        "BULK_MAX_OPERATIONS": env_positive("SCIM_BULK_MAX_OPERATIONS", 1000),
        "BULK_MAX_PAYLOAD_BYTES": env_positive("SCIM_BULK_MAX_PAYLOAD_BYTES", 1024 * 1024),
        "LOG_FORMAT": log_format(os.environ.get("SCIM_LOG_FORMAT")),
        "LOG_LEVEL": log_level(os.environ.get("SCIM_LOG_LEVEL")),
        "DB_POOL_SIZE": env_positive("SCIM_DB_POOL_SIZE", 5),
        "DB_MAX_OVERFLOW": env_count("SCIM_DB_MAX_OVERFLOW", 10),
        # Fail fast when the database is unreachable or the pool is exhausted:
        # the client gets 503 + Retry-After instead of a worker timeout.
        # (psycopg's connect_timeout of 0 waits for ever: 1 or more; a pool timeout of 0
        # answers 503 at once.)
        "DB_CONNECT_TIMEOUT": env_positive("SCIM_DB_CONNECT_TIMEOUT", 5),
        "DB_POOL_TIMEOUT": env_count("SCIM_DB_POOL_TIMEOUT", 10),
        # SCIM requests per minute per token; 0 is unlimited. Organizations may
        # override it; their overrides are re-read every RATE_LIMIT_CACHE_SECONDS.
        "RATE_LIMIT_PER_MINUTE": env_count("SCIM_RATE_LIMIT_PER_MINUTE", 0),
        "RATE_LIMIT_CACHE_SECONDS": env_count("SCIM_RATE_LIMIT_CACHE_SECONDS", 10),
        # Secrets at rest (SSO connection secrets, the OIDC provider's signing keys) are
        # sealed with keys derived from SCIM_SECRET_KEY, never from development's random
        # SECRET_KEY; unset: a development key file (``sso.connections.sealing``).
        "OAUTH_KEY_SECRET": os.environ.get("SCIM_SECRET_KEY") or None,
        # The OIDC provider (``sso.provider``): lifetimes of codes, access tokens, id_tokens.
        "OAUTH_CODE_SECONDS": env_positive("SCIM_OAUTH_CODE_SECONDS", 60),
        "OAUTH_ACCESS_TOKEN_SECONDS": env_positive("SCIM_OAUTH_ACCESS_TOKEN_SECONDS", 3600),
        "OAUTH_ID_TOKEN_SECONDS": env_positive("SCIM_OAUTH_ID_TOKEN_SECONDS", 3600),
        # A retired signing key stays published this long: longer than any id_token it signed.
        "OAUTH_KEY_GRACE_SECONDS": env_count("SCIM_OAUTH_KEY_GRACE_SECONDS", 86400),
        # How long a single sign-on session (``sso.signin.session``) is honoured: a signed
        # cookie cannot be revoked; its age bounds how long a stolen one is worth anything.
        "SSO_SESSION_SECONDS": env_positive("SCIM_SSO_SESSION_SECONDS", 12 * 3600),
        # Adding or removing a second factor needs a sign-in at most this old (step-up).
        "SECURITY_REAUTH_SECONDS": env_positive("SCIM_SECURITY_REAUTH_SECONDS", 600),
        # Proxies in front of the app (a load balancer: 1) whose X-Forwarded-For and
        # X-Forwarded-Proto are believed (``trusted_proxies``); 0 believes no such header.
        "TRUSTED_PROXIES": env_count("SCIM_TRUSTED_PROXIES", 0),
        # Password sign-in (``sso.local``): attempts per client address per minute, counted
        # in the database (every node shares the count); 0 turns the limit off.
        "SIGNIN_ATTEMPTS_PER_MINUTE": env_count("SCIM_SIGNIN_ATTEMPTS_PER_MINUTE", 30),
        # A half-done sign-in (password checked, second factor or new password pending).
        "SIGNIN_PENDING_SECONDS": env_positive("SCIM_SIGNIN_PENDING_SECONDS", 600),
        # WebAuthn relying party id (a registrable domain); default: the host of SCIM_BASE_URL.
        "WEBAUTHN_RP_ID": os.environ.get("SCIM_WEBAUTHN_RP_ID") or None,
        # The admin console (``scim_server.console``): a console session unused this long
        # ends (the person signs in again); SSO_SESSION_SECONDS still bounds its total age.
        "CONSOLE_IDLE_SECONDS": env_positive("SCIM_CONSOLE_IDLE_SECONDS", 30 * 60),
        # The session cookie (sign-in and console): never readable by script, not sent on
        # cross-site subrequests or POSTs; Secure when the public URL is https.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _secure_cookie(os.environ.get("SCIM_BASE_URL")),
        # Strict-Transport-Security on every response when SCIM_BASE_URL is https (RFC 6797;
        # ``create_app``); SCIM_HSTS=false leaves it to a proxy in front that sets its own.
        "HSTS": env_bool("SCIM_HSTS", True),
        # CSRF (Flask-WTF): checked by the console and sign-in pages only, never by the
        # SCIM or admin JSON APIs (bearer tokens, no cookies); a token lives as long as
        # the session that holds it. No Referer is demanded on https (SSL_STRICT): the pages
        # say ``no-referrer``, so browsers send none; ``csrf.foreign_origin`` checks Origin
        # and Sec-Fetch-Site instead.
        "WTF_CSRF_CHECK_DEFAULT": False,
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_SSL_STRICT": False,
        # Mail (``scim_server.mailer``): SMTP server and sender; no SMTP: .eml files in MAIL_DIR.
        "SMTP": parse_smtp_url(os.environ.get("SCIM_SMTP_URL")),
        "MAIL_FROM": parse_mail_from(os.environ.get("SCIM_MAIL_FROM") or "scim-server@localhost"),
        "MAIL_DIR": os.environ.get("SCIM_MAIL_DIR") or str(Path(instance_path, "mail")),
        # PEM file of the CA that signed the SMTP server's certificate (an internal relay);
        # unset: the system's trust store. The certificate and host name are always checked.
        "SMTP_CA_FILE": os.environ.get("SCIM_SMTP_CA_FILE") or None,
        # The name on every page a person sees (sign-in, mail, console).
        "PRODUCT_NAME": os.environ.get("SCIM_PRODUCT_NAME") or "Identity",
        # Local passwords (``services.passwords``): argon2id cost. The defaults are OWASP's
        # (19 MiB, 2 passes, 1 lane); a hash made with other values is redone at sign-in.
        "ARGON2_TIME_COST": env_positive("SCIM_ARGON2_TIME_COST", 2),
        "ARGON2_MEMORY_KIB": argon2_memory(env_positive("SCIM_ARGON2_PARALLELISM", 1)),
        "ARGON2_PARALLELISM": env_positive("SCIM_ARGON2_PARALLELISM", 1),
        # At most this many argon2 computations at once on this node, across all its
        # workers and threads (``scim_server.slots``): sign-ins beyond it get 503 and
        # Retry-After after a wait of at most ARGON2_WAIT_MS, so they never take every
        # core from SCIM traffic. Default: half the cores (at least 1); 0 turns the bound off.
        "ARGON2_CONCURRENCY": env_count("SCIM_ARGON2_CONCURRENCY", default_concurrency()),
        "ARGON2_WAIT_MS": env_count("SCIM_ARGON2_WAIT_MS", 100),
        # The slots' lock files: a directory the node's workers share, on a local disk.
        "ARGON2_SLOT_DIR": os.environ.get("SCIM_ARGON2_SLOT_DIR")
        or str(Path(instance_path, "argon2-slots")),
        # Product events (``scim_server.events``): how long the feed keeps them (1 to 36500).
        "EVENTS_RETENTION_DAYS": env_days("SCIM_EVENTS_RETENTION_DAYS", 30),
        # Webhooks (``scim_server.webhook_http``): networks a production server may send to
        # although private or loopback (comma-separated CIDR), and the request timeout.
        "WEBHOOK_ALLOWED_NETWORKS": parse_networks(
            os.environ.get("SCIM_WEBHOOK_ALLOWED_NETWORKS") or ""
        ),
        "WEBHOOK_TIMEOUT_SECONDS": env_positive("SCIM_WEBHOOK_TIMEOUT_SECONDS", 10),
        # OIDC providers' back channel (``sso.oidc.http``): networks a production server may
        # reach an identity provider on although private (an IdP inside the network).
        "IDP_ALLOWED_NETWORKS": parse_networks(
            os.environ.get("SCIM_IDP_ALLOWED_NETWORKS") or "", "SCIM_IDP_ALLOWED_NETWORKS"
        ),
        # SSO domain verification (``sso.signin.txt_records``): the DNS servers asked for the TXT
        # record (comma-separated address or address:port; empty: the system's resolver).
        "DNS_RESOLVERS": parse_resolvers(os.environ.get("SCIM_DNS_RESOLVERS") or ""),
        "DNS_TIMEOUT_SECONDS": env_positive("SCIM_DNS_TIMEOUT_SECONDS", 5),
        # HMAC key of the audit chain's signatures; see ``audit_key``.
        "AUDIT_KEY": os.environ.get("SCIM_AUDIT_KEY") or os.environ.get("SCIM_SECRET_KEY") or None,
        # Only for ``scim-server audit rekey``: the audit key (SCIM_AUDIT_KEY, or
        # SCIM_SECRET_KEY without it) the log was signed with before that key changed.
        # Never a command-line option: a command line is visible to other users.
        "PREVIOUS_AUDIT_KEY": os.environ.get("SCIM_PREVIOUS_AUDIT_KEY") or None,
        # Ed25519 private key (PEM text or a file path) of the checkpoints and export
        # manifests anyone can verify; see ``audit_signing_key``.
        "AUDIT_SIGNING_KEY": os.environ.get("SCIM_AUDIT_SIGNING_KEY") or None,
    }


@dataclass(frozen=True)
class SmtpSettings:
    """Where the worker sends mail. ``security``: ``plain``, ``starttls`` or ``ssl``."""

    host: str
    port: int
    security: str
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never the password, in a log line or a traceback
        user = f"{self.username}@" if self.username else ""
        return f"SmtpSettings({self.security}://{user}{self.host}:{self.port})"


# scheme -> (security, default port)
SMTP_SCHEMES = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("ssl", 465)}


def parse_smtp_url(url: str | None) -> SmtpSettings | None:
    """``SCIM_SMTP_URL``: ``smtp://host:25``, ``smtp+starttls://user:pass@host:587``,
    ``smtps://user:pass@host:465``; unset or empty: None (mail goes to .eml files)."""
    if not url:
        return None
    schemes = ", ".join(f"{s}://" for s in SMTP_SCHEMES)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"SCIM_SMTP_URL is not a valid URL ({exc}); e.g. smtp://host:25") from exc
    if parts.scheme not in SMTP_SCHEMES:
        raise ConfigError(
            f"SCIM_SMTP_URL must start with one of {schemes} (got {parts.scheme + '://'!r})"
        )
    if not parts.hostname:
        raise ConfigError(f"SCIM_SMTP_URL has no host; e.g. {parts.scheme}://mail.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            "SCIM_SMTP_URL takes no path, query or fragment: scheme://user:pass@host:port"
        )
    if (parts.username is None) != (parts.password is None):
        raise ConfigError("SCIM_SMTP_URL needs both a user and a password, or neither")
    security, default_port = SMTP_SCHEMES[parts.scheme]
    return SmtpSettings(
        host=parts.hostname,
        port=port or default_port,
        security=security,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def parse_networks(value: str, name: str = "SCIM_WEBHOOK_ALLOWED_NETWORKS") -> str:
    """``name``: comma-separated CIDR networks, checked at start."""
    for item in (v.strip() for v in value.split(",")):
        if item:
            try:
                ipaddress.ip_network(item)
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
    return value


def parse_resolvers(value: str) -> list[tuple[str, int]]:
    """``SCIM_DNS_RESOLVERS``: comma-separated ``address``, ``address:port`` or
    ``[v6 address]:port`` (port 53 unless given), checked at start; empty: none."""
    found = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        host, port = item, "53"
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") or "53"
        elif item.count(":") == 1:
            host, _, port = item.partition(":")
        try:
            address = str(ipaddress.ip_address(host))
            number = int(port)
        except ValueError:
            raise ConfigError(
                f"SCIM_DNS_RESOLVERS: {item!r} is not an IP address or address:port "
                "(e.g. 10.0.0.2, 10.0.0.2:5353, [2001:db8::53]:53)"
            ) from None
        if not 0 < number < 65536:
            raise ConfigError(f"SCIM_DNS_RESOLVERS: {item!r} has no valid port")
        found.append((address, number))
    return found


def parse_mail_from(value: str) -> str:
    """``SCIM_MAIL_FROM``: one address (``Name <addr@host>`` allowed), no header injection."""
    _name, address = parseaddr(value)
    if "\r" in value or "\n" in value or "@" not in address or address.startswith("@"):
        raise ConfigError(f"SCIM_MAIL_FROM must be one e-mail address, got {value!r}")
    return value


def audit_key(config: dict[str, Any] | Any, instance_path: str) -> bytes:
    """The audit signing key: AUDIT_KEY (SCIM_AUDIT_KEY, else SCIM_SECRET_KEY), else a key file.

    It must outlive the process, or yesterday's log could not be verified, so
    development's random SECRET_KEY is never used for it.
    """
    configured = config.get("AUDIT_KEY")
    if configured:
        return str(configured).encode()
    return development_key(instance_path, "audit.key")


def audit_signing_key(config: dict[str, Any] | Any) -> str | None:
    """AUDIT_SIGNING_KEY; required outside development (where a key file is made instead).

    Every node must sign with the same key, published with its validity period:
    a key made on one node's disk would not be the next node's.
    """
    configured = config.get("AUDIT_SIGNING_KEY")
    if not configured and config.get("SCIM_ENV", "development") != "development":
        raise ConfigError(
            "SCIM_AUDIT_SIGNING_KEY (an Ed25519 private key, PEM or a file path) is required "
            "when SCIM_ENV is not 'development'; make one with: "
            "openssl genpkey -algorithm ed25519 -out audit-signing.pem"
        )
    return str(configured) if configured else None


def development_key(instance_path: str, name: str) -> bytes:
    """A random key kept in ``instance/NAME`` (mode 0600), made on first use.

    For development only: production sets SCIM_SECRET_KEY (and SCIM_AUDIT_KEY),
    and a key on one node's disk would differ from the next node's.
    """
    path = Path(instance_path, name)
    if not path.exists():
        write_once(path, secrets.token_hex(32).encode())
    return path.read_text().strip().encode()


def write_once(path: Path, content: bytes) -> None:
    """Write ``path`` whole, once, whoever else starts at the same moment (the server's
    workers and ``scim-server worker`` on a fresh instance): ``content`` is written to a
    file of its own (mode 0600) and linked into place, which fails if another process got
    there first; its content is then everyone's. A plain write let another process read the
    file empty, or write a second key over the first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:  # mkstemp: mode 0600
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        # Another process's key in place: that one is used.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


# gunicorn's gthread worker, its heartbeat throttled (``serve --production``'s default).
GTHREAD_WORKER = "scim_server.gunicorn_worker.ThreadWorker"


def _worker_class(name: str) -> str:
    """``SCIM_WORKER_CLASS``: "gthread" is ours (``GTHREAD_WORKER``); any other name or
    class path is gunicorn's to resolve."""
    return GTHREAD_WORKER if name == "gthread" else name


def server_config() -> dict[str, Any]:
    """gunicorn's settings for ``serve --production``, from ``SCIM_``-prefixed variables.

    Read by ``gunicorn_conf`` (gunicorn takes them as that module's globals);
    they belong to the server process, not to the Flask app's config.
    """
    return {
        "bind": os.environ.get("SCIM_BIND", "127.0.0.1:8000"),
        "workers": env_positive("SCIM_WORKERS", 2),
        # gthread: its main loop tells the arbiter it is alive while a request runs, so
        # a long response (an audit export streamed to a slow client) is not killed at
        # `timeout` as a sync worker's would be, cut short. Four threads: a request that
        # waits (argon2 releases the GIL while it hashes, the database answers) leaves the
        # worker's other threads serving; with one, SCIM reads queued behind sign-ins
        # (BENCHMARKS.md, "Sign-in (issue 12)"). "gthread" is ours: gthread with its
        # heartbeat written at most once a second (scim_server/gunicorn_worker.py).
        "worker_class": _worker_class(os.environ.get("SCIM_WORKER_CLASS") or "gthread"),
        "threads": env_positive("SCIM_THREADS", 4),
        # gunicorn's own 0: no timeout, no keep-alive.
        "timeout": env_count("SCIM_TIMEOUT", 30),
        "graceful_timeout": env_count("SCIM_GRACEFUL_TIMEOUT", 30),
        "keepalive": env_count("SCIM_KEEPALIVE", 5),
        # Not gunicorn's: how long our worker without room leaves a new connection to the
        # others (scim_server/gunicorn_worker.py).
        "accept_hold_ms": env_count("SCIM_ACCEPT_HOLD_MS", 20),
        "accesslog": os.environ.get("SCIM_ACCESS_LOG") or None,
    }
