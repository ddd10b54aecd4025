"""Sending one mail: SMTP from ``SCIM_SMTP_URL``, or an ``.eml`` file when none is configured.

Used by ``scim-server worker`` only (never inside a web request). The message
is a text part with an HTML alternative, with its own Message-ID and Date.

One deadline bounds the whole SMTP exchange (connect, TLS, AUTH, MAIL, RCPT,
DATA, QUIT; ``webhook_http.Deadline``, as webhooks do): a socket's own timeout
is per read, so a relay answering a byte at a time would hold the worker for
ever, and the mail's lease would run out and another worker send it too. Once
the relay answered 250 to DATA the mail is delivered (RFC 5321 §4.1.1.4); what
happens at QUIT after it is logged, never a failure that would send it again.

An address with an ASCII local part goes with its domain as IDNA A-label
(``bob@xn--bcher-kva.example``), which every relay takes; only a non-ASCII local
part needs SMTPUTF8 (RFC 6531), and its ``.eml`` is written in UTF-8 (RFC 6532).
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from scim_server.config import SmtpSettings
from scim_server.text import ascii_host
from scim_server.webhook_http import Deadline, DeadlineSocket, DeadlineSSLSocket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """What the transport needs of an outbox row."""

    id: str
    recipient: str
    subject: str
    body_text: str
    body_html: str
    message_id: str


def wire_address(address: str) -> str:
    """``address`` as it goes on the wire: an ASCII local part with its domain as IDNA
    A-label (``scim_server.text.ascii_host``, IDNA 2008), so no SMTPUTF8 is needed; a
    non-ASCII local part (or a domain with no A-label) as it is."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii() or not local.isascii():
        return address
    try:
        return f"{local}@{ascii_host(domain)}"
    except UnicodeError:  # no IDNA form: left to SMTPUTF8, as the address was given
        return address


class _BoundSMTP(smtplib.SMTP):
    """SMTP whose every socket wait is given what is left of ``deadline``."""

    def __init__(self, host: str, port: int, deadline: Deadline) -> None:
        self.deadline = deadline
        try:
            super().__init__(host, port, timeout=deadline.seconds)  # connects, reads the 220
        except BaseException:
            self.close()
            raise

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        plain = socket.create_connection((host, port), self.deadline.left(), self.source_address)
        sock = DeadlineSocket(plain.family, plain.type, plain.proto, plain.detach())
        sock.deadline = self.deadline
        return sock

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        assert self.sock is not None
        self.sock.settimeout(self.deadline.left())  # the TLS handshake
        reply = super().starttls(*args, **kwargs)
        self.sock.deadline = self.deadline  # type: ignore[attr-defined]
        return reply


class _BoundSMTPSSL(_BoundSMTP):
    """Implicit TLS (smtps): the connection is wrapped before the greeting."""

    def __init__(self, host: str, port: int, deadline: Deadline, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(host, port, deadline)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        plain = super()._get_socket(host, port, timeout)
        plain.settimeout(self.deadline.left())  # the TLS handshake
        sock = self.context.wrap_socket(plain, server_hostname=host)
        sock.deadline = self.deadline  # type: ignore[attr-defined]
        return sock


@dataclass(frozen=True)
class Mailer:
    """The transport: ``smtp`` when configured, else ``.eml`` files in ``mail_dir``."""

    sender: str
    smtp: SmtpSettings | None
    mail_dir: Path
    # Seconds for the whole SMTP exchange of one mail, well under the mail's lease
    # (``mail_delivery.LEASE``, 5 minutes): a send given up is retried, one still running
    # when its lease ends is sent twice.
    timeout: float = 60.0
    # The CA certificates (PEM file) that sign the SMTP server's certificate, when it is
    # not a public CA (an internal relay); None: the system's trust store.
    ca_file: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Mailer:
        return cls(
            sender=config["MAIL_FROM"],
            smtp=config["SMTP"],
            mail_dir=Path(config["MAIL_DIR"]),
            ca_file=config.get("SMTP_CA_FILE"),
        )

    def tls_context(self) -> ssl.SSLContext:
        """Certificate and host name always checked: a relay we cannot verify gets no mail."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.sslsocket_class = DeadlineSSLSocket
        return context

    def build(self, mail: Outgoing, now: datetime) -> EmailMessage:
        """Text first, HTML as the alternative a mail client prefers (RFC 2046 §5.1.4)."""
        message = EmailMessage()
        message["Subject"] = mail.subject
        message["From"] = self.sender
        message["To"] = wire_address(mail.recipient)
        message["Date"] = format_datetime(now)
        message["Message-ID"] = mail.message_id
        message.set_content(mail.body_text)
        message.add_alternative(mail.body_html, subtype="html")
        return message

    def send(self, mail: Outgoing, now: datetime) -> str:
        """Send (or write) one mail; returns where it went. Raises on any failure before the
        relay accepted it (``TimeoutError`` past ``timeout`` for the whole exchange)."""
        message = self.build(mail, now)
        if self.smtp is None:
            return str(self._write_eml(mail.id, message))
        smtp = self.smtp
        where = f"{smtp.host}:{smtp.port}"
        deadline = Deadline(self.timeout)
        late = f"{where}: no complete answer within {self.timeout:g} s"
        client: _BoundSMTP | None = None
        try:
            if smtp.security == "ssl":
                client = _BoundSMTPSSL(smtp.host, smtp.port, deadline, self.tls_context())
            else:
                client = _BoundSMTP(smtp.host, smtp.port, deadline)
            if smtp.security == "starttls":
                client.starttls(context=self.tls_context())
            if smtp.username is not None and smtp.password is not None:
                client.login(smtp.username, smtp.password)
            client.send_message(message)
        except Exception as exc:
            if client is not None:
                client.close()
            # smtplib words a timeout as a disconnection (SMTPServerDisconnected): say what it was.
            if isinstance(exc, TimeoutError) or time.monotonic() >= deadline.at:
                raise TimeoutError(late) from exc
            raise
        # 250 to DATA: the relay has the mail. QUIT is a courtesy; however it goes, the
        # mail is sent (a failure here retried it: the person got it again and again).
        try:
            code, answer = client.quit()
        except (smtplib.SMTPException, OSError) as exc:
            client.close()
            log.warning("mail %s accepted by %s; QUIT failed: %s", mail.id, where, exc)
        else:
            if code != 221:
                log.warning(
                    "mail %s accepted by %s; QUIT answered %s %s",
                    mail.id,
                    where,
                    code,
                    answer.decode("ascii", "replace")[:200],
                )
        return where

    def _write_eml(self, mail_id: str, message: EmailMessage) -> Path:
        """Development: the mail as a file a mail client opens; written whole or not at all.

        An address that stays non-ASCII is written in UTF-8 (RFC 6532), as SMTPUTF8 sends it:
        the default policy would put an encoded word inside it, which no client reads."""
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        path = self.mail_dir / f"{mail_id}.eml"
        partial = path.with_suffix(".eml.part")
        utf8 = not str(message["To"]).isascii()
        partial.write_bytes(message.as_bytes(policy=email_policy.default.clone(utf8=utf8)))
        os.replace(partial, path)
        return path
